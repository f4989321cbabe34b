//! `peer_bindery`: the bindery side of the peer comparison (`benches/peers`).
//!
//! Written as a bindery user writes a module: plain Rust functions with Rust argument and
//! return types bound with [`Function`], classes with [`Class`] (constructor, methods taking
//! `&mut T`, properties), garbage-collector support from `Traverse`/`Clear`, conversions left
//! to bindery-cast (`Vec<f64>`, `Vec<i64>`, `HashMap<String, i64>`, `Handle`). The Python API
//! is the one every peer module exposes (`benches/peers/README.md`).

use std::collections::HashMap;

use bindery::capsule::Handle;
use bindery::gc::{Clear, Cleared, Traverse, Visit, VisitError};
use bindery::{Class, Function, InstanceRef, ModuleBuilder, Python, RegisteredClass};

/// add(a, b) -> a + b, on 32-bit ints (the sum cannot overflow).
fn add(a: i32, b: i32) -> i64 {
    i64::from(a) + i64::from(b)
}

/// six(a, b, c, d, e, f) -> float: the shape of nanobind's function benchmark.
fn six(a: u16, b: i64, c: i32, d: u64, e: u32, f: f32) -> f64 {
    f64::from(a) + b as f64 + f64::from(c) + d as f64 + f64::from(e) + f64::from(f)
}

/// sum_list(xs) -> float sum of a list of floats.
fn sum_list(xs: Vec<f64>) -> f64 {
    xs.iter().sum()
}

/// make_ints(n) -> [0, ..., n-1]
fn make_ints(n: usize) -> Vec<i64> {
    (0..n as i64).collect()
}

/// make_dict(n) -> {"k0": 0, ..., "k{n-1}": n-1}
fn make_dict(n: usize) -> HashMap<String, i64> {
    (0..n as i64).map(|i| (format!("k{i}"), i)).collect()
}

/// Counter(start): a 64-bit counter.
#[derive(Clone)]
struct Counter {
    value: i64,
}

impl RegisteredClass for Counter {
    const TYPE_KEY: &'static str = "peer_bindery 0.0.0::Counter";
}

/// take_ref(counter) -> counter.value. A registered instance as a parameter, borrowed in
/// place (`&Counter` through `InstanceRef`, no clone).
fn take_ref(counter: InstanceRef<Counter>) -> i64 {
    counter.value
}

/// Node(): holds one Python reference in `.other`; GC-tracked, weak-referenceable.
#[derive(Default)]
struct Node {
    other: Option<Handle>,
}

impl RegisteredClass for Node {
    const TYPE_KEY: &'static str = "peer_bindery 0.0.0::Node";
}

impl Traverse for Node {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.other.traverse(visit)
    }
}

impl Clear for Node {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        self.other.clear_refs(cleared);
    }
}

fn counter_class() -> Class<Counter> {
    Class::<Counter>::new("Counter")
        .doc("Counter(start): a 64-bit counter.")
        .constructor(|start: i64| Counter { value: start }, |f| f.arg("start"))
        .method(
            "incr",
            |c: &mut Counter| {
                c.value = c.value.wrapping_add(1);
                c.value
            },
            |f| f.doc("Adds one and returns the new value."),
        )
        .getter("value", |c: &Counter| c.value)
}

fn node_class() -> Class<Node> {
    Class::<Node>::new("Node")
        .doc("Node(): holds one Python reference in .other; GC-tracked.")
        .default_constructor()
        .property(
            "other",
            // A getter gets `&T` only; a new reference needs the thread's token.
            |n: &Node| {
                n.other
                    .as_ref()
                    .and_then(|h| Python::with_attached(|py| h.clone_ref(py)))
            },
            |n: &mut Node, other: Option<Handle>| n.other = other,
        )
        .gc()
}

fn build(m: &mut ModuleBuilder) {
    m.doc("bindery module of bindery's peer comparison.");
    m.function(Function::new("add", add).arg("a").arg("b"));
    m.function(
        Function::new("six", six)
            .arg("a")
            .arg("b")
            .arg("c")
            .arg("d")
            .arg("e")
            .arg("f"),
    );
    m.function(Function::new("sum_list", sum_list).arg("xs"));
    m.function(Function::new("make_ints", make_ints).arg("n"));
    m.function(Function::new("make_dict", make_dict).arg("n"));
    m.function(Function::new("take_ref", take_ref).arg("counter"));
    m.class(counter_class());
    m.class(node_class());
}

bindery::module!(peer_bindery, build);
