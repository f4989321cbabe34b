//! The fatal diagnostic: `Py_FatalError` prints the message, the Python traceback of every
//! thread and the loaded extension modules, then aborts. Its exact stderr is pinned by a
//! golden-file test.

use std::ffi::CString;

/// Stops the process with `message`. Never returns.
pub(crate) fn fatal_error(message: &str) -> ! {
    let message = CString::new(message.replace('\0', "\\0"))
        .expect("NUL bytes were replaced, so the message is a valid C string");
    // SAFETY: Py_FatalError accepts any thread state (attached or not) and a valid
    // NUL-terminated string; it does not return.
    unsafe { pyo3_ffi::Py_FatalError(message.as_ptr()) }
}
