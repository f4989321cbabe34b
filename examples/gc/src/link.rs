//! The class `Link`: one Python reference in a Rust value, with GC support that reads the
//! value in place ([`bindery::Class::gc`]: no cast, no internals lookup in `tp_traverse`).

use std::sync::atomic::{AtomicUsize, Ordering};

use bindery::gc::{Clear, Cleared, Traverse, Visit, VisitError};
use bindery::{Class, RegisteredClass, capsule::Handle};

/// How many `Link` values exist in the process (all interpreters), as for the container.
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The Rust value of a `Link` instance: at most one object it keeps alive.
pub(crate) struct Link {
    target: Option<Handle>,
}

impl Default for Link {
    fn default() -> Link {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Link { target: None }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RegisteredClass for Link {
    const TYPE_KEY: &'static str =
        concat!("bindery-example-gc ", env!("CARGO_PKG_VERSION"), "::Link");
}

impl Traverse for Link {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.target.traverse(visit)
    }
}

impl Clear for Link {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        self.target.clear_refs(cleared);
    }
}

/// The class: `Link()`, `set(obj)`, `has_target()`; GC-tracked through `Class::gc`.
pub(crate) fn class() -> Class<Link> {
    Class::<Link>::new("Link")
        .doc("Holds one Python object; its traverse reads the Rust value in place.")
        .default_constructor()
        .method(
            "set",
            |l: &mut Link, obj: Option<Handle>| l.target = obj,
            |f| {
                f.arg("obj")
                    .doc("Keep a reference to obj (None: keep nothing).")
            },
        )
        .method(
            "has_target",
            |l: &Link| l.target.is_some(),
            |f| f.doc("Whether it holds an object."),
        )
        .gc()
}
