//! The functions both cast example modules expose.
//!
//! | function | Rust side | returns |
//! |---|---|---|
//! | `make_point(x, y)`, `make_points(n)` | `Point` -> new instance (type found by key) | `Point`, `[Point]` |
//! | `make_counter(start)` | `Counter` -> new instance | `Counter` |
//! | `norm(p)` | `Ref<Point>` | `float` |
//! | `scale(p, k)` | `RefMut<Point>` | `None` |
//! | `coords(p)` | `Point` by clone | `(x, y)` |
//! | `sum_norms(points)` | `Vec<Point>` by clone | `float` |
//! | `increment(c)` / `history(c)` | `RefMut<Counter>` / `Ref<Counter>` | `int` / `[str]` |
//! | `with_counter_mut(c, f)` / `with_point_ref(p, f)` | calls `f()` while holding the borrow | `f()` |
//! | `make_secret(text)` / `reveal(s)` | module-local class `Secret` | `Secret` / `str` |
//! | `take_unregistered(obj)` / `make_unregistered()` | a type nobody registered | raises |
//! | `gc_peek(p)` | `try_borrow_in_gc::<Point>` | `(x, y)` or `None` |
//! | `echo(kind, obj)` | `cast::<T>` then `to_python`, `T` named by `kind` | the round trip |
//! | `set_child(node, obj)` / `node_stats()` | `Ref<Node>` / GC lookup counters | `None` / `(ok, failed, allocations)` |
//! | `interpreter_id()` | | `int` |

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::ptr;

use bindery_capsule::{Borrowed, Owned, Python};
use bindery_cast::{
    CastError, FromPython, IntoPython, Ref, RefMut, cast, to_python, try_borrow_in_gc,
};
use pyo3_ffi as ffi;
use smallvec::SmallVec;

use crate::{Counter, Point, Secret, Unregistered};

/// Why a function failed.
enum Failure {
    /// A conversion failed: raised as its Python exception.
    Cast(CastError),
    /// A Python exception is already pending (a callback raised).
    Pending,
    /// Raise `TypeError` with this text.
    Usage(String),
}

impl From<CastError> for Failure {
    fn from(error: CastError) -> Self {
        Failure::Cast(error)
    }
}

type Reply<'py> = Result<Owned<'py>, Failure>;

/// Raises `RuntimeError(message)`.
pub(crate) fn raise(py: Python<'_>, message: &str) {
    // SAFETY: reading an exception class static; callers hold an attached thread state.
    let class = unsafe { ffi::PyExc_RuntimeError };
    raise_class(py, class, message);
}

/// Raises `class(message)`.
pub(crate) fn raise_class(_py: Python<'_>, class: *mut ffi::PyObject, message: &str) {
    let message = CString::new(message.replace('\0', "?")).expect("NUL bytes replaced");
    // SAFETY: attached thread state (token); an exception class and a C string.
    unsafe { ffi::PyErr_SetString(class, message.as_ptr()) };
}

/// Runs a function body with its arguments: checks their number, catches panics, turns
/// failures into exceptions.
fn call(
    name: &str,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    expected: usize,
    body: impl for<'a, 'py> FnOnce(Python<'py>, &[Borrowed<'a, 'py>]) -> Reply<'py>,
) -> *mut ffi::PyObject {
    // SAFETY: every caller is a METH_FASTCALL function CPython called with an attached
    // thread state, which lasts for the whole call.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if nargs as usize != expected {
            return Err(Failure::Usage(format!(
                "{name}() takes {expected} arguments, got {nargs}"
            )));
        }
        let args: Vec<Borrowed<'_, '_>> = (0..expected)
            .map(|i| {
                // SAFETY: METH_FASTCALL passes `nargs` (checked) borrowed references that
                // live for the call.
                unsafe { Borrowed::from_ptr(py, *args.add(i)) }.expect("arguments are non-null")
            })
            .collect();
        body(py, &args)
    }));
    match outcome {
        Ok(Ok(object)) => object.into_ptr(),
        Ok(Err(Failure::Cast(error))) => {
            error.restore(py);
            ptr::null_mut()
        }
        Ok(Err(Failure::Pending)) => ptr::null_mut(),
        Ok(Err(Failure::Usage(message))) => {
            // SAFETY: reading an exception class static.
            raise_class(py, unsafe { ffi::PyExc_TypeError }, &message);
            ptr::null_mut()
        }
        Err(_) => {
            raise(py, &format!("panic in {name}()"));
            ptr::null_mut()
        }
    }
}

