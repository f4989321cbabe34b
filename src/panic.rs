//! Panics: a panic inside a bound function never unwinds into C. It becomes a
//! `PanicException`, a subclass of `BaseException` (not `Exception`, as in PyO3): a panic
//! is a bug, and an ordinary `except Exception:` must not swallow it by accident. The class
//! is created once per interpreter, kept in the interpreter state dict, and exposed by every
//! bindery module as `PanicException`.

use std::any::Any;

use bindery_capsule::{Dtor, Python, atomic_get_or_create_in_state_dict};
use pyo3_ffi as ffi;

use crate::error::{ExceptionClass, set_error};

/// State-dict key of the per-interpreter `PanicException` class.
const KEY: &str = "__bindery_PanicException_v1__";

/// A strong reference to the class, released when the interpreter clears its state dict.
struct PanicClass(*mut ffi::PyObject);

// SAFETY: the pointer is only used with the GIL of the interpreter that owns the state
// dict holding this value; its drop runs when that interpreter clears its dict (GIL held).
unsafe impl Send for PanicClass {}

impl Drop for PanicClass {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: runs from the capsule destructor, with the interpreter's GIL; we own
            // one reference.
            unsafe { ffi::Py_DECREF(self.0) };
        }
    }
}

/// This interpreter's `PanicException` class (borrowed), created on first use.
pub(crate) fn panic_class(py: Python<'_>) -> Option<*mut ffi::PyObject> {
    let make = || {
        // SAFETY: attached thread state; valid C strings; `PyExc_BaseException` is a static.
        let class = unsafe {
            ffi::PyErr_NewExceptionWithDoc(
                c"bindery.PanicException".as_ptr(),
                c"A Rust panic in a bindery extension module: a bug. Derives from BaseException so `except Exception` does not hide it.".as_ptr(),
                ffi::PyExc_BaseException,
                std::ptr::null_mut(),
            )
        };
        if class.is_null() {
            // SAFETY: attached thread state; the error is reported by the fallback below.
            unsafe { ffi::PyErr_Clear() };
        }
        PanicClass(class)
    };
    let (class, _) = atomic_get_or_create_in_state_dict(py, KEY, make, Dtor::Drop).ok()?;
    // SAFETY: the capsule owns the value while it stays in the state dict.
    let class = unsafe { class.as_ref() }.0;
    (!class.is_null()).then_some(class)
}

/// Raises the panic `payload` as `PanicException` (or `RuntimeError` if the class cannot be
/// made, e.g. during finalization).
pub(crate) fn raise_panic(py: Python<'_>, payload: Box<dyn Any + Send>) {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    let message = format!("Rust panic: {text}");
    // The payload may run code on drop; drop it while nothing is pending.
    drop(payload);
    match panic_class(py) {
        Some(class) => set_error(py, class, &message),
        None => set_error(py, ExceptionClass::RuntimeError.as_ptr(py), &message),
    }
}

/// Runs the body of an `extern "C"` entry point: a panic becomes `PanicException` and the
/// entry point returns `failed` (null, -1) instead of unwinding into C.
#[inline]
pub(crate) fn catch_panic<R>(py: Python<'_>, failed: R, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => {
            raise_panic(py, panic);
            failed
        }
    }
}
