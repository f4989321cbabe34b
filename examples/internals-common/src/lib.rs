//! The body shared by the internals probe modules `bindery_example_internals_a` and `_b`:
//! two separately built extension modules that expose what tests need to prove how
//! internals are shared, kept per interpreter, leaked and guarded.
//!
//! Functions (all raise `RuntimeError` with bindery's message when internals fail):
//!
//! | function | returns |
//! |---|---|
//! | `internals_address()` / `local_internals_address()` | address of the content (`int`) |
//! | `internals_capsule()` / `local_internals_capsule()` | the capsule object, or `None` |
//! | `internals_key()` / `local_internals_key()` | the state-dict keys |
//! | `interpreter_id()` | ID of the current interpreter |
//! | `register_type(key, cls)` | registers `cls` under the stable type key in the shared registry |
//! | `register_local_type(key, cls)` | the same in the module-local registry |
//! | `lookup_type(key)` | the name of the module that registered `key` (local first), or `None` |
//! | `lookup_type_object(cls)` | the same, found by the Python type object |
//! | `registered_types()` | how many types the shared registry holds |
//! | `allocated_bytes()` | what the shared and local content keep allocated (bytes) |
//! | `interpreters_seen()` | how many interpreters this module binary served |
//! | `set_recreation_policy(name)` | `"fatal"` (default) or `"error"` |
//! | `simulate_release()` / `clear_state_dict()` / `reset_caches()` | the test hooks |
//!
//! The module's exec slot asks for both kinds of internals, as a real module does.

mod compat;

use std::ffi::{CStr, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use bindery_capsule::{Owned, Python};
use bindery_internals::{
    RecreationPolicy, TypeInfo, get_internals, get_internals_capsule, get_local_internals,
    get_local_internals_capsule, get_local_internals_key, internals_id, on_module_exec,
    set_recreation_policy, testing,
};
use pyo3_ffi::{
    METH_FASTCALL, METH_NOARGS, METH_O, Py_ssize_t, PyErr_SetString, PyExc_RuntimeError,
    PyExc_TypeError, PyExc_ValueError, PyMethodDef, PyMethodDefPointer, PyModuleDef,
    PyModuleDef_HEAD_INIT, PyModuleDef_Init, PyModuleDef_Slot, PyObject, PyTypeObject,
};

/// What a probe function returns before it becomes a Python object or an exception: an
/// owned object, or the exception class and message to raise.
type Reply = Result<*mut PyObject, (*mut PyObject, String)>;

/// Runs a probe function body: catches panics (they never cross into C) and turns errors
/// into Python exceptions.
fn guard(body: impl FnOnce(Python<'_>) -> Reply) -> *mut PyObject {
    // SAFETY: every caller is an extern "C" function CPython called with an attached
    // thread state, which lasts for the whole call.
    let py = unsafe { Python::assume_attached() };
    let reply = catch_unwind(AssertUnwindSafe(|| body(py))).unwrap_or_else(|_| {
        // SAFETY: reading an exception class static with an attached thread state.
        Err((
            unsafe { PyExc_RuntimeError },
            "panic in a probe function".into(),
        ))
    });
    match reply {
        Ok(object) => object,
        Err((class, message)) => {
            let message =
                std::ffi::CString::new(message.replace('\0', "?")).expect("NUL bytes replaced");
            // SAFETY: attached thread state; `class` is an exception class, the message a
            // valid C string.
            unsafe { PyErr_SetString(class, message.as_ptr()) };
            ptr::null_mut()
        }
    }
}

fn runtime_error(error: impl std::fmt::Display) -> (*mut PyObject, String) {
    // SAFETY: reading an exception class static; all callers hold an attached thread state.
    (unsafe { PyExc_RuntimeError }, error.to_string())
}

fn type_error(message: String) -> (*mut PyObject, String) {
    // SAFETY: as in `runtime_error`.
    (unsafe { PyExc_TypeError }, message)
}

fn value_error(message: String) -> (*mut PyObject, String) {
    // SAFETY: as in `runtime_error`.
    (unsafe { PyExc_ValueError }, message)
}

fn int(_py: Python<'_>, value: i64) -> Reply {
    // SAFETY: attached thread state (token); PyLong_FromLongLong only allocates an int.
    let object = unsafe { pyo3_ffi::PyLong_FromLongLong(value) };
    if object.is_null() {
        Err(runtime_error("cannot make an int"))
    } else {
        Ok(object)
    }
}

fn address<T>(py: Python<'_>, value: &T) -> Reply {
    int(py, value as *const T as usize as i64)
}

fn string(_py: Python<'_>, text: &str) -> Reply {
    // SAFETY: attached thread state; the pointer and length describe valid UTF-8.
    let object = unsafe {
        pyo3_ffi::PyUnicode_FromStringAndSize(text.as_ptr().cast(), text.len() as Py_ssize_t)
    };
    if object.is_null() {
        Err(runtime_error("cannot make a str"))
    } else {
        Ok(object)
    }
}

fn none() -> Reply {
    // SAFETY: Py_None is immortal or statically allocated; returning a new reference to it
    // needs an incref, done by Py_NewRef with an attached thread state (all callers).
    Ok(unsafe { pyo3_ffi::compat::Py_NewRef(pyo3_ffi::Py_None()) })
}

fn object_or_none(object: Option<Owned<'_>>) -> Reply {
    match object {
        Some(object) => Ok(object.into_ptr()),
        None => none(),
    }
}

/// Reads a Python `str` argument as Rust text.
fn text_arg<'a>(
    _py: Python<'_>,
    object: *mut PyObject,
    what: &str,
) -> Result<&'a str, (*mut PyObject, String)> {
    let mut size: Py_ssize_t = 0;
    // SAFETY: attached thread state; `object` is a borrowed argument reference.
    let data = unsafe { pyo3_ffi::PyUnicode_AsUTF8AndSize(object, &mut size) };
    if data.is_null() {
        // SAFETY: attached thread state; clear the conversion error, replaced by ours.
        unsafe { pyo3_ffi::PyErr_Clear() };
        return Err(type_error(format!("{what} must be a str")));
    }
    // SAFETY: CPython keeps the UTF-8 buffer alive as long as the str, which the caller
    // holds for the whole call; it is valid UTF-8 of `size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) };
    std::str::from_utf8(bytes).map_err(|_| type_error(format!("{what} is not valid UTF-8")))
}

