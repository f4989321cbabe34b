//! `bindery_example_capsule_a`: one of two separately built extension modules that share a
//! capsule through the interpreter state dict (see `bindery-example-capsule-common`).

#![deny(missing_docs)]

use bindery_example_capsule_common as common;
use pyo3_ffi as ffi;
use std::ffi::c_int;

static mut SLOTS: [ffi::PyModuleDef_Slot; common::MODULE_SLOTS] = common::module_slots(exec);

static mut MODULE_DEF: ffi::PyModuleDef = common::module_def(
    c"bindery_example_capsule_a",
    c"bindery-capsule example module a (shares capsules with module b).",
    (&raw mut SLOTS).cast(),
);

/// The module's PEP 489 entry point: returns the definition, CPython does the rest.
///
/// # Safety
/// Called by CPython's import machinery with an attached thread state.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit_bindery_example_capsule_a() -> *mut ffi::PyObject {
    // SAFETY: attached thread state (import); MODULE_DEF is a static that only CPython
    // touches from here on. PyModuleDef_Init cannot panic.
    unsafe { ffi::PyModuleDef_Init(&raw mut MODULE_DEF) }
}

/// `Py_mod_exec`: adds the shared functions.
unsafe extern "C" fn exec(module: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython calls exec slots with the module and an attached thread state;
    // exec_module catches panics.
    unsafe { common::exec_module(module) }
}
