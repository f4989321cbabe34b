//! `bindery_example_gc`: a registered class that owns Python objects, with cycle-collector
//! support, and what the shutdown suite needs to prove it safe at any moment of an
//! interpreter's life (`gc-support/tests/py_shutdown.rs`).
//!
//! | name | what |
//! |---|---|
//! | `ContainerOwnsPythonObjects()` | a Rust `Vec` of Python objects: `append(obj)`, `size()`, `clear()`; subclassable, weakly referenceable |
//! | `internals_capsule()` / `local_internals_capsule()` | the capsule objects in the state dict, or `None` |
//! | `add_gc_checkers_with_weakrefs(obj)` | `bindery_gc_support::add_gc_checkers_with_weakrefs` |
//! | `live_containers()` | how many container values exist in the process |
//! | `set_recreation_policy(name)` | test hook: `"fatal"` (default) or `"error"` |
//! | `simulate_release()` | test hook: forget this interpreter's internals, as a design that frees them would |
//!
//! With `BINDERY_EXAMPLE_GC_REPORT_AT_EXIT=1` in the environment, the module writes
//! `bindery_example_gc: N containers alive after finalization` to stderr at the very end of
//! `Py_FinalizeEx` (`Py_AtExit`): the suite's proof that shutdown freed every container
//! exactly once (a leak leaves N above 0, a double drop wraps it around).
//!
//! Written on the raw ffi until the facade can express it. Built with bindery-internals'
//! `test-hooks` for the suite's negative control: never copy that into a real module.

mod compat;
mod container;

use std::ffi::{CStr, c_int, c_void};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use bindery_capsule::{Borrowed, Owned, Python};
use bindery_cast::{CastError, to_python};
use bindery_internals::{
    RecreationPolicy, get_internals_capsule, get_local_internals_capsule, on_module_exec,
    set_recreation_policy, testing,
};
use pyo3_ffi as ffi;

/// Why a function fails: an exception to raise.
pub(crate) enum Failure {
    /// A cast error, raised as its own exception class.
    Cast(CastError),
    /// An exception class (a libpython static) and a message.
    Raise(*mut ffi::PyObject, String),
}

impl Failure {
    pub(crate) fn runtime_error(message: String) -> Failure {
        // SAFETY: reading an exception class static of libpython.
        Failure::Raise(unsafe { ffi::PyExc_RuntimeError }, message)
    }

    pub(crate) fn type_error(message: String) -> Failure {
        // SAFETY: as above.
        Failure::Raise(unsafe { ffi::PyExc_TypeError }, message)
    }
}

impl From<CastError> for Failure {
    fn from(error: CastError) -> Failure {
        Failure::Cast(error)
    }
}

/// What a function body returns: a new reference, or the exception to raise.
pub(crate) type Reply<'py> = Result<Owned<'py>, Failure>;

/// Runs the body of an `extern "C"` function: panics never cross into C, failures become
/// the pending Python exception and a null return.
pub(crate) fn guard(body: impl for<'py> FnOnce(Python<'py>) -> Reply<'py>) -> *mut ffi::PyObject {
    // SAFETY: every caller is an extern "C" function CPython called with an attached thread
    // state, which lasts for the whole call.
    let py = unsafe { Python::assume_attached() };
    let failure = match catch_unwind(AssertUnwindSafe(|| body(py))) {
        Ok(Ok(object)) => return object.into_ptr(),
        Ok(Err(failure)) => failure,
        Err(_) => Failure::runtime_error("bindery_example_gc: a Rust panic".to_owned()),
    };
    match failure {
        Failure::Cast(error) => error.restore(py),
        Failure::Raise(class, message) => {
            let message = std::ffi::CString::new(message.replace('\0', "?")).unwrap_or_default();
            // SAFETY: attached thread state; `class` is an exception class, the message a
            // valid C string.
            unsafe { ffi::PyErr_SetString(class, message.as_ptr()) };
        }
    }
    ptr::null_mut()
}

/// A new reference to `None`.
pub(crate) fn none(py: Python<'_>) -> Reply<'_> {
    // SAFETY: attached thread state (token); None is a live object.
    Ok(unsafe { Owned::from_borrowed_ptr(py, ffi::Py_None()) }.expect("None is not null"))
}

fn capsule_or_none<'py>(py: Python<'py>, capsule: Option<Owned<'py>>) -> Reply<'py> {
    match capsule {
        Some(capsule) => Ok(capsule),
        None => none(py),
    }
}

unsafe extern "C" fn internals_capsule(
    _m: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        let capsule =
            get_internals_capsule(py).map_err(|e| Failure::runtime_error(e.to_string()))?;
        capsule_or_none(py, capsule)
    })
}

unsafe extern "C" fn local_internals_capsule(
    _m: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        let capsule =
            get_local_internals_capsule(py).map_err(|e| Failure::runtime_error(e.to_string()))?;
        capsule_or_none(py, capsule)
    })
}

unsafe extern "C" fn add_gc_checkers_with_weakrefs(
    _m: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: METH_O passes one live, borrowed argument.
        let obj = unsafe { Borrowed::from_ptr(py, obj) }.expect("CPython passes the argument");
        bindery_gc_support::add_gc_checkers_with_weakrefs(py, obj)
            .map_err(|e| Failure::runtime_error(e.to_string()))?;
        none(py)
    })
}

unsafe extern "C" fn live_containers(
    _m: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| Ok(to_python(py, container::LIVE.load(Ordering::Relaxed))?))
}

