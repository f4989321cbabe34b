//! The only place in the facade with per-Python-version code: module slots that exist on
//! some interpreters only. Where a slot does not exist its constant is the end marker, so the
//! slot table lists every constant unconditionally (CPython stops at the first end marker).

use pyo3_ffi::PyModuleDef_Slot;

/// The end-of-slots marker.
pub(crate) const END: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: 0,
    value: std::ptr::null_mut(),
};

/// 3.12+: importable in subinterpreters, including ones with their own GIL: bindery keeps
/// module state per interpreter and no Python object in a static.
#[cfg(Py_3_12)]
pub(crate) const MULTIPLE_INTERPRETERS: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: pyo3_ffi::Py_mod_multiple_interpreters,
    value: pyo3_ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
};

/// 3.9-3.11 have no such slot: multi-phase modules load in (shared-GIL) subinterpreters.
#[cfg(not(Py_3_12))]
pub(crate) const MULTIPLE_INTERPRETERS: PyModuleDef_Slot = END;

/// Free-threaded builds: bindery's registries rely on the GIL for now, so the module says
/// it uses it (CPython then keeps the GIL enabled while it is imported).
#[cfg(Py_GIL_DISABLED)]
pub(crate) const GIL: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: pyo3_ffi::Py_mod_gil,
    value: pyo3_ffi::Py_MOD_GIL_USED,
};

/// GIL-enabled builds have no `Py_mod_gil` slot.
#[cfg(not(Py_GIL_DISABLED))]
pub(crate) const GIL: PyModuleDef_Slot = END;
