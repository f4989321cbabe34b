//! The functions every example module exposes (one table, shared by `_a` and `_b`), and the
//! glue between CPython's calling convention and `bindery-capsule`.

use crate::probe::{Other, Probe, custom_dispose};
use bindery_capsule::{
    CapsuleError, Dtor, Owned, Python, atomic_get_or_create_in_state_dict, capsule_value,
    get_capsule_from_state_dict,
};
use pyo3_ffi as ffi;
use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A Python exception has been set; the function must return NULL.
pub(crate) struct Raised;

type PyResult<T> = Result<T, Raised>;

/// Sets `exc(message)` as the pending exception.
pub(crate) fn raise(_py: Python<'_>, exc: *mut ffi::PyObject, message: &str) -> Raised {
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: attached thread state (token); `exc` is one of CPython's exception type
    // objects and `message` a valid C string.
    unsafe { ffi::PyErr_SetString(exc, message.as_ptr()) };
    Raised
}

/// Maps a [`CapsuleError`] to the matching Python exception, keeping its message.
fn raise_capsule_error(py: Python<'_>, error: CapsuleError) -> Raised {
    // SAFETY: reading CPython's exception type statics (valid after initialization).
    let exc = unsafe {
        match &error {
            CapsuleError::InvalidKey { .. } => ffi::PyExc_ValueError,
            e if e.is_wrong_kind() => ffi::PyExc_TypeError,
            _ => ffi::PyExc_RuntimeError,
        }
    };
    raise(py, exc, &error.to_string())
}

/// The body of every `extern "C"` function: makes the token, runs `body`, turns a panic into
/// a `RuntimeError` (a panic must not unwind into C) and `Err(Raised)` into NULL.
///
/// # Safety
/// Called from a function CPython invoked with an attached thread state.
pub(crate) unsafe fn entry(
    body: impl for<'py> FnOnce(Python<'py>) -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: caller contract: CPython called us with an attached thread state, and the
    // token does not outlive this call.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(|| body(py))) {
        Ok(Ok(object)) => object,
        Ok(Err(Raised)) => std::ptr::null_mut(),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".to_owned());
            // SAFETY: reading CPython's exception type static.
            let exc = unsafe { ffi::PyExc_RuntimeError };
            raise(
                py,
                exc,
                &format!("Rust panic in a bindery example module: {message}"),
            );
            std::ptr::null_mut()
        }
    }
}

/// The positional arguments of a METH_FASTCALL call, checked for count.
///
/// # Safety
/// `args` points to `nargs` valid object pointers (CPython's fastcall contract).
unsafe fn positional<'a>(
    py: Python<'_>,
    name: &str,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    params: &[&str],
) -> PyResult<&'a [*mut ffi::PyObject]> {
    let count = usize::try_from(nargs).unwrap_or(0);
    if count != params.len() {
        // SAFETY: reading CPython's exception type static.
        let exc = unsafe { ffi::PyExc_TypeError };
        return Err(raise(
            py,
            exc,
            &format!(
                "{name}({}) takes {} positional arguments but {count} were given",
                params.join(", "),
                params.len()
            ),
        ));
    }
    if count == 0 {
        return Ok(&[]);
    }
    // SAFETY: caller contract; the slice lives as long as the call.
    Ok(unsafe { std::slice::from_raw_parts(args, count) })
}

/// A `str` argument as a Rust `String`, else `TypeError` naming the function, the
/// parameter and the type found.
fn str_arg(
    py: Python<'_>,
    object: *mut ffi::PyObject,
    function: &str,
    param: &str,
) -> PyResult<String> {
    // SAFETY: `object` is a live argument of the current call.
    let object = unsafe { Owned::from_borrowed_ptr(py, object) }.ok_or(Raised)?;
    // SAFETY: `object` is live.
    if unsafe { ffi::PyUnicode_Check(object.as_ptr()) } == 0 {
        // SAFETY: reading CPython's exception type static.
        let exc = unsafe { ffi::PyExc_TypeError };
        return Err(raise(
            py,
            exc,
            &format!(
                "{function}(): {param} must be str, not {}",
                object.type_name()
            ),
        ));
    }
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `object` is a live str; the buffer is owned by it and holds `len` bytes.
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(object.as_ptr(), &mut len) };
    if data.is_null() {
        return Err(Raised);
    }
    // SAFETY: as above; copied before `object` is released.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) };
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

// ANCHOR: parse_policy
/// The destructor policy named by `policy`.
fn parse_policy(py: Python<'_>, policy: &str) -> PyResult<Dtor<Probe>> {
    match policy {
        "drop" => Ok(Dtor::Drop),
        "leak" => Ok(Dtor::Leak),
        "custom" => Ok(Dtor::Custom(custom_dispose)),
        other => {
            // SAFETY: reading CPython's exception type static.
            let exc = unsafe { ffi::PyExc_ValueError };
            Err(raise(
                py,
                exc,
                &format!("policy must be 'drop', 'leak' or 'custom', got {other:?}"),
            ))
        }
    }
}
// ANCHOR_END: parse_policy

