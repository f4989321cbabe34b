//! Registered classes: a Rust type `T` bound to a Python type whose instances are laid out
//! as [`ClassObject<T>`], registered in the internals under a stable type key, so separately
//! built modules cast each other's instances.
//!
//! Rust -> Python makes a new instance of the registered type (module-local registry first,
//! then the shared one, by type key). Python -> Rust finds the nearest registered type on the
//! instance's `tp_base` chain (so Python subclasses work) and checks that it was registered
//! for `T`'s type key and a value of `T`'s size; the value is then borrowed under a runtime
//! borrow flag ([`Ref`], [`RefMut`]) or cloned.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering};

use bindery_capsule::{Borrowed, Owned, Python};
use bindery_internals::{InternalsError, TypeInfo};
use pyo3_ffi as ffi;

use crate::error::CastError;
use crate::lookup::Registries;
use crate::traits::{FromPython, IntoPython, owned_or_err};

/// A Rust type bound to a Python class.
///
/// `TYPE_KEY` names the type across separately built modules: two modules that use the same
/// key must be built from the same source of the type with the same compiler (the facade
/// derives the key from the crate name, its version and the type path). `Send + Sync`
/// because an instance may be used from any thread that holds its interpreter's GIL.
pub trait RegisteredClass: Send + Sync + Sized + 'static {
    /// The stable type key, e.g. `"geometry 0.1.0::Point"`.
    const TYPE_KEY: &'static str;
}

/// Where [`register_class`] records a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// In the interpreter's shared registry: every module with the same internals key finds
    /// it (by type key and by type object).
    Shared,
    /// In this module's local registry: only this module binary finds it, and it is found
    /// before a shared registration of the same key.
    Local,
}

/// `state` of an instance: no value yet (allocated, constructor not run).
const EMPTY: u8 = 0;
/// `state`: the value is initialised.
const READY: u8 = 1;
/// `state`: the value was dropped (the instance is being destroyed, or was cleared).
const DROPPED: u8 = 2;

/// `borrow` value of an exclusive (`&mut`) borrow; `n > 0` means `n` shared borrows.
const EXCLUSIVE: isize = -1;

/// The bookkeeping in front of the value, the same for every `T`.
#[repr(C)]
struct Header {
    /// [`EMPTY`], [`READY`] or [`DROPPED`]. Written by `init` and `drop_value` (GIL held),
    /// read by every cast and by GC callbacks.
    state: AtomicU8,
    /// 0 free, `n > 0` shared borrows, [`EXCLUSIVE`]. Changed by the guards.
    borrow: AtomicIsize,
}

