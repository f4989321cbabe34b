//! `bindery_example_cast_a`: defines the classes `Point` and `Counter`, registers them in the
//! interpreter's shared registry, and makes instances (see `bindery-example-cast-common`).

use bindery_example_cast_common::Role;
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
pub unsafe extern "C" fn PyInit_bindery_example_cast_a() -> *mut PyObject {
    // SAFETY: called by the import machinery, as init_module requires.
    unsafe { bindery_example_cast_common::init_module(c"bindery_example_cast_a", Role::Defines) }
}
