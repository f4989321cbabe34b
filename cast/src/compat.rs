//! The only place in this crate that depends on the Python version (`#[cfg(Py_3_xx)]`).
//!
//! pyo3-ffi 0.30 declares everything used here; what differs between versions is how a raised
//! exception is taken out of the thread state and put back: one object on 3.12+
//! (`PyErr_GetRaisedException` / `PyErr_SetRaisedException`), a (type, value, traceback)
//! triple before (`PyErr_Fetch` / `PyErr_Restore`).

use pyo3_ffi as ffi;
use std::ptr::NonNull;

/// Takes the pending exception out of the thread state as one normalized exception instance
/// (a new reference, with its traceback attached); `None` if no exception is pending.
///
/// # Safety
/// The calling thread has an attached thread state.
pub(crate) unsafe fn take_exception() -> Option<NonNull<ffi::PyObject>> {
    #[cfg(Py_3_12)]
    {
        // SAFETY: attached thread state (caller); returns a new reference or null.
        NonNull::new(unsafe { ffi::PyErr_GetRaisedException() })
    }
    #[cfg(not(Py_3_12))]
    {
        let mut ptype = std::ptr::null_mut();
        let mut pvalue = std::ptr::null_mut();
        let mut ptraceback = std::ptr::null_mut();
        // SAFETY: attached thread state (caller); the out-pointers are valid locals that
        // receive new references (or null).
        unsafe { ffi::PyErr_Fetch(&mut ptype, &mut pvalue, &mut ptraceback) };
        if ptype.is_null() {
            return None;
        }
        // SAFETY: attached thread state; the three owned references may be replaced by other
        // owned ones.
        unsafe { ffi::PyErr_NormalizeException(&mut ptype, &mut pvalue, &mut ptraceback) };
        if !pvalue.is_null() && !ptraceback.is_null() {
            // SAFETY: `pvalue` is a live exception instance after normalization and
            // `ptraceback` a live traceback; the call takes its own reference.
            unsafe { ffi::PyException_SetTraceback(pvalue, ptraceback) };
        }
        // SAFETY: we own these references (null is accepted by Py_XDECREF).
        unsafe {
            ffi::Py_XDECREF(ptype);
            ffi::Py_XDECREF(ptraceback);
        }
        NonNull::new(pvalue)
    }
}

/// Makes `exc` (an exception instance; the reference is stolen) the pending exception.
///
/// # Safety
/// The calling thread has an attached thread state; `exc` is a live exception instance the
/// caller owns a reference to.
pub(crate) unsafe fn raise_exception(exc: NonNull<ffi::PyObject>) {
    #[cfg(Py_3_12)]
    {
        // SAFETY: attached thread state (caller); the call steals our reference.
        unsafe { ffi::PyErr_SetRaisedException(exc.as_ptr()) };
    }
    #[cfg(not(Py_3_12))]
    {
        let exc = exc.as_ptr();
        // SAFETY: attached thread state; `exc` is live; Py_TYPE is borrowed and gets its own
        // reference for PyErr_Restore, which steals all three (the traceback is a new
        // reference or null).
        unsafe {
            let ptype = ffi::Py_TYPE(exc).cast::<ffi::PyObject>();
            ffi::Py_INCREF(ptype);
            let ptraceback = ffi::PyException_GetTraceback(exc);
            ffi::PyErr_Restore(ptype, exc, ptraceback);
        }
    }
}

/// Platform, not version: how OS paths and bytes map onto each other. On Unix a path is
/// any byte string (what `os.fsencode` gives); elsewhere it must be valid UTF-8.
#[cfg(unix)]
pub(crate) fn os_string_from_bytes(bytes: &[u8]) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    Some(std::ffi::OsStr::from_bytes(bytes).to_owned())
}

/// See the Unix version: elsewhere paths must be valid UTF-8.
#[cfg(not(unix))]
pub(crate) fn os_string_from_bytes(bytes: &[u8]) -> Option<std::ffi::OsString> {
    std::str::from_utf8(bytes)
        .ok()
        .map(std::ffi::OsString::from)
}

/// The bytes of an OS string, as `os.fsencode` would give them back.
#[cfg(unix)]
pub(crate) fn os_str_bytes(text: &std::ffi::OsStr) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    Some(text.as_bytes())
}

/// See the Unix version: elsewhere only UTF-8 paths convert.
#[cfg(not(unix))]
pub(crate) fn os_str_bytes(text: &std::ffi::OsStr) -> Option<&[u8]> {
    text.to_str().map(str::as_bytes)
}
