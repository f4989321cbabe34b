//! [`tp_dealloc`]: deallocation that releases the value's Python objects iteratively, so a
//! long chain of containers does not exhaust the stack.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};

use bindery_capsule::{Borrowed, Python};
use bindery_cast::{ClassObject, RefMut, RegisteredClass, cast};
use pyo3_ffi as ffi;

use crate::clear::{Clear, Cleared};
use crate::slots::abort_in_slot;

thread_local! {
    /// Whether a [`release`] loop runs further up this thread's stack.
    static RELEASING: Cell<bool> = const { Cell::new(false) };
    /// References waiting for that loop: queued by deallocations it caused.
    static PENDING: RefCell<Vec<Cleared>> = const { RefCell::new(Vec::new()) };
}

/// `tp_dealloc` for a registered class whose Rust value owns Python objects.
///
/// Moves the value's references out ([`Clear::clear_refs`], through a cast of `self`), then
/// does what [`bindery_cast::tp_dealloc`] does (untracks the object from the collector,
/// clears weak references, drops the now empty value, frees the memory, releases the heap
/// type), and only then releases the references. If releasing them deallocates another such
/// object (a chain: each container holding the next), that deallocation queues its
/// references for the loop already running on this thread instead of recursing: the stack
/// stays flat however long the chain, as CPython's "trashcan" does for lists and dicts.
/// (With `bindery_cast::tp_dealloc` alone, each link costs a few stack frames: a chain of
/// some thousands of containers overflows an 8 MiB stack.)
///
/// If the value cannot be borrowed (it is borrowed elsewhere, or internals cannot be had),
/// it is dropped in place as `bindery_cast::tp_dealloc` would. A panic (in `clear_refs` or a
/// `Drop`) aborts the process with a message naming `T`: it cannot unwind into C.
///
/// # Safety
/// Only as the `Py_tp_dealloc` slot of a type registered for `T` (CPython calls it with an
/// instance whose reference count reached zero, GIL held), as for
/// [`bindery_cast::tp_dealloc`].
pub unsafe extern "C" fn tp_dealloc<T: RegisteredClass + Clear>(obj: *mut ffi::PyObject) {
    let cleared = catch_unwind(AssertUnwindSafe(|| take_references::<T>(obj)))
        .unwrap_or_else(|payload| abort_in_slot::<T>("tp_dealloc", obj, payload.as_ref()));
    // SAFETY: the slot contract is bindery_cast::tp_dealloc's (which aborts on a panic of
    // its own); `obj` is not used after it.
    unsafe { bindery_cast::tp_dealloc::<T>(obj) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| release(cleared))) {
        // `obj` is freed by now: only the Rust type can be named.
        abort_in_slot::<T>("tp_dealloc", std::ptr::null_mut(), payload.as_ref());
    }
}

/// The value's references, moved out of it (nothing if it holds no value or cannot be
/// borrowed).
fn take_references<T: RegisteredClass + Clear>(obj: *mut ffi::PyObject) -> Cleared {
    let mut cleared = Cleared::new();
    // SAFETY: the slot contract: `obj` is a ClassObject<T>, alive until tp_dealloc frees it.
    if !unsafe { ClassObject::<T>::is_initialized(obj) } {
        return cleared;
    }
    // SAFETY: tp_dealloc runs with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `obj` is live (being deallocated, not yet freed) for this call.
    if let Some(obj) = unsafe { Borrowed::from_ptr(py, obj) }
        && let Ok(mut value) = cast::<RefMut<'_, T>>(obj)
    {
        value.clear_refs(&mut cleared);
    }
    cleared
}

/// Drops `cleared`, and whatever deallocations it causes queue, in a loop at the outermost
/// call on this thread.
fn release(cleared: Cleared) {
    if cleared.is_empty() {
        return;
    }
    let outermost = RELEASING.try_with(|releasing| !releasing.replace(true));
    match outermost {
        // A loop runs further up: hand it over (or, while the thread is being torn down and
        // its queue is gone, drop here).
        Ok(false) => {
            let mut cleared = Some(cleared);
            let _ = PENDING.try_with(|pending| pending.borrow_mut().extend(cleared.take()));
            drop(cleared);
        }
        Ok(true) => {
            let mut next = Some(cleared);
            while let Some(cleared) = next {
                drop(cleared); // may queue more
                next = PENDING
                    .try_with(|pending| pending.borrow_mut().pop())
                    .ok()
                    .flatten();
            }
            let _ = RELEASING.try_with(|releasing| releasing.set(false));
        }
        Err(_) => drop(cleared),
    }
}
