//! `bindery_example_classes_user`: a separately built module that takes and returns
//! `Point`s made by `bindery_example_classes`, found through the shared registry.

use bindery::{Function, ModuleBuilder};
use bindery_example_geometry::Point;

// ANCHOR: build
fn build(m: &mut ModuleBuilder) {
    m.doc("Uses Points bound by another module.");
    m.function(Function::new("norm", |p: Point| p.x.hypot(p.y)).arg("p"));
    m.function(Function::new("mirror", |p: Point| Point { x: -p.x, y: -p.y }).arg("p"));
}

bindery::module!(bindery_example_classes_user, build);
// ANCHOR_END: build