/// Takes a new reference; NULL means an exception is set.
fn owned(object: *mut ffi::PyObject) -> PyResult<*mut ffi::PyObject> {
    if object.is_null() {
        Err(Raised)
    } else {
        Ok(object)
    }
}

/// A new reference to `None`.
fn none(_py: Python<'_>) -> *mut ffi::PyObject {
    // SAFETY: attached thread state (token).
    unsafe { ffi::compat::Py_NewRef(ffi::Py_None()) }
}

/// `(address, created)` as a Python tuple.
fn address_and_created(
    _py: Python<'_>,
    address: usize,
    created: bool,
) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: attached thread state (token); each call returns a new reference
    // or NULL, PyTuple_SetItem steals the item reference even on failure.
    unsafe {
        let address = owned(ffi::PyLong_FromSize_t(address))?;
        let created = ffi::PyBool_FromLong(created.into());
        let tuple = ffi::PyTuple_New(2);
        if tuple.is_null() {
            ffi::Py_DECREF(address);
            ffi::Py_DECREF(created);
            return Err(Raised);
        }
        ffi::PyTuple_SetItem(tuple, 0, address);
        ffi::PyTuple_SetItem(tuple, 1, created);
        Ok(tuple)
    }
}

// ANCHOR: get_or_create
/// `get_or_create(key, policy, tag) -> (address, created)`.
unsafe extern "C" fn get_or_create(
    _module: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let body = |py: Python<'_>| {
        // SAFETY: CPython's fastcall contract for `args` / `nargs`.
        let args =
            unsafe { positional(py, "get_or_create", args, nargs, &["key", "policy", "tag"]) }?;
        let key = str_arg(py, args[0], "get_or_create", "key")?;
        let dtor = parse_policy(py, &str_arg(py, args[1], "get_or_create", "policy")?)?;
        let tag = str_arg(py, args[2], "get_or_create", "tag")?;
        let (value, created) =
            atomic_get_or_create_in_state_dict(py, &key, || Probe::new(tag), dtor)
                .map_err(|e| raise_capsule_error(py, e))?;
        address_and_created(py, value.as_ptr() as usize, created)
    };
    // SAFETY: CPython calls module functions with an attached thread state.
    unsafe { entry(body) }
}
// ANCHOR_END: get_or_create

/// `get_or_create_with(key, policy, tag, callback) -> (address, created)`: `make` calls
/// `callback()` before building its probe, so the callback can race on the same key.
unsafe extern "C" fn get_or_create_with(
    _module: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let body = |py: Python<'_>| {
        let params = ["key", "policy", "tag", "callback"];
        // SAFETY: CPython's fastcall contract for `args` / `nargs`.
        let args = unsafe { positional(py, "get_or_create_with", args, nargs, &params) }?;
        let key = str_arg(py, args[0], "get_or_create_with", "key")?;
        let dtor = parse_policy(py, &str_arg(py, args[1], "get_or_create_with", "policy")?)?;
        let tag = str_arg(py, args[2], "get_or_create_with", "tag")?;
        let callback = args[3];
        let make = || {
            // SAFETY: attached thread state (token in scope); `callback` is a live argument.
            // A raised exception stays pending, and bindery-capsule reports it.
            unsafe {
                let result = ffi::compat::PyObject_CallNoArgs(callback);
                ffi::Py_XDECREF(result);
            }
            Probe::new(tag)
        };
        let (value, created) = atomic_get_or_create_in_state_dict(py, &key, make, dtor)
            .map_err(|e| raise_capsule_error(py, e))?;
        address_and_created(py, value.as_ptr() as usize, created)
    };
    // SAFETY: CPython calls module functions with an attached thread state.
    unsafe { entry(body) }
}

/// `get_or_create_other(key) -> (address, created)` with the value type [`Other`].
unsafe extern "C" fn get_or_create_other(
    _module: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let body = |py: Python<'_>| {
        // SAFETY: CPython's fastcall contract for `args` / `nargs`.
        let args = unsafe { positional(py, "get_or_create_other", args, nargs, &["key"]) }?;
        let key = str_arg(py, args[0], "get_or_create_other", "key")?;
        let make = || Other { value: 7 };
        let (value, created) = atomic_get_or_create_in_state_dict(py, &key, make, Dtor::Drop)
            .map_err(|e| raise_capsule_error(py, e))?;
        address_and_created(py, value.as_ptr() as usize, created)
    };
    // SAFETY: CPython calls module functions with an attached thread state.
    unsafe { entry(body) }
}

/// `read(key) -> tag or None`: the tag of the probe under `key`.
unsafe extern "C" fn read(
    _module: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let body = |py: Python<'_>| {
        // SAFETY: CPython's fastcall contract for `args` / `nargs`.
        let args = unsafe { positional(py, "read", args, nargs, &["key"]) }?;
        let key = str_arg(py, args[0], "read", "key")?;
        let Some(capsule) =
            get_capsule_from_state_dict(py, &key).map_err(|e| raise_capsule_error(py, e))?
        else {
            return Ok(none(py));
        };
        let probe =
            capsule_value::<Probe>(&capsule, &key).map_err(|e| raise_capsule_error(py, e))?;
        // SAFETY: `capsule` keeps the probe alive while we use it.
        let tag = unsafe { probe.as_ref() }.tag();
        new_str(py, tag)
    };
    // SAFETY: CPython calls module functions with an attached thread state.
    unsafe { entry(body) }
}

