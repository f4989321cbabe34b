//! The only place in this crate that depends on the Python version (`#[cfg(Py_3_xx)]`).
//!
//! Everything else uses pyo3-ffi directly or its own `pyo3_ffi::compat` shims
//! (`PyThreadState_GetUnchecked`, `PyDict_GetItemRef`, `PyDict_SetDefaultRef`), which already
//! cover 3.9-3.13. What pyo3-ffi does not unify is the shape of a fetched exception: one object
//! on 3.12+ (`PyErr_GetRaisedException`), a (type, value, traceback) triple before
//! (`PyErr_Fetch`). [`RawError`] hides that difference.

use pyo3_ffi as ffi;
#[cfg(not(Py_3_12))]
use std::ffi::{c_int, c_ulong, c_void};
use std::ptr::NonNull;

/// A Python exception taken out of the thread state: it owns strong references and must be
/// consumed by [`RawError::restore`] or [`RawError::release`] with an attached thread state.
pub(crate) struct RawError {
    #[cfg(Py_3_12)]
    exc: NonNull<ffi::PyObject>,
    #[cfg(not(Py_3_12))]
    ptype: NonNull<ffi::PyObject>,
    #[cfg(not(Py_3_12))]
    pvalue: *mut ffi::PyObject,
    #[cfg(not(Py_3_12))]
    ptraceback: *mut ffi::PyObject,
}

impl RawError {
    /// Takes the pending exception of the current thread state (clearing it); `None` if none.
    ///
    /// # Safety
    /// The calling thread has an attached thread state.
    #[cfg(Py_3_12)]
    pub(crate) unsafe fn fetch() -> Option<RawError> {
        // SAFETY: attached thread state (caller); returns a new reference or null.
        let exc = unsafe { ffi::PyErr_GetRaisedException() };
        NonNull::new(exc).map(|exc| RawError { exc })
    }

    /// Takes the pending exception of the current thread state (clearing it); `None` if none.
    ///
    /// # Safety
    /// The calling thread has an attached thread state.
    #[cfg(not(Py_3_12))]
    pub(crate) unsafe fn fetch() -> Option<RawError> {
        let mut ptype = std::ptr::null_mut();
        let mut pvalue = std::ptr::null_mut();
        let mut ptraceback = std::ptr::null_mut();
        // SAFETY: attached thread state (caller); the three out-pointers are valid locals and
        // receive new references (or null).
        unsafe { ffi::PyErr_Fetch(&mut ptype, &mut pvalue, &mut ptraceback) };
        NonNull::new(ptype).map(|ptype| RawError {
            ptype,
            pvalue,
            ptraceback,
        })
    }

    /// Makes this exception the pending one again (steals the references).
    ///
    /// # Safety
    /// The calling thread has an attached thread state.
    pub(crate) unsafe fn restore(self) {
        #[cfg(Py_3_12)]
        // SAFETY: attached thread state (caller); the call steals our strong reference.
        unsafe {
            ffi::PyErr_SetRaisedException(self.exc.as_ptr())
        };
        #[cfg(not(Py_3_12))]
        // SAFETY: attached thread state (caller); the call steals the three references
        // (value and traceback may be null, as PyErr_Fetch left them).
        unsafe {
            ffi::PyErr_Restore(self.ptype.as_ptr(), self.pvalue, self.ptraceback)
        };
    }

    /// A new reference to the exception instance (normalizing the exception first on
    /// versions before 3.12), releasing every other reference this value held. `None` only if
    /// normalization produced nothing usable (CPython then leaves no error set).
    ///
    /// # Safety
    /// The calling thread has an attached thread state.
    pub(crate) unsafe fn into_instance(self) -> Option<NonNull<ffi::PyObject>> {
        #[cfg(Py_3_12)]
        {
            Some(self.exc)
        }
        #[cfg(not(Py_3_12))]
        {
            let mut ptype = self.ptype.as_ptr();
            let mut pvalue = self.pvalue;
            let mut ptraceback = self.ptraceback;
            // SAFETY: attached thread state (caller); the three pointers are owned references
            // (or null for value / traceback) that the call may replace by other owned ones.
            unsafe { ffi::PyErr_NormalizeException(&mut ptype, &mut pvalue, &mut ptraceback) };
            // SAFETY: we own the type and traceback references (null is accepted).
            unsafe {
                ffi::Py_XDECREF(ptype);
                ffi::Py_XDECREF(ptraceback);
            }
            NonNull::new(pvalue)
        }
    }
}