/// `callback()`.
fn call_back<'py>(py: Python<'py>, callback: Borrowed<'_, 'py>) -> Reply<'py> {
    // SAFETY: attached thread state; a live callable; a new reference or null.
    let result = unsafe { ffi::PyObject_CallObject(callback.as_ptr(), ptr::null_mut()) };
    // SAFETY: a new reference or null with an exception set.
    unsafe { Owned::from_owned_ptr(py, result) }.ok_or(Failure::Pending)
}

fn reply<'py, T: IntoPython<'py>>(py: Python<'py>, value: T) -> Reply<'py> {
    Ok(to_python(py, value)?)
}

macro_rules! fastcall {
    ($fn_name:ident, $n:expr, |$py:ident, $args:ident| $body:expr) => {
        unsafe extern "C" fn $fn_name(
            _module: *mut ffi::PyObject,
            args: *mut *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
        ) -> *mut ffi::PyObject {
            call(stringify!($fn_name), args, nargs, $n, |$py, $args| $body)
        }
    };
}

fastcall!(make_point, 2, |py, a| {
    let point = Point {
        x: cast(a[0])?,
        y: cast(a[1])?,
    };
    reply(py, point)
});

fastcall!(make_points, 1, |py, a| {
    let n: usize = cast(a[0])?;
    let points: Vec<Point> = (0..n)
        .map(|i| Point {
            x: i as f64,
            y: -(i as f64),
        })
        .collect();
    reply(py, points)
});

fastcall!(make_counter, 1, |py, a| {
    let start: i64 = cast(a[0])?;
    reply(
        py,
        Counter {
            count: start,
            history: vec![format!("made at {start}")],
        },
    )
});

fastcall!(norm, 1, |py, a| {
    let point: Ref<Point> = cast(a[0])?;
    reply(py, point.x.hypot(point.y))
});

fastcall!(scale, 2, |py, a| {
    let mut point: RefMut<Point> = cast(a[0])?;
    let k: f64 = cast(a[1])?;
    point.x *= k;
    point.y *= k;
    reply(py, ())
});

fastcall!(coords, 1, |py, a| {
    let point: Point = cast(a[0])?;
    reply(py, (point.x, point.y))
});

fastcall!(sum_norms, 1, |py, a| {
    let points: Vec<Point> = cast(a[0])?;
    reply(py, points.iter().map(|p| p.x.hypot(p.y)).sum::<f64>())
});

fastcall!(increment, 1, |py, a| {
    let mut counter: RefMut<Counter> = cast(a[0])?;
    counter.count += 1;
    let entry = format!("incremented to {}", counter.count);
    counter.history.push(entry);
    reply(py, counter.count)
});

fastcall!(history, 1, |py, a| {
    let counter: Ref<Counter> = cast(a[0])?;
    reply(py, counter.history.clone())
});

fastcall!(with_counter_mut, 2, |py, a| {
    let mut counter: RefMut<Counter> = cast(a[0])?;
    counter.history.push("lent mutably".to_owned());
    call_back(py, a[1])
});

fastcall!(with_point_ref, 2, |py, a| {
    let point: Ref<Point> = cast(a[0])?;
    let result = call_back(py, a[1])?;
    let _ = point.x;
    Ok(result)
});

fastcall!(make_secret, 1, |py, a| {
    let text: String = cast(a[0])?;
    reply(py, Secret { text })
});

fastcall!(reveal, 1, |py, a| {
    let secret: Ref<Secret> = cast(a[0])?;
    reply(py, secret.text.as_str())
});

fastcall!(take_unregistered, 1, |py, a| {
    let _value: Unregistered = cast(a[0])?;
    reply(py, ())
});

fastcall!(make_unregistered, 0, |py, _a| reply(py, Unregistered));

fastcall!(gc_peek, 1, |py, a| {
    let point = try_borrow_in_gc::<Point>(a[0]).map(|p| (p.x, p.y));
    reply(py, point)
});

fastcall!(set_child, 2, |py, a| {
    let node: Ref<crate::node::Node> = cast(a[0])?;
    node.set_child(a[1]);
    reply(py, ())
});

fastcall!(node_stats, 0, |py, _a| reply(py, crate::node::node_stats()));

fastcall!(interpreter_id, 0, |py, _a| reply(py, py.interpreter_id()));

fastcall!(echo, 2, |py, a| {
    let kind: &str = cast(a[0])?;
    echo_kind(py, kind, a[1])
});

/// `cast::<T>(obj)` then `to_python`.
fn via<'py, T>(obj: Borrowed<'_, 'py>) -> Reply<'py>
where
    T: for<'a> FromPython<'a, 'py> + IntoPython<'py>,
{
    let value: T = cast(obj)?;
    reply(obj.py(), value)
}

type Tuple12 = (u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, char, String);

/// The round trip of `obj` through the Rust type named `kind`.
fn echo_kind<'py>(py: Python<'py>, kind: &str, obj: Borrowed<'_, 'py>) -> Reply<'py> {
    match kind {
        "i8" => via::<i8>(obj),
        "i16" => via::<i16>(obj),
        "i32" => via::<i32>(obj),
        "i64" => via::<i64>(obj),
        "i128" => via::<i128>(obj),
        "isize" => via::<isize>(obj),
        "u8" => via::<u8>(obj),
        "u16" => via::<u16>(obj),
        "u32" => via::<u32>(obj),
        "u64" => via::<u64>(obj),
        "u128" => via::<u128>(obj),
        "usize" => via::<usize>(obj),
        "f32" => via::<f32>(obj),
        "f64" => via::<f64>(obj),
        "bool" => via::<bool>(obj),
        "String" => via::<String>(obj),
        "&str" => {
            let text: &str = cast(obj)?;
            reply(py, text)
        }
        "char" => via::<char>(obj),
        "Vec<u8>" => via::<Vec<u8>>(obj),
        "&[u8]" => {
            let bytes: &[u8] = cast(obj)?;
            reply(py, bytes)
        }
        "PathBuf" => via::<PathBuf>(obj),
        "()" => via::<()>(obj),
        "Option<i64>" => via::<Option<i64>>(obj),
        "Vec<f64>" => via::<Vec<f64>>(obj),
        "Vec<i64>" => via::<Vec<i64>>(obj),
        "Vec<String>" => via::<Vec<String>>(obj),
        "Vec<Vec<i64>>" => via::<Vec<Vec<i64>>>(obj),
        "SmallVec<[i64; 4]>" => via::<SmallVec<[i64; 4]>>(obj),
        "[f64; 3]" => via::<[f64; 3]>(obj),
        "(i64, String, f64)" => via::<(i64, String, f64)>(obj),
        "tuple12" => via::<Tuple12>(obj),
        "HashMap<String, i64>" => via::<HashMap<String, i64>>(obj),
        "BTreeMap<i64, Vec<String>>" => via::<BTreeMap<i64, Vec<String>>>(obj),
        "HashSet<i64>" => via::<HashSet<i64>>(obj),
        "BTreeSet<String>" => via::<BTreeSet<String>>(obj),
        other => Err(Failure::Usage(format!("echo: unknown kind {other:?}"))),
    }
}

