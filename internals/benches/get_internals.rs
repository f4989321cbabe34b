//! `get_internals` on its fast and slow paths, in the main interpreter and in a
//! subinterpreter, in an interpreter embedded in this benchmark process.
//!
//! Run: `cargo bench -p bindery-internals --features test-hooks --bench get_internals`.
//! Baselines in the same run explain the figures: one atomic load, and one
//! `PyInterpreterState_Get` call (what the fast path adds to tell the main interpreter
//! from a subinterpreter).

use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, Ordering};

use bindery_capsule::Python;
use bindery_internals::{get_internals, get_local_internals, on_module_exec, testing};
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    // SAFETY: initialising the interpreter once, on this thread, before any other call.
    unsafe { pyo3_ffi::Py_InitializeEx(0) };
    // SAFETY: Py_InitializeEx leaves this thread attached to the main interpreter, and
    // nothing below detaches it except across explicit thread-state swaps, after which a
    // fresh token is made.
    let py = unsafe { Python::assume_attached() };
    on_module_exec(py).expect("internals in the main interpreter");

    let mut group = c.benchmark_group("baseline");
    let slot = AtomicPtr::new(std::ptr::null_mut::<u8>());
    group.bench_function("atomic_load", |b| {
        b.iter(|| black_box(slot.load(Ordering::Acquire)))
    });
    group.bench_function("PyInterpreterState_Get", |b| {
        // SAFETY: attached thread state (see above).
        b.iter(|| black_box(unsafe { pyo3_ffi::PyInterpreterState_Get() }))
    });
    group.bench_function("PyThreadState_GetUnchecked", |b| {
        // SAFETY: attached thread state (see above); the call only reads it.
        b.iter(|| black_box(unsafe { pyo3_ffi::compat::PyThreadState_GetUnchecked() }))
    });
    group.finish();

    let mut group = c.benchmark_group("main_interpreter");
    group.bench_function("get_internals/fast", |b| {
        b.iter(|| black_box(get_internals(black_box(py)).is_ok()))
    });
    group.bench_function("get_local_internals/fast", |b| {
        b.iter(|| black_box(get_local_internals(black_box(py)).is_ok()))
    });
    group.bench_function("get_internals/slow", |b| {
        b.iter(|| {
            testing::reset_caches();
            black_box(get_internals(black_box(py)).is_ok())
        })
    });
    group.finish();

    // SAFETY: attached thread state; Py_NewInterpreter creates a shared-GIL subinterpreter
    // and makes its thread state current on this thread.
    let main_state = unsafe { pyo3_ffi::PyThreadState_Get() };
    // SAFETY: as above.
    let sub_state = unsafe { pyo3_ffi::Py_NewInterpreter() };
    assert!(!sub_state.is_null(), "Py_NewInterpreter failed");
    // SAFETY: the subinterpreter's thread state is current on this thread until swapped.
    let sub = unsafe { Python::assume_attached() };
    on_module_exec(sub).expect("internals in a subinterpreter");

    let mut group = c.benchmark_group("subinterpreter");
    group.bench_function("get_internals/fast", |b| {
        b.iter(|| black_box(get_internals(black_box(sub)).is_ok()))
    });
    group.bench_function("get_internals/slow", |b| {
        b.iter(|| {
            testing::reset_caches();
            black_box(get_internals(black_box(sub)).is_ok())
        })
    });
    group.finish();

    // SAFETY: `sub_state` is current on this thread; ending it leaves no current state,
    // then the main thread state is made current again.
    unsafe {
        pyo3_ffi::Py_EndInterpreter(sub_state);
        pyo3_ffi::PyThreadState_Swap(main_state);
    }
    let mut group = c.benchmark_group("main_interpreter_after_subinterpreters");
    group.bench_function("get_internals/fast", |b| {
        b.iter(|| black_box(get_internals(black_box(py)).is_ok()))
    });
    group.finish();
}

criterion_group!(get_internals_benches, benches);
criterion_main!(get_internals_benches);