/// Whether the calling OS thread has an attached thread state.
///
/// 3.12+: the current thread state is a thread-local in CPython, so "non-null" answers it.
/// 3.9-3.11: `_PyThreadState_UncheckedGet()` reads a process-wide variable (the thread state
/// of whichever thread holds the GIL), so non-null alone would let a thread without the GIL
/// believe it holds it. There we also compare the thread state's `thread_id` (the thread it
/// was created on, or for `threading` threads the thread running it) with the calling
/// thread. The one case that cannot be told apart: a thread state created on thread A and
/// handed to thread B (`PyEval_RestoreThread` on B) while A asks; B then sees "not attached"
/// (safe) but A sees "attached" (wrong). CPython's own threads never do this.
pub(crate) fn current_thread_is_attached() -> bool {
    // SAFETY: PyThreadState_GetUnchecked (or its pre-3.13 shim over
    // _PyThreadState_UncheckedGet) only loads a pointer; it is valid with or without a thread
    // state and even before the interpreter is initialized (it then returns null).
    let tstate = unsafe { ffi::compat::PyThreadState_GetUnchecked() };
    if tstate.is_null() {
        return false;
    }
    #[cfg(Py_3_12)]
    {
        true
    }
    #[cfg(not(Py_3_12))]
    {
        // SAFETY: `tstate` is the live current thread state (its memory stays valid while it
        // is current, and the thread holding it cannot delete it without detaching first,
        // which a read racing with that could only observe as a stale, still-mapped value);
        // `ThreadStatePrefix` mirrors the leading fields of this version's `struct _ts`.
        let owner = unsafe { (*tstate.cast::<ThreadStatePrefix>()).thread_id };
        // SAFETY: PyThread_get_thread_ident has no preconditions.
        let me = unsafe { PyThread_get_thread_ident() };
        owner == me
    }
}

#[cfg(not(Py_3_12))]
unsafe extern "C" {
    // Declared here because pyo3-ffi 0.30 does not export it (pythread.h, stable since 2.x).
    fn PyThread_get_thread_ident() -> c_ulong;
}

/// The leading fields of CPython's `struct _ts` (cpython/pystate.h) up to `thread_id`, which
/// pyo3-ffi keeps opaque. Transcribed from the 3.9.18, 3.10.13 and 3.11.7 headers; the offsets
/// are checked at compile time against `offsetof` values measured with a C compiler.
#[cfg(not(Py_3_12))]
#[repr(C)]
struct ThreadStatePrefix {
    _links: [*mut c_void; 3], // prev, next, interp
    #[cfg(not(Py_3_11))]
    _frame: *mut c_void,
    #[cfg(not(Py_3_10))]
    _recursion_depth: c_int,
    #[cfg(not(Py_3_10))]
    _overflowed_and_critical: [std::ffi::c_char; 2],
    #[cfg(not(Py_3_10))]
    _stackcheck_tracing_use_tracing: [c_int; 3],
    #[cfg(all(Py_3_10, not(Py_3_11)))]
    _recursion_headroom_stackcheck_tracing: [c_int; 4],
    #[cfg(Py_3_11)]
    _initialized_to_tracing_what: [c_int; 7],
    #[cfg(Py_3_10)]
    _cframe: *mut c_void,
    // c_profilefunc, c_tracefunc, c_profileobj, c_traceobj, curexc_type/value/traceback
    _trace_and_error: [*mut c_void; 7],
    #[cfg(not(Py_3_11))]
    _exc_state: [*mut c_void; 4],
    _exc_info: *mut c_void,
    _dict: *mut c_void,
    _gilstate_counter: c_int,
    _async_exc: *mut c_void,
    thread_id: c_ulong,
}

#[cfg(all(not(Py_3_12), target_pointer_width = "64", target_os = "linux"))]
const _: () = {
    let expected = if cfg!(Py_3_11) { 152 } else { 176 };
    assert!(std::mem::offset_of!(ThreadStatePrefix, thread_id) == expected);
};