/// `capsule(key) -> capsule or None`.
unsafe extern "C" fn capsule(
    _module: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let body = |py: Python<'_>| {
        // SAFETY: CPython's fastcall contract for `args` / `nargs`.
        let args = unsafe { positional(py, "capsule", args, nargs, &["key"]) }?;
        let key = str_arg(py, args[0], "capsule", "key")?;
        let found =
            get_capsule_from_state_dict(py, &key).map_err(|e| raise_capsule_error(py, e))?;
        Ok(found.map_or_else(|| none(py), Owned::into_ptr))
    };
    // SAFETY: CPython calls module functions with an attached thread state.
    unsafe { entry(body) }
}

/// `state_dict() -> dict`: the current interpreter's state dict.
unsafe extern "C" fn state_dict(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let body = |py: Python<'_>| {
        // SAFETY: attached thread state (token); a borrowed reference or NULL.
        let dict = unsafe { ffi::PyInterpreterState_GetDict(py.interpreter()) };
        // SAFETY: `dict` is NULL or live; Owned takes a new reference.
        match unsafe { Owned::from_borrowed_ptr(py, dict) } {
            Some(dict) => Ok(dict.into_ptr()),
            None => {
                // SAFETY: reading CPython's exception type static.
                let exc = unsafe { ffi::PyExc_RuntimeError };
                Err(raise(py, exc, "this interpreter has no state dict"))
            }
        }
    };
    // SAFETY: CPython calls module functions with an attached thread state.
    unsafe { entry(body) }
}

/// `interpreter_id() -> int`.
unsafe extern "C" fn interpreter_id(
    _module: *mut ffi::PyObject,
    _args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let body = |py: Python<'_>| {
        // SAFETY: attached thread state (token); a new reference or NULL.
        owned(unsafe { ffi::PyLong_FromLongLong(py.interpreter_id()) })
    };
    // SAFETY: CPython calls module functions with an attached thread state.
    unsafe { entry(body) }
}

/// A new `str` holding `text`.
fn new_str(py: Python<'_>, text: &str) -> PyResult<*mut ffi::PyObject> {
    let len = ffi::Py_ssize_t::try_from(text.len()).map_err(|_| {
        // SAFETY: reading CPython's exception type static.
        raise(py, unsafe { ffi::PyExc_OverflowError }, "string too long")
    })?;
    // SAFETY: attached thread state (token); `text` is valid UTF-8 of `len` bytes.
    owned(unsafe { ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), len) })
}

/// The method table, immutable; CPython only reads it.
pub(crate) struct MethodTable(pub(crate) [ffi::PyMethodDef; 8]);

// SAFETY: the table is never written after initialization (CPython reads PyMethodDef
// entries, it does not modify them), and the pointers in it are to 'static data.
unsafe impl Sync for MethodTable {}

const fn fastcall(
    name: &'static std::ffi::CStr,
    function: ffi::PyCFunctionFast,
    doc: &'static std::ffi::CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFast: function,
        },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: doc.as_ptr(),
    }
}

const fn noargs(
    name: &'static std::ffi::CStr,
    function: ffi::PyCFunction,
    doc: &'static std::ffi::CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunction: function,
        },
        ml_flags: ffi::METH_NOARGS,
        ml_doc: doc.as_ptr(),
    }
}

/// The functions of every example module.
pub(crate) static METHODS: MethodTable = MethodTable([
    fastcall(
        c"get_or_create",
        get_or_create,
        c"get_or_create(key, policy, tag) -> (address, created)\n--\n\nFind or create the probe \
          capsule under key in this interpreter's state dict; policy is 'drop', 'leak' or \
          'custom'.",
    ),
    fastcall(
        c"get_or_create_with",
        get_or_create_with,
        c"get_or_create_with(key, policy, tag, callback) -> (address, created)\n--\n\nLike \
          get_or_create, but callback() runs inside make (it may race on the same key).",
    ),
    fastcall(
        c"get_or_create_other",
        get_or_create_other,
        c"get_or_create_other(key) -> (address, created)\n--\n\nSame, with another Rust value \
          type.",
    ),
    fastcall(
        c"read",
        read,
        c"read(key) -> str | None\n--\n\nThe tag of the probe under key.",
    ),
    fastcall(
        c"capsule",
        capsule,
        c"capsule(key) -> capsule | None\n--\n\nThe capsule object under key.",
    ),
    noargs(
        c"state_dict",
        state_dict,
        c"state_dict() -> dict\n--\n\nThis interpreter's state dict.",
    ),
    noargs(
        c"interpreter_id",
        interpreter_id,
        c"interpreter_id() -> int\n--\n\nThis interpreter's ID (0 for the main one).",
    ),
    ffi::PyMethodDef::zeroed(),
]);
