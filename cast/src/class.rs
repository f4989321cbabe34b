//! Registered classes: a Rust type `T` bound to a Python type whose instances are laid out
//! as [`ClassObject<T>`], registered in the internals under a stable type key, so separately
//! built modules cast each other's instances.
//!
//! Rust -> Python makes a new instance of the registered type (module-local registry first,
//! then the shared one, by type key). Python -> Rust finds the nearest registered type on the
//! instance's `tp_base` chain (so Python subclasses work) and checks that it was registered
//! for `T`'s type key and a value of `T`'s size; the value is then borrowed under a runtime
//! borrow flag ([`Ref`], [`RefMut`]) or cloned.

use bindery_capsule::{Borrowed, Owned, Python};
use bindery_internals::{InternalsError, TypeInfo};
use pyo3_ffi as ffi;

use crate::error::CastError;
use crate::lookup::Registries;
use crate::object::{ClassObject, Ref, RefMut};
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
/// [`ClassObject::drop_value`] (such as [`tp_dealloc::<T>`](crate::tp_dealloc)). Subclasses
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
    if cell.is_ready() {
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
/// internals are leaked on purpose and never re-created (see `bindery_internals`). The
/// lookup uses `bindery_internals::get_internals_if_created`: it never creates internals,
/// never looks in the state dict, never allocates and never calls Python, in the main
/// interpreter and in subinterpreters alike.
///
/// No borrow is recorded: do not run Python code while holding the reference.
pub fn try_borrow_in_gc<'a, T: RegisteredClass>(obj: Borrowed<'a, '_>) -> Option<&'a T> {
    let registries = Registries::get_existing(obj.py())?;
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

/// A shared borrow of the value in `obj`'s `cell`: refused if it is not constructed (or
/// already dropped) or mutably borrowed.
#[inline]
fn shared<'a, T: RegisteredClass>(
    obj: Borrowed<'a, '_>,
    cell: &'a ClassObject<T>,
) -> Result<Ref<'a, T>, CastError> {
    check_ready(obj, cell)?;
    cell.try_borrow()
        .ok_or_else(|| already_borrowed::<T>(obj, false))
}

/// The exclusive borrow of the value in `obj`'s `cell`: refused if it is not constructed
/// (or already dropped) or borrowed in any way.
#[inline]
fn exclusive<'a, T: RegisteredClass>(
    obj: Borrowed<'a, '_>,
    cell: &'a ClassObject<T>,
) -> Result<RefMut<'a, T>, CastError> {
    check_ready(obj, cell)?;
    cell.try_borrow_mut()
        .ok_or_else(|| already_borrowed::<T>(obj, true))
}

/// From an instance of `T`'s registered class (or a subclass): a shared borrow of its
/// value. A mutably borrowed instance is a `RuntimeError`.
impl<'a, 'py, T: RegisteredClass> FromPython<'a, 'py> for Ref<'a, T> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        shared(obj, class_object::<T>(obj)?)
    }
}

/// From an instance of `T`'s registered class (or a subclass): the exclusive borrow of its
/// value. An instance borrowed in any way is a `RuntimeError`.
impl<'a, 'py, T: RegisteredClass> FromPython<'a, 'py> for RefMut<'a, T> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        exclusive(obj, class_object::<T>(obj)?)
    }
}

impl<T: RegisteredClass> ClassObject<T> {
    /// A shared borrow of the value of `obj`, without a registry lookup: for the receiver
    /// of a method or slot of `T`'s own class, whose layout CPython already guarantees (a
    /// method descriptor only accepts instances of its class and its subclasses). Same
    /// errors as a cast to [`Ref<T>`]: not constructed yet, or mutably borrowed.
    ///
    /// # Safety
    /// `obj`'s type is `T`'s registered class or a subclass of it (its instances are
    /// `ClassObject<T>`).
    #[inline]
    pub unsafe fn borrow<'a>(obj: Borrowed<'a, '_>) -> Result<Ref<'a, T>, CastError> {
        // SAFETY: the caller guarantees the layout; `obj` is alive for 'a.
        shared(obj, unsafe { ClassObject::<T>::at(obj.as_ptr()) })
    }

    /// The exclusive borrow of the value of `obj`, without a registry lookup (see
    /// [`ClassObject::borrow`]).
    ///
    /// # Safety
    /// As for [`ClassObject::borrow`].
    #[inline]
    pub unsafe fn borrow_mut<'a>(obj: Borrowed<'a, '_>) -> Result<RefMut<'a, T>, CastError> {
        // SAFETY: the caller guarantees the layout; `obj` is alive for 'a.
        exclusive(obj, unsafe { ClassObject::<T>::at(obj.as_ptr()) })
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
