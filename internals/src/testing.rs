//! Test-only hooks (cargo feature `test-hooks`): they break the invariants on purpose so tests
//! can prove the guards. Never enable the feature in a real module.

use bindery_capsule::Python;

use crate::manager::{LOCAL, SHARED};

/// The state dict of the current interpreter (borrowed), or null.
fn state_dict(_py: Python<'_>) -> *mut pyo3_ffi::PyObject {
    // SAFETY: the token proves an attached thread state; both calls only read the current
    // interpreter, and the dict is borrowed from it.
    unsafe { pyo3_ffi::PyInterpreterState_GetDict(pyo3_ffi::PyInterpreterState_Get()) }
}

/// Simulates the current interpreter's internals and this module's local internals being
/// released (freed), as a design that frees internals at shutdown would: removes both
/// capsules from the state dict, marks the interpreter as released in this module's record
/// and forgets the caches. The next [`get_internals`](crate::get_internals) is the
/// re-creation case.
pub fn simulate_release(py: Python<'_>) {
    let id = py.interpreter_id();
    let dict = state_dict(py);
    if !dict.is_null() {
        for key in [crate::internals_id(), crate::get_local_internals_key()] {
            let key = std::ffi::CString::new(key).expect("keys have no NUL byte");
            // SAFETY: `dict` is the live state dict of the current interpreter and `key` a
            // valid C string; a missing key only sets a KeyError, cleared below.
            unsafe {
                if pyo3_ffi::PyDict_DelItemString(dict, key.as_ptr()) != 0 {
                    pyo3_ffi::PyErr_Clear();
                }
            }
        }
    }
    SHARED.mark_released(id);
    LOCAL.mark_released(id);
}

/// Clears the current interpreter's state dict, as `PyInterpreterState_Clear` does at
/// shutdown, and forgets the caches so the next call takes the slow path. Internals must
/// survive this: the next [`get_internals`](crate::get_internals) returns the same content.
pub fn clear_state_dict(py: Python<'_>) {
    let dict = state_dict(py);
    if !dict.is_null() {
        // SAFETY: `dict` is the live state dict of the current interpreter.
        unsafe { pyo3_ffi::PyDict_Clear(dict) };
    }
    reset_caches();
}

/// Forgets this module's caches (not its record), so the next call takes the slow path: a
/// state-dict lookup. Used by the slow-path benchmark.
pub fn reset_caches() {
    SHARED.reset_caches();
    LOCAL.reset_caches();
}
