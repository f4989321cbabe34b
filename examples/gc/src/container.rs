//! The class `ContainerOwnsPythonObjects`: a Rust vector of Python objects, with GC support
//! that reaches the value through a cast of `self`.

use std::sync::atomic::{AtomicUsize, Ordering};

use bindery::gc::{Clear, Cleared, Traverse, Visit, VisitError};
use bindery::{Class, RegisteredClass, capsule::Handle};

/// How many `ContainerOwnsPythonObjects` values exist in the process (all interpreters):
/// incremented when one is made, decremented by its `Drop`. A double drop would make it wrap
/// around; a leak keeps it up.
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);

// ANCHOR: value
/// The Rust value of a `ContainerOwnsPythonObjects` instance.
pub(crate) struct ContainerOwnsPythonObjects {
    items: Vec<Handle>,
}

impl Default for ContainerOwnsPythonObjects {
    fn default() -> ContainerOwnsPythonObjects {
        LIVE.fetch_add(1, Ordering::Relaxed);
        ContainerOwnsPythonObjects { items: Vec::new() }
    }
}

impl Drop for ContainerOwnsPythonObjects {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}
// ANCHOR_END: value

impl RegisteredClass for ContainerOwnsPythonObjects {
    const TYPE_KEY: &'static str = concat!(
        "bindery-example-gc ",
        env!("CARGO_PKG_VERSION"),
        "::ContainerOwnsPythonObjects"
    );
}

// ANCHOR: gc
impl Traverse for ContainerOwnsPythonObjects {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.items.traverse(visit)
    }
}

impl Clear for ContainerOwnsPythonObjects {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        self.items.clear_refs(cleared);
    }
}
// ANCHOR_END: gc

/// The class: subclassable and weakly referenceable (the facade's defaults), GC-tracked with
/// `tp_traverse` and `tp_clear` reaching the value through a cast of `self`, and
/// bindery-gc-support's `tp_dealloc` (a chain of 100k containers frees with a flat stack).
// ANCHOR: class
pub(crate) fn class() -> Class<ContainerOwnsPythonObjects> {
    Class::<ContainerOwnsPythonObjects>::new("ContainerOwnsPythonObjects")
        .doc("A Rust vector of Python objects, with cycle-collector support.")
        // `C()` takes no arguments; a Python subclass's own __init__ gets them.
        .default_constructor()
        .method(
            "append",
            |c: &mut ContainerOwnsPythonObjects, obj: Handle| c.items.push(obj),
            |f| f.arg("obj").doc("Keep a reference to obj."),
        )
        .method(
            "size",
            |c: &ContainerOwnsPythonObjects| c.items.len(),
            |f| f.doc("How many objects it holds."),
        )
        // Releases after giving up the borrow: a __del__ that runs then may use the container.
        .clear_method("clear", "Release every object it holds.")
        .gc_through_cast()
}
// ANCHOR_END: class
