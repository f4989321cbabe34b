//! Run Python code, and the extension module you are building, in a fresh interpreter process
//! from `cargo test`, and get a readable report when it fails, crashes or hangs.
//!
//! # Overview
//!
//! ```text
//! check_script_success_in_subprocess(code)        // run, panic with a report unless exit 0
//!
//! Script::new(code)                               // dedented like textwrap.dedent
//!     .extension(Extension::new("my-ext"))        // cargo build for that interpreter, stage, PYTHONPATH
//!     .python(path) .env(k, v) .pythonpath(dir) .cwd(dir)
//!     .timeout(d)                                 // kill the whole process group on expiry
//!     .reruns(n)                                  // n fresh processes; "failed on run 3 of 8"
//!     .expect_failure_containing(text)            // must fail, and say `text`
//!     .with_subinterpreter_helpers()              // run_in_subinterpreter(code, own_gil=False)
//!     .prelude(code)                              // shared helpers, run before the script
//!     .run() -> Result<Outcome, ScriptFailure>    // or .check() -> Outcome, panicking
//!
//! PythonInfo::discover() / PythonInfo::at(path)   // BINDERY_PYTHON, PYO3_PYTHON, python3
//! python() / requires_python(3, 12, why)          // the default interpreter; skip on older ones
//! Extension::new(pkg).stage(&python)              // the building block of .extension()
//! ```
//!
//! Every run is a new process: whatever is proven about interpreter start-up, shutdown,
//! crashes or subinterpreters is proven there, never inside the test binary.
//!
//! # Example
//!
//! A test of an extension module `my_ext` built from the workspace package `my-ext`:
//!
//! ```no_run
//! use bindery_testkit::{Extension, Script};
//!
//! #[test]
//! fn adds_in_python() {
//!     let outcome = Script::new(
//!         r#"
//!         import my_ext
//!         assert my_ext.add(2, 3) == 5
//!         print("ok")
//!         "#,
//!     )
//!     .extension(Extension::new("my-ext"))
//!     .check();
//!     assert_eq!(outcome.stdout, "ok\n");
//! }
//! ```
//!
//! If the script raises, exits non-zero, crashes or hangs, the test panics with a report:
//!
//! ```text
//! Python script killed by signal 11 (SIGSEGV) on run 1 of 1
//! interpreter: /root/.pyenv/versions/3.12.1/bin/python3 (Python 3.12.1)
//! hint: PYTHONFAULTHANDLER=1 was set, so the Python traceback of the crash is in stderr below
//! --- script (run with `python -c`) ---
//! 1 | import my_ext
//! 2 | assert my_ext.add(2, 3) == 5
//! 3 | print("ok")
//! --- stdout ---
//! (empty)
//! --- stderr ---
//! Fatal Python error: Segmentation fault
//! ...
//! --- end of report ---
//! ```
//!
//! # Recipes
//!
//! ## Using it from a PyO3 (or any other) project
//!
//! The crate has no dependencies and knows nothing about bindery: add it as a
//! dev-dependency, and name the package of your `#[pymodule]` crate in [`Extension::new`].
//! It must have `crate-type = ["cdylib"]` (add `"rlib"` if other crates use it too). The
//! build sets `PYO3_BUILD_EXTENSION_MODULE=1` and `PYO3_PYTHON`, as maturin does, so it
//! works with PyO3's default features. If the module's import name differs from the lib
//! name, say so with [`Extension::module_name`]; features go through
//! [`Extension::features`].
//!
//! ```no_run
//! # use bindery_testkit::{Extension, Script};
//! Script::new("import string_sum; assert string_sum.sum_as_string(5, 20) == '25'")
//!     .extension(Extension::new("string-sum").features(["abi3"]))
//!     .check();
//! ```
//!
//! ## Testing shutdown with reruns
//!
//! Bugs in `tp_traverse`/`tp_clear` or in module state teardown often show only in some
//! runs, depending on the order in which the last garbage collection meets objects. Run the
//! script several times; the report says which run failed.
//!
//! ```no_run
//! # use bindery_testkit::{Extension, Script};
//! Script::new("
//!     import my_ext
//!     cycle = my_ext.Node(); cycle.next = cycle   # left for the final collection
//! ")
//! .extension(Extension::new("my-ext"))
//! .reruns(8)
//! .check();
//! ```
//!
//! ## Expected fatal errors
//!
//! To prove that a misuse aborts with an explanation (rather than crashing silently or
//! succeeding), expect a failure and the text it must print:
//!
//! ```no_run
//! # use bindery_testkit::{Extension, FailureKind, Script};
//! let outcome = Script::new("import my_ext; my_ext.recreate_internals()")
//!     .extension(Extension::new("my-ext"))
//!     .expect_failure_containing("internals were already created")
//!     .check();
//! assert!(!outcome.status.success());
//! ```
//!
//! To look at the failure itself, use [`Script::run`] and match on [`FailureKind`].
//!
//! ## Subinterpreters
//!
//! [`Script::with_subinterpreter_helpers`] defines `run_in_subinterpreter(code,
//! own_gil=False)` and `SUBINTERPRETERS_OWN_GIL` for the script (see
//! [`SUBINTERPRETER_HELPERS`]), the same on every version. Own-GIL subinterpreters need
//! 3.12+; skip, saying why, elsewhere:
//!
//! ```no_run
//! # use bindery_testkit::{Extension, Script};
//! let body = "
//!     run_in_subinterpreter('import my_ext; assert my_ext.add(1, 2) == 3')
//!     run_in_subinterpreter('import my_ext; assert my_ext.add(1, 2) == 3', own_gil=True)
//! ";
//! if bindery_testkit::requires_python(3, 12, "own-GIL subinterpreters") {
//!     Script::new(body)
//!         .with_subinterpreter_helpers()
//!         .extension(Extension::new("my-ext"))
//!         .check();
//! }
//! ```
//!
//! ## Every Python version
//!
//! The default interpreter is `BINDERY_PYTHON`, else `PYO3_PYTHON`, else `python3` on
//! `PATH` ([`PythonInfo::discover`]). Keep the tests that run Python in their own test
//! binaries and rerun those with `BINDERY_PYTHON=/path/to/python3.X`; extension builds for
//! each interpreter get their own target folder, so switching back and forth rebuilds
//! nothing.
//!
//! # Invariants
//!
//! - Each run is a fresh process in its own process group, with stdin from `/dev/null` and
//!   `PYTHONFAULTHANDLER=1`, `PYTHONDONTWRITEBYTECODE=1`, `PYTHONUNBUFFERED=1`.
//! - A run never outlives its timeout by more than a few seconds: on expiry the whole group
//!   gets `SIGKILL`, so grandchildren holding the output pipes cannot hang the test.
//! - An interpreter named by `BINDERY_PYTHON` or `PYO3_PYTHON` that does not work is an
//!   error, never a silent fallback to another interpreter.
//! - Extensions are built by cargo for the script's interpreter, in a target folder of
//!   their own, and staged under that interpreter's `EXT_SUFFIX` in a fresh folder.
//!
//! # Safety
//!
//! One `unsafe` call: `kill(2)` on the process group of a child this crate started.
//!
//! # Supported versions
//!
//! CPython 3.9 to 3.13 (free-threaded builds included), on Linux and macOS (the crate is
//! Unix-only: process groups and signals).

