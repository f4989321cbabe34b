//! `Point`: a Rust type that two separately built modules share. `bindery_example_classes`
//! binds it as a class; `bindery_example_classes_user` takes and returns its instances
//! through the shared registry, found by the stable type key.

use bindery::RegisteredClass;

/// A point in the plane.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate.
    pub y: f64,
}

impl RegisteredClass for Point {
    const TYPE_KEY: &'static str = concat!(
        "bindery-example-geometry ",
        env!("CARGO_PKG_VERSION"),
        "::Point"
    );
}
