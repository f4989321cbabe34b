//! Module definition helpers: what `_a` and `_b` share besides the function table.

use crate::functions::{METHODS, Raised, raise};
use bindery_capsule::Python;
use pyo3_ffi as ffi;
use std::ffi::{CStr, c_int};
use std::panic::catch_unwind;

/// A PEP 489 multi-phase module definition with no module state (`m_size` 0: all shared
/// state lives in the interpreter state dict) and the given slot table.
pub const fn module_def(
    name: &'static CStr,
    doc: &'static CStr,
    slots: *mut ffi::PyModuleDef_Slot,
) -> ffi::PyModuleDef {
    ffi::PyModuleDef {
        m_base: ffi::PyModuleDef_HEAD_INIT,
        m_name: name.as_ptr(),
        m_doc: doc.as_ptr(),
        m_size: 0,
        m_methods: std::ptr::null_mut(),
        m_slots: slots,
        m_traverse: None,
        m_clear: None,
        m_free: None,
    }
}

/// The work of an example module's `Py_mod_exec` slot: adds the shared functions. Returns
/// 0, or -1 with an exception set.
///
/// # Safety
/// Called from a `Py_mod_exec` slot: `module` is the module being executed and the thread
/// state is attached.
pub unsafe fn exec_module(module: *mut ffi::PyObject) -> c_int {
    let outcome = catch_unwind(|| {
        // SAFETY: `module` is a live module object (caller); the table is a static,
        // NULL-terminated and never written.
        unsafe { ffi::PyModule_AddFunctions(module, METHODS.0.as_ptr().cast_mut()) }
    });
    outcome.unwrap_or_else(|_| {
        // SAFETY: caller contract: an attached thread state for this call.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: reading CPython's exception type static.
        let exc = unsafe { ffi::PyExc_RuntimeError };
        let _: Raised = raise(
            py,
            exc,
            "Rust panic in a bindery example module's exec slot",
        );
        -1
    })
}