/// The module's name, from the module object.
fn module_name(module: *mut PyObject) -> String {
    // SAFETY: `module` is the module object CPython passes to its functions (alive for the
    // call); PyModule_GetName returns a borrowed C string or null with an error set.
    let name = unsafe { pyo3_ffi::PyModule_GetName(module) };
    if name.is_null() {
        // SAFETY: attached thread state; the error is replaced by a placeholder name.
        unsafe { pyo3_ffi::PyErr_Clear() };
        return "<unknown>".into();
    }
    // SAFETY: non-null, NUL-terminated, alive while the module is.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

unsafe extern "C" fn internals_address(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| address(py, get_internals(py).map_err(runtime_error)?))
}

unsafe extern "C" fn local_internals_address(
    _m: *mut PyObject,
    _a: *mut PyObject,
) -> *mut PyObject {
    guard(|py| address(py, get_local_internals(py).map_err(runtime_error)?))
}

unsafe extern "C" fn internals_capsule(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| object_or_none(get_internals_capsule(py).map_err(runtime_error)?))
}

unsafe extern "C" fn local_internals_capsule(
    _m: *mut PyObject,
    _a: *mut PyObject,
) -> *mut PyObject {
    guard(|py| object_or_none(get_local_internals_capsule(py).map_err(runtime_error)?))
}

unsafe extern "C" fn internals_key(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| string(py, internals_id()))
}

unsafe extern "C" fn local_internals_key(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| string(py, get_local_internals_key()))
}

unsafe extern "C" fn interpreter_id(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| int(py, py.interpreter_id()))
}

/// No-op drop for probe types: the probe registers Python classes, never Rust values.
unsafe fn drop_nothing(_value: *mut u8) {}

