//! `bindery_example_classes_user`: a separately built module that takes and returns
//! `Point`s made by `bindery_example_classes`, found through the shared registry.

use bindery::{Function, InstanceMut, InstanceRef, ModuleBuilder};
use bindery_example_geometry::Point;

// ANCHOR: build
fn build(m: &mut ModuleBuilder) {
    m.doc("Uses Points bound by another module.");
    // Reads the caller's Point in place (a shared borrow, no clone).
    m.function(Function::new("norm", |p: InstanceRef<Point>| p.x.hypot(p.y)).arg("p"));
    // Takes a clone and returns a new Point.
    m.function(Function::new("mirror", |p: Point| Point { x: -p.x, y: -p.y }).arg("p"));
    // Changes the caller's Point (the exclusive borrow).
    m.function(
        Function::new("nudge", |mut p: InstanceMut<Point>, dx: f64| p.x += dx)
            .arg("p")
            .arg("dx"),
    );
}

bindery::module!(bindery_example_classes_user, build);
// ANCHOR_END: build