/// The memory layout of an instance of a registered class: the Python object header, then
/// bindery's state and borrow flag, then the Rust value.
///
/// Make the Python type with `tp_basicsize = size_of::<ClassObject<T>>()` (see
/// [`ClassObject::BASIC_SIZE`]) and `tp_itemsize = 0`; instances allocated by `tp_alloc`
/// start zeroed, which is the "no value yet" state: casts refuse them
/// ([`CastError::Uninitialized`]) and GC callbacks skip them until [`ClassObject::init`]
/// stores a value. After [`ClassObject::drop_value`] (in `tp_dealloc`, or a `tp_clear` that
/// empties the object) the value is never read again.
#[repr(C)]
pub struct ClassObject<T> {
    ob_base: ffi::PyObject,
    header: Header,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T: RegisteredClass> ClassObject<T> {
    /// `size_of::<ClassObject<T>>()`, as a type spec's `basicsize` wants it.
    pub const BASIC_SIZE: ffi::Py_ssize_t = size_of::<ClassObject<T>>() as ffi::Py_ssize_t;

    /// The instance behind `obj`.
    ///
    /// # Safety
    /// `obj` is a live instance of a type whose instances are `ClassObject<T>` (a type
    /// registered for `T`, or a subclass of one), and stays alive for `'x`.
    unsafe fn at<'x>(obj: *mut ffi::PyObject) -> &'x ClassObject<T> {
        // SAFETY: the caller guarantees the layout and the lifetime; only the atomics and
        // the UnsafeCell are accessed through the shared reference.
        unsafe { &*obj.cast::<ClassObject<T>>() }
    }

    /// Stores the Rust value of a freshly allocated instance (the job of the class's
    /// `tp_new` or `__init__`). Gives the value back if the instance already has one (or
    /// had one: a destroyed value is not replaced).
    ///
    /// # Safety
    /// `obj` is a live instance whose type's instances are `ClassObject<T>` (see
    /// [`ClassObject`]), and the caller holds the GIL of its interpreter.
    pub unsafe fn init(obj: *mut ffi::PyObject, value: T) -> Result<(), T> {
        // SAFETY: the caller's contract.
        let this = unsafe { Self::at(obj) };
        if this.header.state.load(Ordering::Acquire) != EMPTY {
            return Err(value);
        }
        // SAFETY: EMPTY: nobody reads the value (casts and GC callbacks check the state
        // first) and nobody else writes it (GIL held, no Python code runs in between).
        unsafe { (*this.value.get()).write(value) };
        this.header.state.store(READY, Ordering::Release);
        Ok(())
    }

    /// Whether the instance holds a value (constructed, not yet dropped).
    ///
    /// # Safety
    /// As for [`ClassObject::init`].
    pub unsafe fn is_initialized(obj: *mut ffi::PyObject) -> bool {
        // SAFETY: the caller's contract.
        unsafe { Self::at(obj) }
            .header
            .state
            .load(Ordering::Acquire)
            == READY
    }

    /// Drops the value (if any and if it is not borrowed) and marks the instance as
    /// emptied: for `tp_dealloc` (see [`tp_dealloc`]) or a `tp_clear` that must release
    /// what the value owns. Returns whether a value was dropped; a borrowed value is left
    /// alone (`false`).
    ///
    /// # Safety
    /// As for [`ClassObject::init`].
    pub unsafe fn drop_value(obj: *mut ffi::PyObject) -> bool {
        // SAFETY: the caller's contract.
        let this = unsafe { Self::at(obj) };
        if this.header.state.load(Ordering::Acquire) != READY {
            return false;
        }
        if this
            .header
            .borrow
            .compare_exchange(0, EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        this.header.state.store(DROPPED, Ordering::Release);
        // SAFETY: READY, and the exclusive borrow taken above keeps every guard out; the
        // state is DROPPED before the value's Drop runs, so code it calls (a __del__ that
        // casts this object) sees an empty instance, never a half-dropped value.
        unsafe { (*this.value.get()).assume_init_drop() };
        this.header.borrow.store(0, Ordering::Release);
        true
    }

    /// The value for a garbage-collector callback of the class itself (`tp_traverse`), with
    /// no registry lookup, no allocation, no Python call: `None` before the value is
    /// constructed, after it was dropped, or while it is mutably borrowed (a method holding
    /// `&mut T` may be interrupted by a collection; its references are then not reported,
    /// which only keeps objects alive longer).
    ///
    /// # Safety
    /// As for [`ClassObject::init`] (the instance passed to a slot of the class is one); the
    /// reference must not be kept beyond the callback.
    pub unsafe fn gc_get<'x>(obj: *mut ffi::PyObject) -> Option<&'x T> {
        // SAFETY: the caller's contract.
        let this = unsafe { Self::at::<'x>(obj) };
        this.peek()
    }

    /// The value if it is ready and not mutably borrowed (no borrow is recorded: for code
    /// that runs no Python code while it holds the reference).
    fn peek(&self) -> Option<&T> {
        if self.header.state.load(Ordering::Acquire) != READY
            || self.header.borrow.load(Ordering::Acquire) == EXCLUSIVE
        {
            return None;
        }
        // SAFETY: READY and not exclusively borrowed: the value is initialised and no `&mut`
        // exists; the caller runs no Python code that could take one meanwhile.
        Some(unsafe { (*self.value.get()).assume_init_ref() })
    }

    fn try_borrow(&self) -> Option<Ref<'_, T>> {
        let mut current = self.header.borrow.load(Ordering::Relaxed);
        loop {
            if current < 0 || current == isize::MAX {
                return None;
            }
            match self.header.borrow.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Ref {
                        cell: self,
                        _not_send: PhantomData,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn try_borrow_mut(&self) -> Option<RefMut<'_, T>> {
        self.header
            .borrow
            .compare_exchange(0, EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| RefMut {
                cell: self,
                _not_send: PhantomData,
            })
    }
}

/// A shared borrow of a registered instance's value: derefs to `&T`. While it lives, a
/// mutable borrow of the same instance is refused (a `RuntimeError` in Python).
pub struct Ref<'a, T: RegisteredClass> {
    cell: &'a ClassObject<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: RegisteredClass> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds a shared borrow of a READY value (checked when it was
        // made; it cannot be dropped while borrowed).
        unsafe { (*self.cell.value.get()).assume_init_ref() }
    }
}

impl<T: RegisteredClass> Drop for Ref<'_, T> {
    fn drop(&mut self) {
        self.cell.header.borrow.fetch_sub(1, Ordering::Release);
    }
}

impl<T: RegisteredClass + std::fmt::Debug> std::fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// An exclusive borrow of a registered instance's value: derefs to `&mut T`. While it lives,
/// every other borrow of the same instance is refused (a `RuntimeError` in Python).
pub struct RefMut<'a, T: RegisteredClass> {
    cell: &'a ClassObject<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: RegisteredClass> Deref for RefMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the exclusive borrow of a READY value.
        unsafe { (*self.cell.value.get()).assume_init_ref() }
    }
}

