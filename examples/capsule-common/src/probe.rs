//! The values the example modules store: [`Probe`] reports how it ends on stderr, so a test
//! watching a subprocess can count drops and custom disposals; [`Other`] is a second value
//! type for the type-mismatch check.

use std::io::Write;

/// A value that writes `bindery-probe: drop <tag>` to stderr (flushed) when dropped.
#[derive(Debug)]
pub struct Probe {
    tag: String,
    announce_drop: bool,
}

impl Probe {
    /// A probe with this tag.
    pub fn new(tag: impl Into<String>) -> Probe {
        Probe {
            tag: tag.into(),
            announce_drop: true,
        }
    }

    /// The tag given at creation.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if self.announce_drop {
            report("drop", &self.tag);
        }
    }
}

// ANCHOR: custom_dispose
/// The custom destructor of the `"custom"` policy: writes `bindery-probe: custom <tag>` and
/// frees the probe silently, so each ending is observable as exactly one line.
#[allow(clippy::boxed_local, reason = "the signature `Dtor::Custom` requires")]
pub fn custom_dispose(mut probe: Box<Probe>) {
    report("custom", &probe.tag);
    probe.announce_drop = false;
}
// ANCHOR_END: custom_dispose

/// Writes one `bindery-probe:` line to the process's stderr (fd 2, still open during
/// interpreter finalization, unlike `sys.stderr`).
fn report(event: &str, tag: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "bindery-probe: {event} {tag}");
    let _ = stderr.flush();
}

/// A value of another Rust type, stored by `get_or_create_other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Other {
    /// Arbitrary payload.
    pub value: u32,
}