type Fast = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut *mut ffi::PyObject,
    ffi::Py_ssize_t,
) -> *mut ffi::PyObject;

const fn def(name: &'static CStr, f: Fast) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: f },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: ptr::null(),
    }
}

/// The function table; CPython only reads it.
static mut METHODS: [ffi::PyMethodDef; 21] = [
    def(c"make_point", make_point),
    def(c"make_points", make_points),
    def(c"make_counter", make_counter),
    def(c"norm", norm),
    def(c"scale", scale),
    def(c"coords", coords),
    def(c"sum_norms", sum_norms),
    def(c"increment", increment),
    def(c"history", history),
    def(c"with_counter_mut", with_counter_mut),
    def(c"with_point_ref", with_point_ref),
    def(c"make_secret", make_secret),
    def(c"reveal", reveal),
    def(c"take_unregistered", take_unregistered),
    def(c"make_unregistered", make_unregistered),
    def(c"gc_peek", gc_peek),
    def(c"interpreter_id", interpreter_id),
    def(c"echo", echo),
    def(c"set_child", set_child),
    def(c"node_stats", node_stats),
    ffi::PyMethodDef::zeroed(),
];

/// Adds the functions to the module.
pub(crate) fn add_functions(py: Python<'_>, module: *mut ffi::PyObject) -> Result<(), String> {
    // SAFETY: attached thread state; a live module; the table is a static, NULL-terminated
    // and never written.
    let rc = unsafe { ffi::PyModule_AddFunctions(module, (&raw mut METHODS).cast()) };
    if rc != 0 {
        return Err(bindery_capsule::take_error_text(py).unwrap_or_default());
    }
    Ok(())
}