impl<T: RegisteredClass> DerefMut for RefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the exclusive borrow of a READY value, and `&mut self`
        // makes this the only reference made through it.
        unsafe { (*self.cell.value.get()).assume_init_mut() }
    }
}

impl<T: RegisteredClass> Drop for RefMut<'_, T> {
    fn drop(&mut self) {
        self.cell.header.borrow.store(0, Ordering::Release);
    }
}

impl<T: RegisteredClass + std::fmt::Debug> std::fmt::Debug for RefMut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// Why [`register_class`] refused a type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The internals could not be had, or the type key is registered already with another
    /// Python type.
    #[error(transparent)]
    Internals(#[from] InternalsError),
    /// The Python type's instances are too small to hold a `ClassObject<T>`, or are
    /// variable-sized.
    #[error(
        "cannot register Python type '{python}' for Rust '{rust}': its instances have \
         basicsize {basicsize} and itemsize {itemsize}, but a ClassObject<{rust}> needs \
         basicsize {needed} and itemsize 0; make the type spec's basicsize \
         ClassObject::<T>::BASIC_SIZE"
    )]
    Layout {
        /// The Python type's name.
        python: String,
        /// The Rust type.
        rust: &'static str,
        /// The type's `tp_basicsize`.
        basicsize: isize,
        /// The type's `tp_itemsize`.
        itemsize: isize,
        /// `size_of::<ClassObject<T>>()`.
        needed: usize,
    },
    /// The type object is registered already in the other registry (shared vs
    /// module-local) of this module: a type object belongs to one registry.
    #[error(
        "cannot register Python type '{python}' for Rust '{rust}': it is registered already \
         in the other registry (shared or module-local) of this module, under type key \
         '{type_key}'; register each type object once, shared or local"
    )]
    Twice {
        /// The Python type's name.
        python: String,
        /// The Rust type.
        rust: &'static str,
        /// The key it is registered under.
        type_key: String,
    },
}

