//! Conversion costs in an interpreter embedded in this benchmark process.
//!
//! Run: `cargo bench -p bindery-cast --bench cast`. Baselines in the same run put the figures
//! in scale: the C API call a hand-written extension would make per element
//! (`PyFloat_AsDouble`, `PyLong_AsLongLong`), in the same loop shape. After criterion's
//! groups, the goal ratios are measured once more with the two sides interleaved round by
//! round, which a shared, noisy machine disturbs far less.

use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::hint::black_box;
use std::time::Instant;

use bindery_capsule::{Owned, Python};
use bindery_cast::{
    ClassObject, InstanceMut, InstanceRef, Ref, RegisteredClass, Visibility, cast, register_class,
    to_python, tp_dealloc,
};
use criterion::{BenchmarkId, Criterion, Throughput};
use pyo3_ffi as ffi;

#[derive(Clone, Debug)]
struct Point {
    x: f64,
    y: f64,
}

impl RegisteredClass for Point {
    const TYPE_KEY: &'static str = "bindery-cast benches::Point";
}

fn eval<'py>(py: Python<'py>, expr: &str) -> Owned<'py> {
    let code = CString::new(expr).unwrap();
    // SAFETY: attached thread state; a new globals dict with builtins; the result is a new
    // reference or null.
    unsafe {
        let globals = Owned::from_owned_ptr(py, ffi::PyDict_New()).unwrap();
        ffi::PyDict_SetItemString(
            globals.as_ptr(),
            c"__builtins__".as_ptr(),
            ffi::PyEval_GetBuiltins(),
        );
        let result = ffi::PyRun_String(
            code.as_ptr(),
            ffi::Py_eval_input,
            globals.as_ptr(),
            globals.as_ptr(),
        );
        Owned::from_owned_ptr(py, result).expect("the expression evaluates")
    }
}

/// Makes and registers the `Point` class; returns an instance.
fn point_instance(py: Python<'_>) -> Owned<'_> {
    let slots = Box::leak(Box::new([
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: tp_dealloc::<Point> as *mut c_void,
        },
        ffi::PyType_Slot::default(),
    ]));
    let spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: c"bench.Point".as_ptr(),
        basicsize: ClassObject::<Point>::BASIC_SIZE as i32,
        itemsize: 0,
        flags: ffi::Py_TPFLAGS_DEFAULT as u32,
        slots: slots.as_mut_ptr(),
    }));
    // SAFETY: attached thread state; a leaked, valid spec; the type is kept for the process.
    let ty = unsafe { ffi::PyType_FromSpec(spec) };
    assert!(!ty.is_null());
    // SAFETY: the type's instances are ClassObject<Point> (spec above).
    unsafe { register_class::<Point>(py, ty.cast(), "bench", Visibility::Shared) }.unwrap();
    to_python(py, Point { x: 3.0, y: 4.0 }).unwrap()
}

