//! The only place in this crate with per-Python-version code: module slots that exist on
//! some interpreters only. Where a slot does not exist its constant is the end marker, so the
//! slot table lists every constant unconditionally.

use pyo3_ffi::PyModuleDef_Slot;

/// The end-of-slots marker.
pub(crate) const END: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: 0,
    value: std::ptr::null_mut(),
};

/// 3.12+: importable in subinterpreters with their own GIL (no Python object in a static;
/// the type and internals are per interpreter).
#[cfg(Py_3_12)]
pub(crate) const MULTIPLE_INTERPRETERS: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: pyo3_ffi::Py_mod_multiple_interpreters,
    value: pyo3_ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
};

/// 3.9-3.11 have no such slot: multi-phase modules load in (shared-GIL) subinterpreters.
#[cfg(not(Py_3_12))]
pub(crate) const MULTIPLE_INTERPRETERS: PyModuleDef_Slot = END;
