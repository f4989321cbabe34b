//! Test harness for the embedded interpreter: one interpreter per process, one test body at a
//! time, each on a fresh thread state of the main interpreter; Python snippets evaluated in
//! a namespace; a registered class made with `PyType_FromSpec`.

#![allow(dead_code)]

use std::ffi::{CString, c_void};
use std::sync::{Mutex, Once, OnceLock};

use bindery_capsule::{Owned, Python, take_error_text};
use bindery_cast::{
    CastError, ClassObject, FromPython, RegisteredClass, Visibility, register_class, tp_dealloc,
};
use pyo3_ffi as ffi;

static INIT: Once = Once::new();
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Detaches and deletes the test's thread state, also when an assertion panics.
struct Attached(*mut ffi::PyThreadState);

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: `self.0` is this thread's attached thread state, made in `with_python`.
        unsafe {
            ffi::PyErr_Clear();
            ffi::PyThreadState_Clear(self.0);
            ffi::PyThreadState_DeleteCurrent();
        }
    }
}

/// Runs `f` attached to the main interpreter with a fresh thread state of this thread.
/// `cargo test` runs tests on several threads of one process: the mutex serialises them;
/// nextest runs each in its own process.
pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    INIT.call_once(|| {
        // SAFETY: first and only initialization in this process; afterwards the main thread
        // state is detached so any test thread can attach its own.
        unsafe {
            ffi::Py_InitializeEx(0);
            let py = Python::assume_attached();
            bindery_internals::on_module_exec(py).expect("internals in the main interpreter");
            ffi::PyEval_SaveThread();
        }
    });
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: the interpreter is initialized; a new thread state for the main interpreter,
    // made and attached on this thread, which holds no other thread state.
    let tstate = unsafe {
        let tstate = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
        ffi::PyEval_RestoreThread(tstate);
        tstate
    };
    let _attached = Attached(tstate);
    Python::with_attached(f).expect("a thread state was just attached on this thread")
}

/// A namespace (a dict with builtins) to run snippets in.
pub fn namespace(py: Python<'_>) -> Owned<'_> {
    // SAFETY: attached thread state; new dict; builtins is borrowed from the interpreter.
    unsafe {
        let dict = Owned::from_owned_ptr(py, ffi::PyDict_New()).unwrap();
        let builtins = ffi::PyEval_GetBuiltins();
        assert_eq!(
            ffi::PyDict_SetItemString(dict.as_ptr(), c"__builtins__".as_ptr(), builtins),
            0
        );
        dict
    }
}

/// Runs statements in `ns`; panics with the Python error if they raise.
pub fn exec(py: Python<'_>, ns: &Owned<'_>, code: &str) {
    let code = CString::new(code).unwrap();
    // SAFETY: attached thread state; `ns` is a live dict used as globals and locals.
    let result = unsafe {
        Owned::from_owned_ptr(
            py,
            ffi::PyRun_String(code.as_ptr(), ffi::Py_file_input, ns.as_ptr(), ns.as_ptr()),
        )
    };
    if result.is_none() {
        panic!("exec failed: {}", take_error_text(py).unwrap_or_default());
    }
}

/// Evaluates an expression in `ns`.
pub fn eval_in<'py>(py: Python<'py>, ns: &Owned<'py>, expr: &str) -> Owned<'py> {
    let code = CString::new(expr).unwrap();
    // SAFETY: attached thread state; `ns` is a live dict used as globals and locals.
    let result = unsafe {
        Owned::from_owned_ptr(
            py,
            ffi::PyRun_String(code.as_ptr(), ffi::Py_eval_input, ns.as_ptr(), ns.as_ptr()),
        )
    };
    result.unwrap_or_else(|| {
        panic!(
            "eval of {expr:?} failed: {}",
            take_error_text(py).unwrap_or_default()
        )
    })
}

/// Evaluates an expression in a fresh namespace (with `math`, `pathlib`, `os` imported).
pub fn eval<'py>(py: Python<'py>, expr: &str) -> Owned<'py> {
    let ns = namespace(py);
    exec(
        py,
        &ns,
        "import math, os, pathlib, collections, fractions, decimal",
    );
    eval_in(py, &ns, expr)
}

/// `repr(obj)`.
pub fn repr(obj: &Owned<'_>) -> String {
    let py = obj.py();
    // SAFETY: attached thread state; live object; new reference or null.
    let text = unsafe { Owned::from_owned_ptr(py, ffi::PyObject_Repr(obj.as_ptr())) }.unwrap();
    String::from_utf8(str_bytes(&text).to_vec()).unwrap()
}

