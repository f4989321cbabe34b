//! `peer_pyo3`: the PyO3 side of bindery's peer comparison (`benches/peers`).
//!
//! Written as a PyO3 user would write it: `#[pyfunction]`s with plain Rust argument and
//! return types, `#[pyclass]`es, conversions left to PyO3 (`Vec<f64>`, `Vec<i64>`,
//! `HashMap<String, i64>`). The Python API is the one every peer module exposes
//! (`benches/peers/README.md`).

use pyo3::prelude::*;

#[pymodule]
mod peer_pyo3 {
    use std::collections::HashMap;

    use pyo3::gc::PyVisit;
    use pyo3::prelude::*;
    use pyo3::PyTraverseError;

    /// add(a, b) -> a + b, on 32-bit ints (the sum cannot overflow).
    #[pyfunction]
    fn add(a: i32, b: i32) -> i64 {
        i64::from(a) + i64::from(b)
    }

    /// six(a, b, c, d, e, f) -> float: the shape of nanobind's function benchmark.
    #[pyfunction]
    fn six(a: u16, b: i64, c: i32, d: u64, e: u32, f: f32) -> f64 {
        f64::from(a) + b as f64 + f64::from(c) + d as f64 + f64::from(e) + f64::from(f)
    }

    /// sum_list(xs) -> float sum of a list of floats.
    #[pyfunction]
    fn sum_list(xs: Vec<f64>) -> f64 {
        xs.iter().sum()
    }

    /// make_ints(n) -> [0, ..., n-1]
    #[pyfunction]
    fn make_ints(n: usize) -> Vec<i64> {
        (0..n as i64).collect()
    }

    /// make_dict(n) -> {"k0": 0, ..., "k{n-1}": n-1}
    #[pyfunction]
    fn make_dict(n: usize) -> HashMap<String, i64> {
        (0..n as i64).map(|i| (format!("k{i}"), i)).collect()
    }

    /// Counter(start): a 64-bit counter.
    #[pyclass]
    struct Counter {
        value: i64,
    }

    #[pymethods]
    impl Counter {
        #[new]
        fn new(start: i64) -> Self {
            Counter { value: start }
        }

        /// Adds one and returns the new value.
        fn incr(&mut self) -> i64 {
            self.value = self.value.wrapping_add(1);
            self.value
        }

        /// The current value.
        #[getter]
        fn value(&self) -> i64 {
            self.value
        }
    }

    /// take_ref(counter) -> counter.value, through a shared borrow (`&T`-like).
    #[pyfunction]
    fn take_ref(counter: PyRef<'_, Counter>) -> i64 {
        counter.value
    }

    /// Node(): holds one Python reference in `.other`; GC-tracked, weak-referenceable.
    #[pyclass(weakref)]
    struct Node {
        other: Option<Py<PyAny>>,
    }

    #[pymethods]
    impl Node {
        #[new]
        fn new() -> Self {
            Node { other: None }
        }

        #[getter]
        fn other(&self, py: Python<'_>) -> Option<Py<PyAny>> {
            self.other.as_ref().map(|o| o.clone_ref(py))
        }

        #[setter]
        fn set_other(&mut self, other: Option<Py<PyAny>>) {
            self.other = other;
        }

        fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
            visit.call(&self.other)
        }

        fn __clear__(&mut self) {
            self.other = None;
        }
    }
}
