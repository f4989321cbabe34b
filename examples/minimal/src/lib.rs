//! `bindery_example_minimal`: the smallest bindery module.
//!
//! ```python
//! import bindery_example_minimal as m
//! m.add(1, 2)                # 3
//! m.sum_list([0.5, 1.5])     # 2.0
//! ```

use bindery::{Function, ModuleBuilder};

/// `a + b` for two Python ints that fit in 64 bits (an `OverflowError` otherwise, and for a
/// sum that does not fit).
fn add(a: i64, b: i64) -> Result<i64, bindery::Error> {
    a.checked_add(b).ok_or_else(|| {
        bindery::Error::new(
            bindery::ExceptionClass::OverflowError,
            "add() result does not fit in 64 bits",
        )
    })
}

/// The float sum of a list (or tuple) of floats; exact floats are read in place.
fn sum_list(xs: Vec<f64>) -> f64 {
    xs.iter().sum()
}

fn build(m: &mut ModuleBuilder) {
    m.doc("The smallest bindery module.");
    m.function(
        Function::new("add", add)
            .arg("a")
            .arg("b")
            .doc("Return a + b for two ints."),
    );
    m.function(
        Function::new("sum_list", sum_list)
            .arg("xs")
            .doc("Return the float sum of a list of floats."),
    );
}

bindery::module!(bindery_example_minimal, build);