#![deny(missing_docs)]

#[cfg(not(unix))]
compile_error!("bindery-testkit runs interpreters in process groups and names signals: Unix only");

mod dedent;
mod extension;
mod failure;
mod golden;
mod json;
mod process;
mod python;
mod script;
mod subinterp;

pub use extension::{Extension, StagedExtension};
pub use failure::{FailureKind, ScriptFailure};
pub use golden::assert_golden;
pub use python::PythonInfo;
pub use script::{Outcome, RunOutput, Script};
pub use subinterp::SUBINTERPRETER_HELPERS;

/// Runs `code` (dedented) with `python -c` in a fresh process of the default interpreter and
/// panics unless it exits with status 0.
///
/// The panic message is the full report: the exit code, or the signal by name (`SIGSEGV`,
/// `SIGABRT`, ...), the interpreter's path and version, the script with line numbers, stdout
/// and stderr. Shorthand for `Script::new(code).check()`; use [`Script`] for timeouts,
/// reruns, extensions and more.
///
/// ```no_run
/// bindery_testkit::check_script_success_in_subprocess("
///     import gc
///     gc.collect()
/// ");
/// ```
#[track_caller]
pub fn check_script_success_in_subprocess(code: &str) {
    Script::new(code).check();
}

/// The default interpreter ([`PythonInfo::discover`], cached).
///
/// # Panics
///
/// If no interpreter can be found, with a message saying what was tried.
#[track_caller]
pub fn python() -> PythonInfo {
    PythonInfo::discover().unwrap_or_else(|e| panic!("bindery-testkit: {e}"))
}

/// For tests that need a newer interpreter: true if the default interpreter is at least
/// `major.minor`; otherwise prints `skipped: <why> (needs Python X.Y+, running A.B.C at
/// PATH)` to stderr and stdout and returns false.
///
/// ```no_run
/// if !bindery_testkit::requires_python(3, 12, "own-GIL subinterpreters") {
///     return;
/// }
/// ```
///
/// # Panics
///
/// If no interpreter can be found (see [`python`]).
#[track_caller]
pub fn requires_python(major: u32, minor: u32, why: &str) -> bool {
    let python = python();
    if python.at_least(major, minor) {
        return true;
    }
    let (a, b, c) = python.version;
    let message = format!(
        "skipped: {why} (needs Python {major}.{minor}+, running {a}.{b}.{c} at {})",
        python.executable.display()
    );
    println!("{message}");
    eprintln!("{message}");
    false
}
