//! The `extern "C"` slot functions: [`tp_traverse`], [`tp_traverse_by_cast`] and
//! [`tp_clear`], generic over the registered Rust type.

use std::any::Any;
use std::ffi::{CStr, c_int, c_void};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bindery_capsule::{Borrowed, Python};
use bindery_cast::{ClassObject, RefMut, RegisteredClass, cast, try_borrow_in_gc};
use pyo3_ffi as ffi;

use crate::clear::{Clear, Cleared};
use crate::traverse::{Traverse, Visit};

/// `tp_traverse` for a registered class whose Rust value implements [`Traverse`], reading
/// the value in place ([`ClassObject::gc_get`]): no registry lookup.
///
/// Reports the instance's heap type (an instance owns a reference to it; CPython 3.9+
/// expects `Py_VISIT(Py_TYPE(self))`), then, if the value is constructed, not yet dropped and
/// not mutably borrowed, everything it owns. Before `tp_new`/`__init__` stored the value, or
/// after `tp_dealloc` or a clear dropped it, only the type is reported (pybind11 #4869: the
/// collector may meet an object at those moments). No reference-count change, no allocation,
/// no Python call. Returns the first non-zero visit result. A panic (in `T`'s `traverse`)
/// aborts the process with a message naming `T` and the Python type: it cannot unwind into C.
///
/// # Safety
/// Only as the `Py_tp_traverse` slot of a type whose instances are `ClassObject<T>` (a type
/// registered for `T` with [`bindery_cast::register_class`], or a subclass): CPython calls
/// it with a live instance, a visit function and its argument.
pub unsafe extern "C" fn tp_traverse<T: RegisteredClass + Traverse>(
    slf: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: the slot contract: `slf` is a live ClassObject<T>, and the reference is used
    // only during this call.
    traverse_with::<T>(slf, visit, arg, || unsafe { ClassObject::<T>::gc_get(slf) })
}

/// `tp_traverse` that reaches the value through a cast of `self`
/// ([`bindery_cast::try_borrow_in_gc`]): the instance's type is looked up in the interpreter's
/// type registry (module-local first, then shared), as code that casts objects in a GC
/// callback does. This is the path that needs internals to outlive the state dict: it keeps
/// working in the interpreter's last garbage collection because internals are leaked, never
/// re-created (see `bindery_internals`).
///
/// Same reports and guarantees as [`tp_traverse`]; in addition, an object that is not
/// (or no longer) an instance of `T`'s registered class reports only its type. The lookup
/// allocates nothing and calls no Python code, also after the state dict was cleared
/// (internals are then reached through the module's record, not through the dict).
///
/// # Safety
/// As the `Py_tp_traverse` slot of a type registered for `T` (or a subclass), or on any live
/// object, with a visit function and its argument, holding the GIL (the lookup decides
/// whether the object is a `T`).
pub unsafe extern "C" fn tp_traverse_by_cast<T: RegisteredClass + Traverse>(
    slf: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    traverse_with::<T>(slf, visit, arg, || {
        // SAFETY: the collector runs with the GIL (an attached thread state) for the whole
        // traverse call.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: `slf` is the live instance being traversed, alive for this call.
        let obj = unsafe { Borrowed::from_ptr(py, slf) }?;
        try_borrow_in_gc::<T>(obj)
    })
}

/// The body of both traverse slots: the type, then the value if `value` finds one.
fn traverse_with<'x, T: RegisteredClass + Traverse>(
    slf: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
    value: impl FnOnce() -> Option<&'x T>,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `visit` and `arg` come from CPython for this traverse call (slot
        // contract), and the Visit does not outlive it.
        let visit = unsafe { Visit::from_raw(visit, arg) };
        // SAFETY: `slf` is live, so is its type.
        let ty = unsafe { ffi::Py_TYPE(slf) };
        // SAFETY: reading the flags of a live type.
        if unsafe { ffi::PyType_HasFeature(ty, ffi::Py_TPFLAGS_HEAPTYPE) } != 0 {
            // SAFETY: instances of heap types own a strong reference to their type
            // (PyType_GenericAlloc takes it, tp_dealloc releases it).
            unsafe { visit.call_ptr(ty.cast()) }?;
        }
        match value() {
            Some(value) => value.traverse(visit),
            None => Ok(()),
        }
    }));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(stop)) => stop.code(),
        Err(payload) => abort_in_slot::<T>("tp_traverse", slf, payload.as_ref()),
    }
}

/// `tp_clear` for a registered class whose Rust value implements [`Clear`].
///
/// Borrows the value mutably through a cast of `self` (`cast::<RefMut<T>>`, the registry
/// lookup path), moves its references out with [`Clear::clear_refs`], releases the borrow,
/// and only then drops them: finalizers that run meanwhile may use the object and find it
/// empty and usable. The value stays constructed (methods keep working on the empty value).
///
/// Does nothing when there is nothing it may touch: before the value is constructed, after
/// it was dropped, while it is borrowed (a method is running; the collector then keeps the
/// cycle alive and retries in a later collection), or if the object is not an instance of
/// `T`'s class. Always returns 0 and leaves no Python error set. A panic (in `clear_refs`, or
/// in a `Drop` of what it released) aborts the process with a message naming `T`.
///
/// # Safety
/// Only as the `Py_tp_clear` slot of a type registered for `T` (or a subclass): CPython calls
/// it with a live instance, holding the GIL.
pub unsafe extern "C" fn tp_clear<T: RegisteredClass + Clear>(slf: *mut ffi::PyObject) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: tp_clear is called (by the collector, or by subtype_clear) with an attached
        // thread state for the whole call.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: `slf` is the live instance being cleared, alive for this call.
        let Some(obj) = (unsafe { Borrowed::from_ptr(py, slf) }) else {
            return;
        };
        // SAFETY: the slot contract: `slf` is a ClassObject<T>. A cheap check first, so an
        // emptied object (the common case in a collection) costs no cast error.
        if !unsafe { ClassObject::<T>::is_initialized(slf) } {
            return;
        }
        let mut cleared = Cleared::new();
        if let Ok(mut value) = cast::<RefMut<'_, T>>(obj) {
            value.clear_refs(&mut cleared);
        }
        // The borrow is released: now the references go, and their finalizers may run.
        drop(cleared);
    }));
    match outcome {
        Ok(()) => 0,
        Err(payload) => abort_in_slot::<T>("tp_clear", slf, payload.as_ref()),
    }
}

/// Writes why a slot that can neither raise nor unwind failed, then aborts.
pub(crate) fn abort_in_slot<T>(slot: &str, slf: *mut ffi::PyObject, payload: &dyn Any) -> ! {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    let python = if slf.is_null() {
        "<already freed>".to_owned()
    } else {
        // SAFETY: `slf` is the live instance the slot was called with; tp_name is a
        // NUL-terminated string owned by its type.
        unsafe { CStr::from_ptr((*ffi::Py_TYPE(slf)).tp_name) }
            .to_string_lossy()
            .into_owned()
    };
    let _ = writeln!(
        std::io::stderr(),
        "bindery: a panic in {slot} of Python type '{python}' (Rust '{}'): {detail}\n\
         {slot} cannot raise and a panic cannot unwind into CPython, so the process aborts.",
        std::any::type_name::<T>()
    );
    std::process::abort()
}