unsafe extern "C" fn set_policy(
    _m: *mut ffi::PyObject,
    name: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: METH_O passes one live, borrowed argument.
        let name = unsafe { Borrowed::from_ptr(py, name) }.expect("CPython passes the argument");
        let policy = match bindery_cast::cast::<&str>(name)? {
            "fatal" => RecreationPolicy::Fatal,
            "error" => RecreationPolicy::ReturnError,
            other => {
                return Err(Failure::type_error(format!(
                    "policy must be 'fatal' or 'error', not {other:?}"
                )));
            }
        };
        set_recreation_policy(policy);
        none(py)
    })
}

unsafe extern "C" fn simulate_release(
    _m: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        testing::simulate_release(py);
        none(py)
    })
}

/// A `PyMethodDef` table that can live in a `static`: CPython only reads it.
struct Functions([ffi::PyMethodDef; 7]);

// SAFETY: immutable: CPython never writes to method definitions; the pointers are to
// 'static C strings and functions.
unsafe impl Sync for Functions {}

const fn function(
    name: &'static CStr,
    f: unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject,
    flags: c_int,
    doc: &'static CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: f },
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    }
}

static FUNCTIONS: Functions = Functions([
    function(
        c"internals_capsule",
        internals_capsule,
        ffi::METH_NOARGS,
        c"The capsule holding this interpreter's internals, or None.",
    ),
    function(
        c"local_internals_capsule",
        local_internals_capsule,
        ffi::METH_NOARGS,
        c"The capsule holding this module's local internals, or None.",
    ),
    function(
        c"add_gc_checkers_with_weakrefs",
        add_gc_checkers_with_weakrefs,
        ffi::METH_O,
        c"When obj is collected, check that the internals are still the same; else report \
          'bindery gc checker: ...' and exit.",
    ),
    function(
        c"live_containers",
        live_containers,
        ffi::METH_NOARGS,
        c"How many ContainerOwnsPythonObjects values exist in the process.",
    ),
    function(
        c"set_recreation_policy",
        set_policy,
        ffi::METH_O,
        c"Test hook: what this module does if internals would be re-created, 'fatal' or 'error'.",
    ),
    function(
        c"simulate_release",
        simulate_release,
        ffi::METH_NOARGS,
        c"Test hook: forget this interpreter's internals, as a design that frees them would.",
    ),
    ffi::PyMethodDef::zeroed(),
]);

/// The environment variable that asks for the report at exit (see the crate docs).
const REPORT_AT_EXIT: &str = "BINDERY_EXAMPLE_GC_REPORT_AT_EXIT";

/// Runs at the very end of `Py_FinalizeEx`, after every interpreter is gone: no Python here.
extern "C" fn report_live_at_exit() {
    let live = container::LIVE.load(Ordering::SeqCst);
    let _ = writeln!(
        std::io::stderr(),
        "bindery_example_gc: {live} containers alive after finalization"
    );
}

/// Registers [`report_live_at_exit`] once per process, from the main interpreter, if asked.
fn register_report_at_exit(py: Python<'_>) {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if py.interpreter_id() != 0 || std::env::var_os(REPORT_AT_EXIT).is_none_or(|v| v != "1") {
        return;
    }
    if !REGISTERED.swap(true, Ordering::SeqCst) {
        // SAFETY: attached thread state; the function needs no Python and lives as long as
        // the process (CPython never unloads extension modules). A full table (32 entries)
        // only means no report, which the suite would notice.
        unsafe { ffi::Py_AtExit(Some(report_live_at_exit)) };
    }
}

/// `Py_mod_exec`: internals for this interpreter first, then the class.
unsafe extern "C" fn exec_module(module: *mut ffi::PyObject) -> c_int {
    let result = guard(|py| {
        on_module_exec(py).map_err(|e| Failure::runtime_error(e.to_string()))?;
        container::add_class(py, module)?;
        register_report_at_exit(py);
        none(py)
    });
    if result.is_null() {
        return -1;
    }
    // SAFETY: the new reference to None returned above; attached thread state.
    unsafe { ffi::Py_DECREF(result) };
    0
}

/// The module's slots (read by CPython only).
struct Slots([ffi::PyModuleDef_Slot; 3]);

// SAFETY: immutable; CPython only reads module slots.
unsafe impl Sync for Slots {}

static SLOTS: Slots = Slots([
    ffi::PyModuleDef_Slot {
        slot: ffi::Py_mod_exec,
        value: exec_module as *mut c_void,
    },
    compat::MULTIPLE_INTERPRETERS,
    compat::END,
]);

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
pub unsafe extern "C" fn PyInit_bindery_example_gc() -> *mut ffi::PyObject {
    // One definition per module binary, made on first import and kept for the process:
    // CPython holds on to it for every interpreter that imports the module.
    static DEF: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let def = *DEF.get_or_init(|| {
        let def = Box::leak(Box::new(ffi::PyModuleDef {
            m_base: ffi::PyModuleDef_HEAD_INIT,
            m_name: c"bindery_example_gc".as_ptr(),
            m_doc: c"A registered class that owns Python objects, with GC support.".as_ptr(),
            m_size: 0,
            m_methods: ptr::from_ref(&FUNCTIONS.0).cast_mut().cast(),
            m_slots: ptr::from_ref(&SLOTS.0).cast_mut().cast(),
            m_traverse: None,
            m_clear: None,
            m_free: None,
        }));
        ptr::from_mut(def) as usize
    });
    // SAFETY: `def` is a leaked, valid PyModuleDef; PyModuleDef_Init only initialises its
    // object header (the import lock serialises this) and returns it.
    unsafe { ffi::PyModuleDef_Init(def as *mut ffi::PyModuleDef) }
}