fn benches(c: &mut Criterion) {
    // SAFETY: initialising the interpreter once, on this thread, before any other call.
    unsafe { ffi::Py_InitializeEx(0) };
    // SAFETY: Py_InitializeEx leaves this thread attached to the main interpreter for the
    // rest of the process.
    let py = unsafe { Python::assume_attached() };
    bindery_internals::on_module_exec(py).expect("internals");

    let mut group = c.benchmark_group("i64");
    let int = eval(py, "123456789");
    group.bench_function("from_python", |b| {
        b.iter(|| black_box(cast::<i64>(black_box(int.as_borrowed())).unwrap()))
    });
    group.bench_function("baseline/PyLong_AsLongLong", |b| {
        // SAFETY: attached thread state; a live int.
        b.iter(|| black_box(unsafe { ffi::PyLong_AsLongLong(black_box(int.as_ptr())) }))
    });
    group.bench_function("to_python", |b| {
        b.iter(|| black_box(to_python(py, black_box(123456789_i64)).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("f64");
    let float = eval(py, "1.5");
    group.bench_function("from_python", |b| {
        b.iter(|| black_box(cast::<f64>(black_box(float.as_borrowed())).unwrap()))
    });
    group.bench_function("baseline/PyFloat_AsDouble", |b| {
        // SAFETY: attached thread state; a live float.
        b.iter(|| black_box(unsafe { ffi::PyFloat_AsDouble(black_box(float.as_ptr())) }))
    });
    group.bench_function("to_python", |b| {
        b.iter(|| black_box(to_python(py, black_box(1.5_f64)).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("str100");
    let text = eval(py, "'abcdefghij' * 10");
    let rust_text = "abcdefghij".repeat(10);
    group.bench_function("from_python/String", |b| {
        b.iter(|| black_box(cast::<String>(black_box(text.as_borrowed())).unwrap()))
    });
    group.bench_function("from_python/&str", |b| {
        b.iter(|| black_box(cast::<&str>(black_box(text.as_borrowed())).unwrap().len()))
    });
    group.bench_function("to_python", |b| {
        b.iter(|| black_box(to_python(py, black_box(rust_text.as_str())).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("vec_f64_1000");
    group.throughput(Throughput::Elements(1000));
    let list = eval(py, "[i * 0.5 for i in range(1000)]");
    let tuple = eval(py, "tuple(i * 0.5 for i in range(1000))");
    group.bench_function(BenchmarkId::new("from_python", "list"), |b| {
        b.iter(|| black_box(cast::<Vec<f64>>(black_box(list.as_borrowed())).unwrap()))
    });
    group.bench_function(BenchmarkId::new("from_python", "tuple"), |b| {
        b.iter(|| black_box(cast::<Vec<f64>>(black_box(tuple.as_borrowed())).unwrap()))
    });
    group.bench_function("baseline/PyFloat_AsDouble_per_item", |b| {
        b.iter(|| black_box(float_loop(black_box(list.as_ptr()))))
    });
    let values: Vec<f64> = (0..1000).map(|i| i as f64 * 0.5).collect();
    group.bench_function("to_python", |b| {
        b.iter(|| black_box(to_python(py, black_box(values.clone())).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("dict_str_i64_100");
    group.throughput(Throughput::Elements(100));
    let dict = eval(py, "{f'key{i}': i for i in range(100)}");
    group.bench_function("from_python", |b| {
        b.iter(|| black_box(cast::<HashMap<String, i64>>(black_box(dict.as_borrowed())).unwrap()))
    });
    let map: HashMap<String, i64> = cast(dict.as_borrowed()).unwrap();
    group.bench_function("to_python", |b| {
        b.iter(|| black_box(to_python(py, black_box(map.clone())).unwrap()))
    });
    group.finish();

    let mut group = c.benchmark_group("registered");
    let point = point_instance(py);
    group.bench_function("Ref<Point>", |b| {
        b.iter(|| {
            let point: Ref<Point> = cast(black_box(point.as_borrowed())).unwrap();
            black_box(point.x + point.y)
        })
    });
    group.bench_function("InstanceRef<Point>", |b| {
        b.iter(|| {
            let point: InstanceRef<Point> = cast(black_box(point.as_borrowed())).unwrap();
            black_box(point.x + point.y)
        })
    });
    group.bench_function("InstanceMut<Point>", |b| {
        b.iter(|| {
            let mut point: InstanceMut<Point> = cast(black_box(point.as_borrowed())).unwrap();
            point.x += 0.0;
            black_box(point.y)
        })
    });
    group.bench_function("Point by clone", |b| {
        b.iter(|| black_box(cast::<Point>(black_box(point.as_borrowed())).unwrap()))
    });
    group.bench_function("to_python", |b| {
        b.iter(|| black_box(to_python(py, black_box(Point { x: 1.0, y: 2.0 })).unwrap()))
    });
    group.finish();
}

/// Times `a` and `b` in alternating rounds (so a shared, noisy machine slows both alike)
/// and prints the median ratio of their times, with the 10th and 90th percentiles.
fn interleaved(label: &str, rounds: usize, iters: u32, mut a: impl FnMut(), mut b: impl FnMut()) {
    let mut ratios = Vec::with_capacity(rounds);
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed().as_secs_f64()
    };
    for _ in 0..3 {
        time(&mut a);
        time(&mut b);
    }
    for _ in 0..rounds {
        let ta = time(&mut a);
        let tb = time(&mut b);
        ratios.push(ta / tb);
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    println!(
        "interleaved {label}: ratio {:.3} (p10 {:.3}, p90 {:.3}; {rounds} rounds)",
        at(0.5),
        at(0.1),
        at(0.9)
    );
}

/// The ratios the goals are stated in, measured interleaved in one process.
fn ratios() {
    // SAFETY: the interpreter was initialised by `benches` on this thread, which stays
    // attached.
    let py = unsafe { Python::assume_attached() };
    let list = eval(py, "[i * 0.5 for i in range(1000)]");
    interleaved(
        "Vec<f64> from a list of 1000 floats / PyFloat_AsDouble per item",
        201,
        200,
        || {
            black_box(cast::<Vec<f64>>(black_box(list.as_borrowed())).unwrap());
        },
        || {
            black_box(float_loop(black_box(list.as_ptr())));
        },
    );
    let float = eval(py, "1.5");
    interleaved(
        "f64 from a float / PyFloat_AsDouble",
        201,
        100_000,
        || {
            black_box(cast::<f64>(black_box(float.as_borrowed())).unwrap());
        },
        || {
            // SAFETY: attached thread state; a live float.
            black_box(unsafe { ffi::PyFloat_AsDouble(black_box(float.as_ptr())) });
        },
    );
    let int = eval(py, "123456789");
    interleaved(
        "i64 from an int / PyLong_AsLongLong",
        201,
        100_000,
        || {
            black_box(cast::<i64>(black_box(int.as_borrowed())).unwrap());
        },
        || {
            // SAFETY: attached thread state; a live int.
            black_box(unsafe { ffi::PyLong_AsLongLong(black_box(int.as_ptr())) });
        },
    );
}

/// What a hand-written extension does with a list of floats: one C API call per element.
fn float_loop(list: *mut ffi::PyObject) -> Vec<f64> {
    // SAFETY: attached thread state; a live list of floats, not changed meanwhile.
    unsafe {
        let len = ffi::PyList_GET_SIZE(list);
        let mut out = Vec::with_capacity(len as usize);
        for i in 0..len {
            let value = ffi::PyFloat_AsDouble(ffi::PyList_GET_ITEM(list, i));
            if value == -1.0 && !ffi::PyErr_Occurred().is_null() {
                panic!("not a float");
            }
            out.push(value);
        }
        out
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    if std::env::args().all(|arg| arg != "--list") {
        ratios();
    }
    criterion.final_summary();
}