fn str_bytes<'a>(text: &'a Owned<'_>) -> &'a [u8] {
    let mut len = 0;
    // SAFETY: a live str; the buffer lives as long as it.
    unsafe {
        let data = ffi::PyUnicode_AsUTF8AndSize(text.as_ptr(), &mut len);
        assert!(!data.is_null());
        std::slice::from_raw_parts(data.cast(), len as usize)
    }
}

/// Python equality.
pub fn py_eq(a: &Owned<'_>, b: &Owned<'_>) -> bool {
    // SAFETY: attached thread state; live objects; -1 on error.
    let rc = unsafe { ffi::PyObject_RichCompareBool(a.as_ptr(), b.as_ptr(), ffi::Py_EQ) };
    assert!(rc >= 0, "{}", take_error_text(a.py()).unwrap_or_default());
    rc == 1
}

/// The Python type name of `obj`.
pub fn type_name(obj: &Owned<'_>) -> String {
    obj.type_name()
}

/// Casts `eval(expr)` to `T`, expecting a refusal; returns the Python exception it
/// becomes, as "ExcType: message".
pub fn refuse<'py, T>(py: Python<'py>, expr: &str) -> String
where
    T: for<'a> FromPython<'a, 'py> + std::fmt::Debug,
{
    let obj = eval(py, expr);
    match bindery_cast::cast::<T>(obj.as_borrowed()) {
        Ok(value) => panic!(
            "{expr} was accepted as {}: {value:?}",
            std::any::type_name::<T>()
        ),
        Err(error) => raised(py, error),
    }
}

/// Casts `eval(expr)` to `T`, expecting success.
pub fn accept<'py, T>(py: Python<'py>, expr: &str) -> T
where
    T: for<'a> FromPython<'a, 'py>,
{
    let obj = eval(py, expr);
    bindery_cast::cast::<T>(obj.as_borrowed()).unwrap_or_else(|error| {
        panic!(
            "{expr} was refused as {}: {error}",
            std::any::type_name::<T>()
        )
    })
}

/// The exception `error` becomes: "ExcType: message".
pub fn raised(py: Python<'_>, error: CastError) -> String {
    error.restore(py);
    take_error_text(py).expect("restore leaves an exception pending")
}

/// A registered class for the tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl RegisteredClass for Point {
    const TYPE_KEY: &'static str = "bindery-cast tests::Point";
}

/// A registered class whose Drop counts.
#[derive(Debug)]
pub struct Tracked {
    pub label: String,
}

impl RegisteredClass for Tracked {
    const TYPE_KEY: &'static str = "bindery-cast tests::Tracked";
}

/// A class nobody registers.
#[derive(Clone, Debug)]
pub struct Unregistered;

impl RegisteredClass for Unregistered {
    const TYPE_KEY: &'static str = "bindery-cast tests::Unregistered";
}

/// Makes a heap type for `T` (no `tp_new`: instances come from Rust, or from `Cls()` as
/// empty instances) that Python code may subclass.
fn make_type<T: RegisteredClass>(py: Python<'_>, name: &'static std::ffi::CStr) -> usize {
    let mut slots = vec![
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: tp_dealloc::<T> as *mut c_void,
        },
        ffi::PyType_Slot::default(),
    ];
    let spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: name.as_ptr(),
        basicsize: ClassObject::<T>::BASIC_SIZE as i32,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_BASETYPE) as u32,
        slots: slots.as_mut_ptr(),
    }));
    std::mem::forget(slots);
    // SAFETY: attached thread state; a valid spec (leaked: CPython may keep pointers).
    let ty = unsafe { ffi::PyType_FromSpec(spec) };
    assert!(!ty.is_null(), "{}", take_error_text(py).unwrap_or_default());
    // SAFETY: the type's instances are ClassObject<T> (basicsize above, tp_dealloc::<T>);
    // the type is never released (the new reference is kept for the process).
    unsafe {
        register_class::<T>(py, ty.cast(), "tests", Visibility::Shared)
            .expect("register the test class");
    }
    ty as usize
}

/// The registered `tests.Point` type (made and registered once per process).
pub fn point_type(py: Python<'_>) -> Owned<'_> {
    static TYPE: OnceLock<usize> = OnceLock::new();
    let ty = *TYPE.get_or_init(|| make_type::<Point>(py, c"tests.Point"));
    // SAFETY: the type lives for the process (never released).
    unsafe { Owned::from_borrowed_ptr(py, ty as *mut ffi::PyObject) }.unwrap()
}

/// The registered `tests.Tracked` type.
pub fn tracked_type(py: Python<'_>) -> Owned<'_> {
    static TYPE: OnceLock<usize> = OnceLock::new();
    let ty = *TYPE.get_or_init(|| make_type::<Tracked>(py, c"tests.Tracked"));
    // SAFETY: the type lives for the process (never released).
    unsafe { Owned::from_borrowed_ptr(py, ty as *mut ffi::PyObject) }.unwrap()
}
