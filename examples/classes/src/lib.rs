//! `bindery_example_classes`: classes with the bindery facade.
//!
//! ```python
//! from bindery_example_classes import Point, Counter
//! p = Point(1.0, 2.0); p.x = 3.0; p.norm(); repr(p)    # 'Point(3, 2)'
//! c = Counter(); c.increment(); c.increment(by=5); c.value   # 6
//! ```

use bindery::{
    Class, Error, ExceptionClass, Function, InstanceMut, ModuleBuilder, RegisteredClass,
};
use bindery_example_geometry::Point;

/// A counter with a label: a class with mutable state.
#[derive(Clone, Default)]
pub struct Counter {
    label: String,
    value: i64,
    history: Vec<i64>,
}

impl RegisteredClass for Counter {
    const TYPE_KEY: &'static str = concat!(
        "bindery-example-classes ",
        env!("CARGO_PKG_VERSION"),
        "::Counter"
    );
}

// ANCHOR: point_class
fn point_class() -> Class<Point> {
    Class::<Point>::new("Point")
        .doc("A point in the plane.")
        .constructor(
            |x: f64, y: f64| Point { x, y },
            |f| f.arg("x").arg_default("y", 0.0),
        )
        .property("x", |p: &Point| p.x, |p: &mut Point, v: f64| p.x = v)
        .property("y", |p: &Point| p.y, |p: &mut Point, v: f64| p.y = v)
        .method(
            "norm",
            |p: &Point| p.x.hypot(p.y),
            |f| f.doc("Distance from the origin."),
        )
        .method(
            "scale",
            |p: &mut Point, k: f64| {
                p.x *= k;
                p.y *= k;
            },
            |f| f.arg("k"),
        )
        .method(
            "moved",
            |p: &Point, dx: f64, dy: f64| Point {
                x: p.x + dx,
                y: p.y + dy,
            },
            |f| f.arg("dx").arg_default("dy", 0.0),
        )
        .static_method(Function::new("origin", || Point { x: 0.0, y: 0.0 }).doc("The origin."))
        .repr(|p: &Point| format!("Point({}, {})", p.x, p.y))
        .eq(|a: &Point, b: &Point| a == b)
        .hash(|p: &Point| p.x.to_bits().wrapping_mul(31) ^ p.y.to_bits())
}
// ANCHOR_END: point_class

// ANCHOR: counter_class
fn counter_class() -> Class<Counter> {
    Class::<Counter>::new("Counter")
        .doc("A labelled counter.")
        .constructor(
            |label: String| Counter {
                label,
                ..Counter::default()
            },
            |f| f.arg_default("label", String::from("counter")),
        )
        .getter("value", |c: &Counter| c.value)
        .getter("label", |c: &Counter| c.label.clone())
        .method(
            "increment",
            |c: &mut Counter, by: i64| -> Result<i64, Error> {
                if by < 0 {
                    return Err(Error::new(
                        ExceptionClass::ValueError,
                        "increment() by must be >= 0",
                    ));
                }
                c.value += by;
                c.history.push(c.value);
                Ok(c.value)
            },
            |f| f.arg_default("by", 1_i64),
        )
        .method(
            "explode",
            |_c: &Counter| -> i64 { panic!("counter exploded") },
            |f| f,
        )
        .len(|c: &Counter| c.history.len())
        .getitem(|c: &Counter, i: usize| -> Result<i64, Error> {
            c.history
                .get(i)
                .copied()
                .ok_or_else(|| Error::new(ExceptionClass::IndexError, "history index out of range"))
        })
        .repr(|c: &Counter| format!("Counter({:?}, value={})", c.label, c.value))
}
// ANCHOR_END: counter_class

// ANCHOR: build
fn build(m: &mut ModuleBuilder) {
    m.doc("Classes with bindery.");
    m.class(point_class());
    m.class(counter_class());
    m.function(
        Function::new("midpoint", |a: Point, b: Point| Point {
            x: (a.x + b.x) / 2.0,
            y: (a.y + b.y) / 2.0,
        })
        .arg("a")
        .arg("b"),
    );
    m.function(
        Function::new(
            "swap",
            |mut a: InstanceMut<Point>, mut b: InstanceMut<Point>| std::mem::swap(&mut *a, &mut *b),
        )
        .arg("a")
        .arg("b")
        .doc("Exchange the coordinates of two points, in place."),
    );
}

bindery::module!(bindery_example_classes, build);
// ANCHOR_END: build