/// Records `type_object` as the Python type of `T` in this interpreter: in the shared
/// registry (found by every module with the same internals key) or this module's local one.
/// Call it in the module's exec slot, after [`bindery_internals::on_module_exec`].
///
/// Registering the same key again with the same type object returns the existing entry (a
/// module imported twice); with another type object it is refused, naming the module that
/// registered it first. The registry does not keep the type alive: keep it for the life of
/// the interpreter (as a module attribute or in module state), as modules do anyway.
///
/// # Safety
/// `type_object` is a live type object of the current interpreter whose instances are
/// [`ClassObject<T>`]s: allocated by its `tp_alloc` (zeroed), given a value only through
/// [`ClassObject::init`], destroyed by a `tp_dealloc` that calls
/// [`ClassObject::drop_value`] (such as [`tp_dealloc::<T>`](tp_dealloc)). Subclasses
/// inherit the layout.
pub unsafe fn register_class<T: RegisteredClass>(
    py: Python<'_>,
    type_object: *mut ffi::PyTypeObject,
    module: &str,
    visibility: Visibility,
) -> Result<&'static TypeInfo, RegisterError> {
    // SAFETY: a live type object (caller).
    let (basicsize, itemsize) =
        unsafe { ((*type_object).tp_basicsize, (*type_object).tp_itemsize) };
    let needed = size_of::<ClassObject<T>>();
    if basicsize < needed as isize || itemsize != 0 {
        return Err(RegisterError::Layout {
            python: type_name_of(py, type_object),
            rust: std::any::type_name::<T>(),
            basicsize,
            itemsize,
            needed,
        });
    }
    let registries = Registries::get(py)?;
    let (registry, other) = match visibility {
        Visibility::Shared => (registries.shared(), registries.local()),
        Visibility::Local => (registries.local(), registries.shared()),
    };
    if let Some(existing) = other.by_type(py, type_object) {
        return Err(RegisterError::Twice {
            python: type_name_of(py, type_object),
            rust: std::any::type_name::<T>(),
            type_key: existing.type_key.clone(),
        });
    }
    let info = TypeInfo {
        type_key: T::TYPE_KEY.to_owned(),
        rust_name: std::any::type_name::<T>(),
        type_object,
        size: size_of::<T>(),
        align: align_of::<T>(),
        drop_in_place: drop_value_in_place::<T>,
        module: module.to_owned(),
    };
    let registered = registry.register(py, info);
    // Cached answers of this module binary may change (a key now found locally).
    crate::lookup::bump_epoch();
    Ok(registered?)
}

/// `TypeInfo::drop_in_place` of registered types.
///
/// # Safety
/// `p` points to an initialised `T` that is not used afterwards.
unsafe fn drop_value_in_place<T>(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::drop_in_place(p.cast::<T>()) }
}

/// The name of a type object (`tp_name`, e.g. `bindery_example_cast_a.Point`), for messages.
fn type_name_of(_py: Python<'_>, ty: *mut ffi::PyTypeObject) -> String {
    // SAFETY: a live type object; tp_name is a NUL-terminated string it owns.
    let name = unsafe { std::ffi::CStr::from_ptr((*ty).tp_name) };
    name.to_string_lossy().into_owned()
}

/// Whether `info` describes `T`: same key, same value size and alignment.
fn matches_key<T: RegisteredClass>(info: &TypeInfo) -> bool {
    info.type_key == T::TYPE_KEY
}

fn layout_ok<T: RegisteredClass>(info: &TypeInfo) -> bool {
    info.size == size_of::<T>() && info.align == align_of::<T>()
}

fn layout_mismatch<T: RegisteredClass>(python: String, info: &TypeInfo) -> CastError {
    CastError::LayoutMismatch {
        python,
        rust: std::any::type_name::<T>(),
        type_key: T::TYPE_KEY,
        module: info.module.clone(),
        registered_size: info.size,
        registered_align: info.align,
        size: size_of::<T>(),
        align: align_of::<T>(),
    }
}