/// Shared body of `register_type` and `register_local_type`.
fn register(
    py: Python<'_>,
    module: *mut PyObject,
    args: *mut *mut PyObject,
    nargs: Py_ssize_t,
    local: bool,
) -> Reply {
    if nargs != 2 {
        return Err(type_error(format!(
            "register takes (key, cls), got {nargs} arguments"
        )));
    }
    // SAFETY: METH_FASTCALL passes `nargs` (checked: 2) borrowed references.
    let (key, cls) = unsafe { (*args, *args.add(1)) };
    let key = text_arg(py, key, "key")?;
    // SAFETY: `cls` is a live borrowed reference; PyType_Check only reads its type.
    if unsafe { pyo3_ffi::PyType_Check(cls) } == 0 {
        return Err(type_error("cls must be a type".into()));
    }
    let info = TypeInfo {
        type_key: key.to_owned(),
        rust_name: "probe::PythonClass",
        type_object: cls.cast::<PyTypeObject>(),
        size: 0,
        align: 1,
        drop_in_place: drop_nothing,
        module: module_name(module),
    };
    let registered = if local {
        get_local_internals(py)
            .map_err(runtime_error)?
            .types()
            .register(py, info)
    } else {
        get_internals(py)
            .map_err(runtime_error)?
            .types()
            .register(py, info)
    };
    registered.map_err(runtime_error)?;
    // The registry keeps the type object: keep it alive as long as the registry (leaked).
    // SAFETY: `cls` is live; the new reference is deliberately never released.
    unsafe { pyo3_ffi::Py_INCREF(cls) };
    none()
}

unsafe extern "C" fn register_type(
    module: *mut PyObject,
    args: *mut *mut PyObject,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    guard(|py| register(py, module, args, nargs, false))
}

unsafe extern "C" fn register_local_type(
    module: *mut PyObject,
    args: *mut *mut PyObject,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    guard(|py| register(py, module, args, nargs, true))
}

unsafe extern "C" fn lookup_type(_m: *mut PyObject, key: *mut PyObject) -> *mut PyObject {
    guard(|py| {
        let key = text_arg(py, key, "key")?;
        let local = get_local_internals(py).map_err(runtime_error)?;
        let shared = get_internals(py).map_err(runtime_error)?;
        match local
            .types()
            .by_key(py, key)
            .or_else(|| shared.types().by_key(py, key))
        {
            Some(info) => string(py, &info.module),
            None => none(),
        }
    })
}

unsafe extern "C" fn lookup_type_object(_m: *mut PyObject, cls: *mut PyObject) -> *mut PyObject {
    guard(|py| {
        let cls = cls.cast::<PyTypeObject>();
        let local = get_local_internals(py).map_err(runtime_error)?;
        let shared = get_internals(py).map_err(runtime_error)?;
        match local
            .types()
            .by_type(py, cls)
            .or_else(|| shared.types().by_type(py, cls))
        {
            Some(info) => string(py, &info.module),
            None => none(),
        }
    })
}

unsafe extern "C" fn registered_types(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| {
        int(
            py,
            get_internals(py).map_err(runtime_error)?.types().len() as i64,
        )
    })
}

unsafe extern "C" fn allocated_bytes(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| {
        let shared = get_internals(py).map_err(runtime_error)?.allocated_bytes();
        let local = get_local_internals(py)
            .map_err(runtime_error)?
            .allocated_bytes();
        int(py, (shared + local) as i64)
    })
}

unsafe extern "C" fn interpreters_seen(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| int(py, bindery_internals::interpreters_seen() as i64))
}

unsafe extern "C" fn set_policy(_m: *mut PyObject, name: *mut PyObject) -> *mut PyObject {
    guard(|py| {
        let policy = match text_arg(py, name, "policy")? {
            "fatal" => RecreationPolicy::Fatal,
            "error" => RecreationPolicy::ReturnError,
            other => {
                return Err(value_error(format!(
                    "policy must be 'fatal' or 'error', not {other:?}"
                )));
            }
        };
        set_recreation_policy(policy);
        none()
    })
}

unsafe extern "C" fn simulate_release(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| {
        testing::simulate_release(py);
        none()
    })
}

unsafe extern "C" fn clear_state_dict(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|py| {
        testing::clear_state_dict(py);
        none()
    })
}

unsafe extern "C" fn reset_caches(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard(|_py| {
        testing::reset_caches();
        none()
    })
}

