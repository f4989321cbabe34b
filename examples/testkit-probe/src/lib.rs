//! `bindery_example_testkit_probe`: the smallest real extension module bindery-testkit's own
//! tests build, stage and import.
//!
//! It uses PEP 489 multi-phase initialisation (an exec slot, no global module object) and
//! declares per-interpreter-GIL support on 3.12+, so it can be imported in the main
//! interpreter and in subinterpreters alike. It exposes:
//!
//! - `add(a, b, /)`: `a + b` for two Python `int`s (arbitrary size). Wrong arity or a
//!   non-`int` argument raises `TypeError`.
//! - `interpreter_id`: the ID of the interpreter that executed the module (0 for the main
//!   interpreter), so a test can prove the import happened in a subinterpreter.
//!
//! ```python
//! import bindery_example_testkit_probe as probe
//! assert probe.add(2, 3) == 5
//! ```

mod compat;

use std::ffi::{c_char, c_int, c_long};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use pyo3_ffi::{
    METH_FASTCALL, Py_TYPE, Py_mod_exec, Py_ssize_t, PyErr_Format, PyErr_SetString,
    PyExc_SystemError, PyExc_TypeError, PyInterpreterState_Get, PyInterpreterState_GetID,
    PyLong_Check, PyMethodDef, PyMethodDefPointer, PyModule_AddIntConstant, PyModuleDef,
    PyModuleDef_HEAD_INIT, PyModuleDef_Init, PyModuleDef_Slot, PyNumber_Add, PyObject,
};

/// The module's functions; the interpreter only reads this table.
static mut METHODS: [PyMethodDef; 2] = [
    PyMethodDef {
        ml_name: c"add".as_ptr(),
        ml_meth: PyMethodDefPointer {
            PyCFunctionFast: add,
        },
        ml_flags: METH_FASTCALL,
        ml_doc: c"add(a, b, /)\n--\n\nReturn a + b for two ints.".as_ptr(),
    },
    PyMethodDef::zeroed(),
];

/// Module slots: exec, then the version-dependent declarations from `compat` (each is the
/// end marker where the interpreter has no such slot), then the end marker.
static mut SLOTS: [PyModuleDef_Slot; 4] = [
    PyModuleDef_Slot {
        slot: Py_mod_exec,
        value: exec_module as *mut std::ffi::c_void,
    },
    compat::MULTIPLE_INTERPRETERS,
    compat::GIL,
    compat::END,
];

/// The module definition handed to `PyModuleDef_Init`.
static mut MODULE_DEF: PyModuleDef = PyModuleDef {
    m_base: PyModuleDef_HEAD_INIT,
    m_name: c"bindery_example_testkit_probe".as_ptr(),
    m_doc: c"bindery-testkit's probe extension module: add(a, b) for ints.".as_ptr(),
    m_size: 0,
    m_methods: (&raw mut METHODS).cast(),
    m_slots: (&raw mut SLOTS).cast(),
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

/// The module's entry point: returns the definition; the interpreter creates the module and
/// runs the exec slot itself (PEP 489).
///
/// # Safety
///
/// Called by the interpreter's import machinery with an attached thread state.
#[allow(
    non_snake_case,
    reason = "the interpreter looks for `PyInit_<module name>`"
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit_bindery_example_testkit_probe() -> *mut PyObject {
    // SAFETY: MODULE_DEF is a valid, 'static PyModuleDef; PyModuleDef_Init only initialises
    // its object header and returns it, and it needs no further synchronisation because the
    // import lock serialises module initialisation.
    unsafe { PyModuleDef_Init(&raw mut MODULE_DEF) }
}

/// `Py_mod_exec`: sets `interpreter_id`. Returns 0, or -1 with an exception set.
unsafe extern "C" fn exec_module(module: *mut PyObject) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the interpreter calls exec slots with an attached thread state, so there
        // is a current interpreter.
        let id = unsafe { PyInterpreterState_GetID(PyInterpreterState_Get()) };
        #[allow(
            irrefutable_let_patterns,
            reason = "C long is 64-bit on Linux and macOS, 32-bit elsewhere"
        )]
        let Ok(id) = c_long::try_from(id) else {
            // SAFETY: thread state attached (see above); both pointers are valid C strings.
            unsafe {
                PyErr_SetString(
                    PyExc_SystemError,
                    c"interpreter ID does not fit a C long".as_ptr(),
                )
            };
            return -1;
        };
        // SAFETY: `module` is the module object being executed, valid for this call; the
        // name is a NUL-terminated literal.
        unsafe { PyModule_AddIntConstant(module, c"interpreter_id".as_ptr(), id) }
    }));
    result.unwrap_or_else(|_| {
        // SAFETY: thread state attached (exec slot); the message is a C string literal.
        unsafe { PyErr_SetString(PyExc_SystemError, c"panic in module exec".as_ptr()) };
        -1
    })
}

/// `add(a, b, /)` with `METH_FASTCALL`: `args` points at `nargs` borrowed references.
unsafe extern "C" fn add(
    _module: *mut PyObject,
    args: *mut *mut PyObject,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if nargs != 2 {
            // SAFETY: the interpreter calls functions with an attached thread state; the
            // format string's single %zd matches the Py_ssize_t argument.
            unsafe {
                PyErr_Format(
                    PyExc_TypeError,
                    c"add() takes exactly 2 arguments (%zd given)".as_ptr(),
                    nargs,
                )
            };
            return ptr::null_mut();
        }
        // SAFETY: METH_FASTCALL guarantees `args` holds `nargs` (= 2) valid object pointers.
        let (a, b) = unsafe { (*args, *args.add(1)) };
        for (position, arg) in [(1, a), (2, b)] {
            // SAFETY: `arg` is a valid object (see above); thread state attached.
            if unsafe { PyLong_Check(arg) } == 0 {
                // SAFETY: thread state attached; `arg`'s type outlives this call and its
                // tp_name is a NUL-terminated string; %d takes a C int and %.200s a C string.
                unsafe {
                    let type_name: *const c_char = (*Py_TYPE(arg)).tp_name;
                    PyErr_Format(
                        PyExc_TypeError,
                        c"add() argument %d must be int, not %.200s".as_ptr(),
                        position as c_int,
                        type_name,
                    )
                };
                return ptr::null_mut();
            }
        }
        // SAFETY: both are valid ints; PyNumber_Add returns a new reference or NULL with an
        // exception set, which is exactly this function's contract.
        unsafe { PyNumber_Add(a, b) }
    }));
    result.unwrap_or_else(|_| {
        // SAFETY: thread state attached (function call); the message is a C string literal.
        unsafe { PyErr_SetString(PyExc_SystemError, c"panic in add()".as_ptr()) };
        ptr::null_mut()
    })
}
