//! `bindery_example_gc`: a bindery class that owns Python objects, with cycle-collector
//! support, and what the shutdown suite needs to prove it safe at any moment of an
//! interpreter's life (`gc-support/tests/py_shutdown.rs`).
//!
//! | name | what |
//! |---|---|
//! | `ContainerOwnsPythonObjects()` | a Rust `Vec` of Python objects: `append(obj)`, `size()`, `clear()`; subclassable, weakly referenceable |
//! | `Link()` | one Python object in a Rust value: `set(obj)`, `has_target()`; GC support reading the value in place ([`bindery::Class::gc`]) |
//! | `internals_capsule()` / `local_internals_capsule()` | the capsule objects in the state dict, or `None` |
//! | `add_gc_checkers_with_weakrefs(obj)` | `bindery::gc::add_gc_checkers_with_weakrefs` |
//! | `live_containers()` | how many container values exist in the process |
//! | `live_links()` | how many `Link` values exist in the process |
//! | `set_recreation_policy(name)` | test hook: `"fatal"` (default) or `"error"` |
//! | `simulate_release()` | test hook: forget this interpreter's internals, as a design that frees them would |
//!
//! The class's `tp_traverse` and `tp_clear` reach the Rust value through a cast of `self`
//! ([`bindery::Class::gc_through_cast`]): the path that needs internals to outlive the
//! interpreter's state dict.
//!
//! With `BINDERY_EXAMPLE_GC_REPORT_AT_EXIT=1` in the environment, the module writes
//! `bindery_example_gc: N containers alive after finalization` to stderr at the very end of
//! `Py_FinalizeEx` (`Py_AtExit`): the suite's proof that shutdown freed every container
//! exactly once (a leak leaves N above 0, a double drop wraps it around).
//!
//! Built with bindery-internals' `test-hooks` for the suite's negative control: never copy
//! that into a real module.

mod container;
mod link;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use bindery::capsule::Handle;
use bindery::internals::{self, RecreationPolicy};
use bindery::{Error, Function, ModuleBuilder, ModuleRef, Python};

/// Runs `f` with the token of the calling function's interpreter (bindery calls functions
/// with an attached thread state, so this always runs `f`).
fn attached<R>(f: impl for<'py> FnOnce(Python<'py>) -> Result<R, Error>) -> Result<R, Error> {
    Python::with_attached(f)
        .unwrap_or_else(|| Err(Error::runtime_error("no attached thread state")))
}

fn internals_capsule() -> Result<Option<Handle>, Error> {
    attached(|py| {
        let capsule = internals::get_internals_capsule(py)
            .map_err(|e| Error::runtime_error(e.to_string()))?;
        Ok(capsule.map(Handle::new))
    })
}

fn local_internals_capsule() -> Result<Option<Handle>, Error> {
    attached(|py| {
        let capsule = internals::get_local_internals_capsule(py)
            .map_err(|e| Error::runtime_error(e.to_string()))?;
        Ok(capsule.map(Handle::new))
    })
}

fn add_gc_checkers_with_weakrefs(obj: Handle) -> Result<(), Error> {
    attached(|py| {
        bindery::gc::add_gc_checkers_with_weakrefs(py, obj.bind(py))
            .map_err(|e| Error::runtime_error(e.to_string()))
    })
}

fn live_containers() -> usize {
    container::LIVE.load(Ordering::Relaxed)
}

fn live_links() -> usize {
    link::LIVE.load(Ordering::Relaxed)
}

// ANCHOR: set_policy
fn set_policy(name: String) -> Result<(), Error> {
    let policy = match name.as_str() {
        "fatal" => RecreationPolicy::Fatal,
        "error" => RecreationPolicy::ReturnError,
        other => {
            return Err(Error::value_error(format!(
                "policy must be 'fatal' or 'error', not {other:?}"
            )));
        }
    };
    internals::set_recreation_policy(policy);
    Ok(())
}
// ANCHOR_END: set_policy

fn simulate_release() -> Result<(), Error> {
    attached(|py| {
        internals::testing::simulate_release(py);
        Ok(())
    })
}

/// The environment variable that asks for the report at exit (see the crate docs).
const REPORT_AT_EXIT: &str = "BINDERY_EXAMPLE_GC_REPORT_AT_EXIT";

/// Runs at the very end of `Py_FinalizeEx`, after every interpreter is gone: no Python here.
extern "C" fn report_live_at_exit() {
    let live = container::LIVE.load(Ordering::SeqCst);
    let _ = writeln!(
        std::io::stderr(),
        "bindery_example_gc: {live} containers alive after finalization"
    );
}

/// Exec hook: registers [`report_live_at_exit`] once per process, from the main interpreter,
/// if the environment asks for it.
fn register_report_at_exit(m: &ModuleRef<'_>) -> Result<(), Error> {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if m.py().interpreter_id() != 0 || std::env::var_os(REPORT_AT_EXIT).is_none_or(|v| v != "1") {
        return Ok(());
    }
    if !REGISTERED.swap(true, Ordering::SeqCst) {
        // SAFETY: attached thread state (exec hook); the function needs no Python and lives
        // as long as the process (CPython never unloads extension modules). A full table (32
        // entries) only means no report, which the suite would notice.
        unsafe { bindery::ffi::Py_AtExit(Some(report_live_at_exit)) };
    }
    Ok(())
}

fn build(m: &mut ModuleBuilder) {
    m.doc("A registered class that owns Python objects, with GC support.");
    m.class(container::class());
    m.class(link::class());
    m.function(
        Function::new("internals_capsule", internals_capsule)
            .doc("The capsule holding this interpreter's internals, or None."),
    );
    m.function(
        Function::new("local_internals_capsule", local_internals_capsule)
            .doc("The capsule holding this module's local internals, or None."),
    );
    m.function(
        Function::new(
            "add_gc_checkers_with_weakrefs",
            add_gc_checkers_with_weakrefs,
        )
        .arg("obj")
        .doc(
            "When obj is collected, check that the internals are still the same; else report \
             'bindery gc checker: ...' and exit.",
        ),
    );
    m.function(
        Function::new("live_containers", live_containers)
            .doc("How many ContainerOwnsPythonObjects values exist in the process."),
    );
    m.function(
        Function::new("live_links", live_links).doc("How many Link values exist in the process."),
    );
    m.function(
        Function::new("set_recreation_policy", set_policy)
            .arg("policy")
            .doc("Test hook: what this module does if internals would be re-created, 'fatal' or 'error'."),
    );
    m.function(
        Function::new("simulate_release", simulate_release).doc(
            "Test hook: forget this interpreter's internals, as a design that frees them would.",
        ),
    );
    m.on_exec(register_report_at_exit);
}

bindery::module!(bindery_example_gc, build);
