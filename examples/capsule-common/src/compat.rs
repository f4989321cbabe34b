//! The only per-Python-version code of the example modules: their PEP 489 slot table.
//!
//! 3.12+ understands `Py_mod_multiple_interpreters`; the modules declare
//! `Py_MOD_PER_INTERPRETER_GIL_SUPPORTED` (they keep no Python object in a static and all
//! shared state lives in each interpreter's state dict), so they import in own-GIL
//! subinterpreters too. 3.9-3.11 reject unknown slot IDs, and load multi-phase modules in
//! (shared-GIL) subinterpreters without the slot.

use pyo3_ffi as ffi;
use std::ffi::{c_int, c_void};

/// An exec slot function (`Py_mod_exec`).
pub type ExecFn = unsafe extern "C" fn(*mut ffi::PyObject) -> c_int;

/// Number of entries in [`module_slots`]'s table (including the terminating zero slot).
#[cfg(Py_3_12)]
pub const MODULE_SLOTS: usize = 3;
/// Number of entries in [`module_slots`]'s table (including the terminating zero slot).
#[cfg(not(Py_3_12))]
pub const MODULE_SLOTS: usize = 2;

/// The slot table of an example module: its exec function, the subinterpreter declaration
/// where the Python version knows it, and the terminator.
pub const fn module_slots(exec: ExecFn) -> [ffi::PyModuleDef_Slot; MODULE_SLOTS] {
    let exec = ffi::PyModuleDef_Slot {
        slot: ffi::Py_mod_exec,
        value: exec as *mut c_void,
    };
    let end = ffi::PyModuleDef_Slot {
        slot: 0,
        value: std::ptr::null_mut(),
    };
    #[cfg(Py_3_12)]
    {
        let interpreters = ffi::PyModuleDef_Slot {
            slot: ffi::Py_mod_multiple_interpreters,
            value: ffi::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
        };
        [exec, interpreters, end]
    }
    #[cfg(not(Py_3_12))]
    {
        [exec, end]
    }
}