/// The `ClassObject<T>` behind `obj`, or why `obj` is not an instance of `T`'s class.
fn class_object<'a, T: RegisteredClass>(
    obj: Borrowed<'a, '_>,
) -> Result<&'a ClassObject<T>, CastError> {
    let registries = Registries::get(obj.py())?;
    match registries.nearest_registered(obj.type_ptr()) {
        Some(info) if matches_key::<T>(info) => {
            if !layout_ok::<T>(info) {
                return Err(layout_mismatch::<T>(obj.type_name(), info));
            }
            // SAFETY: the nearest registered base of the object's type was registered for
            // T's key with T's layout, so (register_class's contract) the object is a
            // ClassObject<T>; it is alive for 'a (Borrowed).
            Ok(unsafe { ClassObject::at(obj.as_ptr()) })
        }
        _ => Err(if registries.by_key(T::TYPE_KEY).is_some() {
            CastError::WrongType {
                python: obj.type_name(),
                rust: std::any::type_name::<T>().to_owned(),
            }
        } else {
            CastError::Unregistered {
                python: obj.type_name(),
                rust: std::any::type_name::<T>(),
            }
        }),
    }
}

fn check_ready<T: RegisteredClass>(
    obj: Borrowed<'_, '_>,
    cell: &ClassObject<T>,
) -> Result<(), CastError> {
    if cell.header.state.load(Ordering::Acquire) == READY {
        Ok(())
    } else {
        Err(CastError::Uninitialized {
            python: obj.type_name(),
            rust: std::any::type_name::<T>(),
        })
    }
}

/// Borrows the value of a registered instance (subclasses included) for a garbage-collector
/// callback, or any code that must not allocate or call Python: registry lookups and type
/// reads only. `None` if `obj` is not an instance of `T`'s class, holds no value (not yet
/// constructed, already dropped) or is mutably borrowed, or if internals cannot be had.
///
/// Works in the interpreter's last garbage collection, after its state dict was cleared:
/// internals are leaked on purpose and never re-created (see `bindery_internals`). In the
/// main interpreter the lookup is allocation-free; in a subinterpreter whose state dict
/// was already cleared, `bindery_internals` finds its (still valid) registry again on its
/// slow path, which makes a temporary key string.
///
/// No borrow is recorded: do not run Python code while holding the reference.
pub fn try_borrow_in_gc<'a, T: RegisteredClass>(obj: Borrowed<'a, '_>) -> Option<&'a T> {
    let registries = Registries::get(obj.py()).ok()?;
    let info = registries.nearest_registered_uncached(obj.type_ptr())?;
    if !matches_key::<T>(info) || !layout_ok::<T>(info) {
        return None;
    }
    // SAFETY: as in `class_object`: the object is a ClassObject<T>, alive for 'a.
    unsafe { ClassObject::<T>::at(obj.as_ptr()) }.peek()
}

fn already_borrowed<T: RegisteredClass>(obj: Borrowed<'_, '_>, mutable: bool) -> CastError {
    CastError::AlreadyBorrowed {
        python: obj.type_name(),
        rust: std::any::type_name::<T>(),
        what: if mutable { "&mut " } else { "&" },
        held: if mutable {
            "borrowed"
        } else {
            "mutably borrowed"
        },
    }
}

/// From an instance of `T`'s registered class (or a subclass): a shared borrow of its
/// value. A mutably borrowed instance is a `RuntimeError`.
impl<'a, 'py, T: RegisteredClass> FromPython<'a, 'py> for Ref<'a, T> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let cell = class_object::<T>(obj)?;
        check_ready(obj, cell)?;
        cell.try_borrow()
            .ok_or_else(|| already_borrowed::<T>(obj, false))
    }
}

/// From an instance of `T`'s registered class (or a subclass): the exclusive borrow of its
/// value. An instance borrowed in any way is a `RuntimeError`.
impl<'a, 'py, T: RegisteredClass> FromPython<'a, 'py> for RefMut<'a, T> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let cell = class_object::<T>(obj)?;
        check_ready(obj, cell)?;
        cell.try_borrow_mut()
            .ok_or_else(|| already_borrowed::<T>(obj, true))
    }
}

/// From an instance of `T`'s registered class (or a subclass): a clone of its value.
impl<'a, 'py, T: RegisteredClass + Clone> FromPython<'a, 'py> for T {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        Ref::<T>::from_python(obj).map(|value| T::clone(&value))
    }
}

