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

/// The leading fields of CPython's `PyLongObject` up to its first digit, which pyo3-ffi keeps
/// opaque. 3.12+ (`Include/cpython/longintrepr.h`): a tag holding the sign (2 bits), a flag
/// bit and the digit count, then the digits. Before: `ob_size` (signed digit count) then
/// the digits.
#[cfg(Py_3_12)]
#[repr(C)]
struct LongPrefix {
    ob_base: ffi::PyObject,
    lv_tag: usize,
    digit0: u32,
}

/// See the 3.12+ version.
#[cfg(not(Py_3_12))]
#[repr(C)]
struct LongPrefix {
    ob_base: ffi::PyVarObject,
    digit0: u32,
}

/// Whether ints use 30-bit digits stored in `u32` (every 64-bit CPython build unless
/// configured with `--enable-big-digits=15`): 0 not checked yet, 1 yes, 2 no.
static DIGITS_ARE_U32: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[cold]
fn check_digit_size() -> bool {
    // SAFETY: callers hold an attached thread state; PyLong_GetInfo returns a new
    // `sys.int_info` struct sequence (a tuple subclass) or null; item 1 is `sizeof_digit`.
    let is_u32 = unsafe {
        let info = ffi::PyLong_GetInfo();
        if info.is_null() {
            ffi::PyErr_Clear();
            false
        } else {
            let size = ffi::PyTuple_GetItem(info, 1);
            let is_u32 = !size.is_null() && ffi::PyLong_AsLong(size) == 4;
            ffi::PyErr_Clear();
            ffi::Py_DECREF(info);
            is_u32
        }
    };
    let flag = if is_u32 { 1 } else { 2 };
    DIGITS_ARE_U32.store(flag, std::sync::atomic::Ordering::Relaxed);
    is_u32
}

/// The value of an exact `int` that has at most one digit (|value| < 2**30), read inline
/// from the object; `None` for larger ints (and on builds with 15-bit digits).
///
/// # Safety
/// `obj` is a live exact `int` (`PyLong_CheckExact`), and the thread state is attached.
#[inline]
pub(crate) unsafe fn small_int(obj: *mut ffi::PyObject) -> Option<i64> {
    let digits_are_u32 = match DIGITS_ARE_U32.load(std::sync::atomic::Ordering::Relaxed) {
        1 => true,
        0 => check_digit_size(),
        _ => false,
    };
    if !digits_are_u32 {
        return None;
    }
    let long = obj.cast::<LongPrefix>();
    #[cfg(Py_3_12)]
    {
        // SAFETY: an exact int is a PyLongObject: the tag is always there, and a tag below
        // 2 << 3 means at most one digit, which is then initialised (0 has a digit 0).
        unsafe {
            let tag = (*long).lv_tag;
            if tag >= (2 << 3) {
                return None;
            }
            let sign = 1 - (tag & 3) as i64;
            Some(sign * i64::from((*long).digit0))
        }
    }
    #[cfg(not(Py_3_12))]
    {
        // SAFETY: an exact int is a PyLongObject: ob_size is the signed digit count; with
        // one digit, that digit is initialised (and 0 has none, so it is not read).
        unsafe {
            match (*long).ob_base.ob_size {
                0 => Some(0),
                1 => Some(i64::from((*long).digit0)),
                -1 => Some(-i64::from((*long).digit0)),
                _ => None,
            }
        }
    }
}