const fn noargs(
    name: &'static CStr,
    f: unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject,
    flags: c_int,
) -> PyMethodDef {
    PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: f },
        ml_flags: flags,
        ml_doc: ptr::null(),
    }
}

const fn fastcall(
    name: &'static CStr,
    f: unsafe extern "C" fn(*mut PyObject, *mut *mut PyObject, Py_ssize_t) -> *mut PyObject,
) -> PyMethodDef {
    PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunctionFast: f },
        ml_flags: METH_FASTCALL,
        ml_doc: ptr::null(),
    }
}

/// The function table; CPython only reads it.
static mut METHODS: [PyMethodDef; 19] = [
    noargs(c"internals_address", internals_address, METH_NOARGS),
    noargs(
        c"local_internals_address",
        local_internals_address,
        METH_NOARGS,
    ),
    noargs(c"internals_capsule", internals_capsule, METH_NOARGS),
    noargs(
        c"local_internals_capsule",
        local_internals_capsule,
        METH_NOARGS,
    ),
    noargs(c"internals_key", internals_key, METH_NOARGS),
    noargs(c"local_internals_key", local_internals_key, METH_NOARGS),
    noargs(c"interpreter_id", interpreter_id, METH_NOARGS),
    fastcall(c"register_type", register_type),
    fastcall(c"register_local_type", register_local_type),
    noargs(c"lookup_type", lookup_type, METH_O),
    noargs(c"lookup_type_object", lookup_type_object, METH_O),
    noargs(c"registered_types", registered_types, METH_NOARGS),
    noargs(c"allocated_bytes", allocated_bytes, METH_NOARGS),
    noargs(c"interpreters_seen", interpreters_seen, METH_NOARGS),
    noargs(c"set_recreation_policy", set_policy, METH_O),
    noargs(c"simulate_release", simulate_release, METH_NOARGS),
    noargs(c"clear_state_dict", clear_state_dict, METH_NOARGS),
    noargs(c"reset_caches", reset_caches, METH_NOARGS),
    PyMethodDef::zeroed(),
];

/// `Py_mod_exec`: prepares internals for this interpreter, as every bindery module does; a
/// failure becomes the ImportError's cause.
unsafe extern "C" fn exec_module(_module: *mut PyObject) -> c_int {
    let object = guard(|py| {
        on_module_exec(py).map_err(runtime_error)?;
        none()
    });
    if object.is_null() {
        return -1;
    }
    // SAFETY: `object` is the new reference to None returned above; attached thread state.
    unsafe { pyo3_ffi::Py_DECREF(object) };
    0
}

static mut SLOTS: [PyModuleDef_Slot; 3] = [
    PyModuleDef_Slot {
        slot: pyo3_ffi::Py_mod_exec,
        value: exec_module as *mut c_void,
    },
    compat::MULTIPLE_INTERPRETERS,
    compat::END,
];

/// Builds the module definition for a probe module named `name` and hands it to
/// `PyModuleDef_Init` (PEP 489: the interpreter creates the module and runs the exec slot).
///
/// # Safety
///
/// Called once per import from the module's `PyInit_<name>` with an attached thread state.
pub unsafe fn init_module(name: &'static CStr) -> *mut PyObject {
    // One definition per module binary, made on first import and kept for the process:
    // CPython holds on to it for every interpreter that imports the module.
    static DEF: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let def = *DEF.get_or_init(|| {
        let def = Box::leak(Box::new(PyModuleDef {
            m_base: PyModuleDef_HEAD_INIT,
            m_name: name.as_ptr(),
            m_doc: c"bindery internals probe module".as_ptr(),
            m_size: 0,
            m_methods: (&raw mut METHODS).cast(),
            m_slots: (&raw mut SLOTS).cast(),
            m_traverse: None,
            m_clear: None,
            m_free: None,
        }));
        def as *mut PyModuleDef as usize
    });
    // SAFETY: `def` is a leaked, valid PyModuleDef; PyModuleDef_Init only initialises its
    // object header (the import lock serialises this) and returns it.
    unsafe { PyModuleDef_Init(def as *mut PyModuleDef) }
}