/// A new instance of `T`'s registered class (module-local registration first, then the
/// shared one), holding the value.
impl<'py, T: RegisteredClass> IntoPython<'py> for T {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        new_instance(py, self)
    }
}

/// A new instance of `T`'s registered class holding `value`.
pub fn new_instance<T: RegisteredClass>(py: Python<'_>, value: T) -> Result<Owned<'_>, CastError> {
    let registries = Registries::get(py)?;
    let Some(info) = registries.by_key(T::TYPE_KEY) else {
        return Err(CastError::UnregisteredValue {
            rust: std::any::type_name::<T>(),
        });
    };
    let ty = info.type_object;
    if !layout_ok::<T>(info) {
        return Err(layout_mismatch::<T>(type_name_of(py, ty), info));
    }
    // SAFETY: a registered type object stays alive with its interpreter (register_class's
    // contract); reading its tp_alloc slot.
    let alloc = unsafe { (*ty).tp_alloc }.unwrap_or(ffi::PyType_GenericAlloc);
    // SAFETY: attached thread state; allocates a zeroed instance (state EMPTY) with a
    // reference to its type, or returns null with MemoryError.
    let obj = owned_or_err(py, unsafe { alloc(ty, 0) })?;
    // SAFETY: `obj` is a fresh instance of a type registered for T (a ClassObject<T>).
    let stored = unsafe { ClassObject::<T>::init(obj.as_ptr(), value) };
    debug_assert!(stored.is_ok(), "a fresh instance is empty");
    Ok(obj)
}

/// A `tp_dealloc` for registered classes: untracks the object from the GC if its type is
/// tracked, clears weak references, drops the value (if any), frees the memory with the
/// type's `tp_free` and releases the instance's reference to its heap type. Works for
/// Python subclasses too (CPython's `subtype_dealloc` calls it). A panic in `T`'s `Drop`
/// aborts the process with a message naming `T`: it cannot unwind into C.
///
/// # Safety
/// Only as the `tp_dealloc` slot of a type registered for `T` (CPython calls it with an
/// instance whose reference count reached zero, GIL held).
pub unsafe extern "C" fn tp_dealloc<T: RegisteredClass>(obj: *mut ffi::PyObject) {
    // SAFETY: a live instance being destroyed; its type is alive (the instance holds it).
    let ty = unsafe { ffi::Py_TYPE(obj) };
    // SAFETY: reading the live type's flags and slots; untracking an object of a GC type
    // (a no-op if it was untracked already, e.g. by subtype_dealloc); clearing weakrefs of
    // a type that supports them.
    unsafe {
        if ffi::PyType_IS_GC(ty) != 0 {
            ffi::PyObject_GC_UnTrack(obj.cast());
        }
        if (*ty).tp_weaklistoffset > 0 {
            ffi::PyObject_ClearWeakRefs(obj);
        }
    }
    // SAFETY: `obj` is an instance of a type registered for T (slot contract).
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
        ClassObject::<T>::drop_value(obj)
    }));
    if dropped.is_err() {
        abort_with(&format!(
            "bindery: the Drop of Rust '{}' panicked in tp_dealloc; a panic cannot unwind \
             into CPython, aborting",
            std::any::type_name::<T>()
        ));
    }
    // SAFETY: reading the type's slots; tp_free is inherited by every heap type
    // (PyObject_Free or PyObject_GC_Del); the instance is not used after it is freed; the
    // instance owned a reference to its heap type, released last.
    unsafe {
        match (*ty).tp_free {
            Some(free) => free(obj.cast()),
            None => ffi::PyObject_Free(obj.cast()),
        }
        if ffi::PyType_HasFeature(ty, ffi::Py_TPFLAGS_HEAPTYPE) != 0 {
            ffi::Py_DECREF(ty.cast());
        }
    }
}

/// Prints `message` and aborts: for slots that can neither raise nor unwind.
pub(crate) fn abort_with(message: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
    std::process::abort()
}
