//! The only place in this crate with per-Python-version code.
//!
//! Each constant is a module slot that exists only on some interpreters. Where the slot does
//! not exist, the constant is the end-of-slots marker instead, so `lib.rs` can list every
//! constant unconditionally: the interpreter stops reading the slot array at the first
//! marker and never sees what follows it.

use pyo3_ffi::PyModuleDef_Slot;

/// The end-of-slots marker (`{0, NULL}`).
pub(crate) const END: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: 0,
    value: std::ptr::null_mut(),
};

/// 3.12+: the module may be imported in subinterpreters, including ones with their own GIL
/// (it keeps no Python object and no interpreter-specific data in Rust statics).
#[cfg(Py_3_12)]
pub(crate) const MULTIPLE_INTERPRETERS: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: pyo3_ffi::Py_mod_multiple_interpreters,
    value: pyo3_ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
};

/// 3.9-3.11 have no `Py_mod_multiple_interpreters` slot: every multi-phase module may be
/// imported in (shared-GIL) subinterpreters there.
#[cfg(not(Py_3_12))]
pub(crate) const MULTIPLE_INTERPRETERS: PyModuleDef_Slot = END;

/// Free-threaded builds (3.13t+): `add` touches only its arguments, so it is safe without
/// the GIL.
#[cfg(Py_GIL_DISABLED)]
pub(crate) const GIL: PyModuleDef_Slot = PyModuleDef_Slot {
    slot: pyo3_ffi::Py_mod_gil,
    value: pyo3_ffi::Py_MOD_GIL_NOT_USED,
};

/// GIL-enabled builds have no `Py_mod_gil` slot to declare.
#[cfg(not(Py_GIL_DISABLED))]
pub(crate) const GIL: PyModuleDef_Slot = END;
