//! The instance layout of registered classes, [`ClassObject<T>`]: the Python object header,
//! an initialisation state and a borrow flag, then the Rust value; the borrow guards [`Ref`]
//! and [`RefMut`]; and the generic [`tp_dealloc`].
//!
//! The state makes half-built and dropped values unreadable: instances start zeroed
//! (`EMPTY`) from `tp_alloc`, become `READY` in [`ClassObject::init`] and `DROPPED` in
//! [`ClassObject::drop_value`], which marks the state before the value's `Drop` runs.
//! Garbage-collector callbacks may run at any of these moments (before construction, after
//! a `tp_clear`, during `tp_dealloc`) and only ever see `READY` values.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicIsize, AtomicU8, Ordering};

use pyo3_ffi as ffi;

use crate::class::RegisteredClass;

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
/// ([`CastError::Uninitialized`](crate::CastError::Uninitialized)) and GC callbacks skip them until [`ClassObject::init`]
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
    pub(crate) unsafe fn at<'x>(obj: *mut ffi::PyObject) -> &'x ClassObject<T> {
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

    /// Whether the value is initialised and not dropped.
    pub(crate) fn is_ready(&self) -> bool {
        self.header.state.load(Ordering::Acquire) == READY
    }

    /// The value if it is ready and not mutably borrowed (no borrow is recorded: for code
    /// that runs no Python code while it holds the reference).
    pub(crate) fn peek(&self) -> Option<&T> {
        if self.header.state.load(Ordering::Acquire) != READY
            || self.header.borrow.load(Ordering::Acquire) == EXCLUSIVE
        {
            return None;
        }
        // SAFETY: READY and not exclusively borrowed: the value is initialised and no `&mut`
        // exists; the caller runs no Python code that could take one meanwhile.
        Some(unsafe { (*self.value.get()).assume_init_ref() })
    }

    pub(crate) fn try_borrow(&self) -> Option<Ref<'_, T>> {
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

    pub(crate) fn try_borrow_mut(&self) -> Option<RefMut<'_, T>> {
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
    // (a no-op if it was untracked already, e.g. by subtype_dealloc); clearing the weakrefs
    // of an instance whose weak-reference list (at tp_weaklistoffset, inside the instance)
    // is not empty: an instance never weakly referenced skips the call.
    unsafe {
        if ffi::PyType_IS_GC(ty) != 0 {
            ffi::PyObject_GC_UnTrack(obj.cast());
        }
        let offset = (*ty).tp_weaklistoffset;
        if offset > 0
            && !obj
                .cast::<u8>()
                .add(offset as usize)
                .cast::<*mut ffi::PyObject>()
                .read()
                .is_null()
        {
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
