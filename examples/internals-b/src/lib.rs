//! `bindery_example_internals_b`: an internals probe module (see
//! `bindery-example-internals-common` for what it exposes).

use pyo3_ffi::PyObject;

/// The module's entry point (PEP 489 multi-phase initialisation).
///
/// # Safety
///
/// Called by the interpreter's import machinery with an attached thread state.
#[allow(
    non_snake_case,
    reason = "the interpreter looks for `PyInit_<module name>`"
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit_bindery_example_internals_b() -> *mut PyObject {
    // SAFETY: called by the import machinery, as init_module requires.
    unsafe { bindery_example_internals_common::init_module(c"bindery_example_internals_b") }
}
