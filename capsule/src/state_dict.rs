//! Get-or-create in the interpreter state dict: [`atomic_get_or_create_in_state_dict`] and
//! [`get_capsule_from_state_dict`].

use crate::capsule::{Dtor, FreshCapsule, bindery_header, capsule_value};
use crate::error::CapsuleError;
use crate::layout::c_key;
use crate::python::{Owned, Python, SavedError, take_error_text};
use pyo3_ffi as ffi;
use std::ptr::NonNull;

/// Finds the capsule under `key` in the current interpreter's state dict
/// (`PyInterpreterState_GetDict`), or creates it atomically; returns a pointer to the value
/// and whether this call created it.
///
/// - Found: the object is checked like [`capsule_value`] does (a bindery capsule named `key`
///   holding a `T`); `make` does not run.
/// - Absent: `make` runs with no Rust lock held and no Python error pending (it may call
///   Python, and even detach the thread state), then `PyDict_SetDefault` installs a new
///   capsule, named `key`, with policy `dtor`. If something was inserted under `key`
///   meanwhile (another thread, or `make` itself calling back into this function), this
///   call loses: its value is disposed of right away (dropped even under [`Dtor::Leak`],
///   since nothing can point to it; given to the function under [`Dtor::Custom`]) and the
///   winner is returned with `false`. Never a leak, never a double free.
///
/// A Python error pending on entry is saved and restored on return, whatever the outcome
/// (errors of this call are returned as [`CapsuleError`], never left pending). If `make`
/// returns with a Python error pending, its value is disposed of and that error is returned
/// as [`CapsuleError::Python`].
///
/// The returned pointer is valid while the capsule stays in the state dict (until the
/// interpreter clears it at finalization, or someone deletes the key) under [`Dtor::Drop`] and
/// [`Dtor::Custom`]; until the process exits under [`Dtor::Leak`]. Hold the object from
/// [`get_capsule_from_state_dict`] to pin it.
///
/// Errors: [`CapsuleError::InvalidKey`], [`CapsuleError::NoStateDict`], the kind errors of
/// [`capsule_value`] (the object under `key` is left untouched), [`CapsuleError::Python`].
///
/// [`capsule_value`]: crate::capsule_value
pub fn atomic_get_or_create_in_state_dict<'py, T: Send + 'static>(
    py: Python<'py>,
    key: &str,
    make: impl FnOnce() -> T,
    dtor: Dtor<T>,
) -> Result<(NonNull<T>, bool), CapsuleError> {
    let _saved = SavedError::save(py);
    c_key(key)?;
    let key_obj = new_str(py, key)?;
    if let Some(existing) = dict_get(py, &state_dict(py)?, &key_obj)? {
        return capsule_value::<T>(&existing, key).map(|value| (value, false));
    }

    let value = make();
    if let Some(error) = take_error_text(py) {
        dtor.apply_unshared(Box::new(value));
        return Err(CapsuleError::Python {
            context: format!("the `make` closure for capsule key {key:?}"),
            error: format!("it returned with a Python exception set: {error}"),
        });
    }
    let fresh = FreshCapsule::new(py, key, value, dtor)?;

    // The state dict is fetched again: `make` may have run arbitrary Python.
    let dict = match state_dict(py) {
        Ok(dict) => dict,
        Err(error) => {
            fresh.discard();
            return Err(error);
        }
    };
    let mut found: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: attached thread state (token); dict, key and capsule are live objects; `found`
    // receives a new reference (or null on error).
    let rc = unsafe {
        ffi::compat::PyDict_SetDefaultRef(
            dict.as_ptr(),
            key_obj.as_ptr(),
            fresh.capsule_ptr(),
            &mut found,
        )
    };
    // SAFETY: `found` is a new reference or null.
    let found = unsafe { Owned::from_owned_ptr(py, found) };
    match (rc, found) {
        (0, _) => {
            let value = fresh.value();
            drop(fresh.into_capsule()); // the dict holds it now
            Ok((value, true))
        }
        (1, Some(existing)) => {
            fresh.discard();
            capsule_value::<T>(&existing, key).map(|value| (value, false))
        }
        _ => {
            let error = take_error_text(py).unwrap_or_else(|| "no exception set".to_owned());
            fresh.discard();
            Err(CapsuleError::Python {
                context: format!("PyDict_SetDefault on the interpreter state dict for key {key:?}"),
                error,
            })
        }
    }
}

/// The capsule object under `key` in the current interpreter's state dict (a new
/// reference), `Ok(None)` if the key is absent. For lifetime checks: holding it keeps the
/// value of a [`Dtor::Drop`] capsule alive, and comparing objects tells whether the capsule
/// was replaced.
///
/// The object is checked to be a bindery capsule named `key` (any value type); anything else
/// is an error (the kind errors of [`capsule_value`](crate::capsule_value), the object left
/// untouched). A pending Python error is kept intact.
pub fn get_capsule_from_state_dict<'py>(
    py: Python<'py>,
    key: &str,
) -> Result<Option<Owned<'py>>, CapsuleError> {
    let _saved = SavedError::save(py);
    c_key(key)?;
    let key_obj = new_str(py, key)?;
    let Some(found) = dict_get(py, &state_dict(py)?, &key_obj)? else {
        return Ok(None);
    };
    bindery_header(&found, key)?;
    Ok(Some(found))
}

/// The current interpreter's state dict (a new reference).
fn state_dict(py: Python<'_>) -> Result<Owned<'_>, CapsuleError> {
    // SAFETY: attached thread state (token); `interpreter()` is the live current interpreter;
    // the result is a borrowed reference or null (with no error set).
    let dict = unsafe { ffi::PyInterpreterState_GetDict(py.interpreter()) };
    // SAFETY: `dict` is null or a live dict owned by the interpreter.
    unsafe { Owned::from_borrowed_ptr(py, dict) }.ok_or_else(|| CapsuleError::NoStateDict {
        interpreter_id: py.interpreter_id(),
    })
}

/// `key` as a Python `str`.
fn new_str<'py>(py: Python<'py>, key: &str) -> Result<Owned<'py>, CapsuleError> {
    let len = ffi::Py_ssize_t::try_from(key.len()).map_err(|_| CapsuleError::InvalidKey {
        key: key.to_owned(),
    })?;
    // SAFETY: attached thread state; `key` is valid UTF-8 of `len` bytes.
    let obj = unsafe { ffi::PyUnicode_FromStringAndSize(key.as_ptr().cast(), len) };
    // SAFETY: a new reference or null.
    unsafe { Owned::from_owned_ptr(py, obj) }.ok_or_else(|| CapsuleError::Python {
        context: format!("creating the str for key {key:?}"),
        error: take_error_text(py).unwrap_or_default(),
    })
}

/// `dict.get(key)` as a new reference; errors (a key whose `__eq__` raises) become
/// [`CapsuleError::Python`].
fn dict_get<'py>(
    py: Python<'py>,
    dict: &Owned<'py>,
    key: &Owned<'py>,
) -> Result<Option<Owned<'py>>, CapsuleError> {
    let mut found: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: attached thread state; dict and key are live; `found` receives a new reference
    // or null.
    let rc = unsafe { ffi::compat::PyDict_GetItemRef(dict.as_ptr(), key.as_ptr(), &mut found) };
    if rc < 0 {
        return Err(CapsuleError::Python {
            context: "looking up the interpreter state dict".to_owned(),
            error: take_error_text(py).unwrap_or_default(),
        });
    }
    // SAFETY: a new reference, or null when absent.
    Ok(unsafe { Owned::from_owned_ptr(py, found) })
}
