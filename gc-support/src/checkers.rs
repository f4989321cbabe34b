//! GC lifetime checkers for tests: [`add_gc_checkers_with_weakrefs`].
//!
//! Each checker is a weak reference to the watched object whose callback is a C function
//! bound to a small capsule recording what the internals were when the checker was attached.
//! The checker keeps its weak reference alive on purpose (one leaked strong reference, given
//! back by the callback), so the callback runs whenever the object is collected, including in
//! the interpreter's last garbage collection. It holds no reference to the internals capsules:
//! holding one would keep them alive and hide exactly the bug it must catch.

use std::ffi::c_int;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use bindery_capsule::{
    Borrowed, CapsuleError, Dtor, Owned, Python, capsule_value, new_capsule, take_error_text,
};
use bindery_internals::{
    Internals, InternalsError, LocalInternals, get_internals, get_internals_capsule,
    get_local_internals, get_local_internals_capsule, get_local_internals_key, internals_id,
};
use pyo3_ffi as ffi;

/// The exit status of a process whose GC checker found the internals gone or replaced (the
/// report on stderr starts with `bindery gc checker:`).
pub const GC_CHECKER_EXIT_CODE: c_int = 86;

/// Why [`add_gc_checkers_with_weakrefs`] could not attach its checkers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcCheckerError {
    /// The internals to watch cannot be had in this interpreter.
    #[error("cannot attach gc checkers: the {what} of this interpreter cannot be had: {source}")]
    Internals {
        /// `"internals"` or `"local internals"`.
        what: &'static str,
        /// Why not.
        #[source]
        source: InternalsError,
    },
    /// The internals capsule is not in the state dict, or does not hold the internals this
    /// module uses.
    #[error(
        "cannot attach gc checkers: the {what} capsule of interpreter {interpreter_id} {problem}; \
         checkers watch internals that are in use: attach them after the module's exec slot \
         called bindery_internals::on_module_exec, and before the interpreter finalizes"
    )]
    Capsule {
        /// `"internals"` or `"local internals"`.
        what: &'static str,
        /// The current interpreter.
        interpreter_id: i64,
        /// What is wrong with it.
        problem: String,
    },
    /// The object cannot be watched: its type does not support weak references.
    #[error(
        "cannot attach gc checkers to a '{python}' object: {error}; its type must support \
         weak references (a tp_weaklistoffset, e.g. a `__weaklistoffset__` member in its type \
         spec, or `__weakref__` in the `__slots__` of a Python class)"
    )]
    NotWeaklyReferenceable {
        /// The object's type.
        python: String,
        /// The Python error `PyWeakref_NewRef` raised.
        error: String,
    },
    /// A Python call needed to build a checker failed.
    #[error("cannot attach gc checkers: {context} failed: {error}")]
    Python {
        /// The call.
        context: &'static str,
        /// The Python error it raised.
        error: String,
    },
}

/// Attaches two GC checkers to `obj`, one for the interpreter's shared internals and one for
/// the calling module's local internals. When `obj` is collected, at any time up to and
/// including the interpreter's last garbage collection, each checks that its internals are
/// still usable and are the same ones as when it was attached:
///
/// - the callback runs in the interpreter the checker was attached in;
/// - `get_internals` (`get_local_internals`) still answers, with the same content address:
///   internals were neither freed nor re-created (a re-creation under the default policy
///   stops the process with bindery's re-creation diagnostic before the checker can speak);
/// - if a capsule is still in the state dict under the key, it holds that same content. A
///   capsule missing from the state dict is fine: the interpreter clears its state dict at
///   finalization, before its last garbage collection, and leaked internals outlive it.
///
/// If a check fails, the checker writes one line starting `bindery gc checker:` that names
/// what failed to stderr and ends the process with [`GC_CHECKER_EXIT_CODE`]. A test that runs
/// the scenario in a subprocess then fails loudly, whatever Python does with exceptions in
/// weakref callbacks.
///
/// The checkers hold no reference to the internals capsules. Each keeps its own weak
/// reference alive until it runs; if `obj` is never collected, that weak reference (about
/// 100 bytes) is never freed. Meant for tests; attach after the module's exec slot ran.
///
/// Errors: `obj`'s type does not support weak references, internals cannot be had, or their
/// capsule is not in the state dict (see [`GcCheckerError`]).
pub fn add_gc_checkers_with_weakrefs<'py>(
    py: Python<'py>,
    obj: Borrowed<'_, 'py>,
) -> Result<(), GcCheckerError> {
    for kind in [Kind::Shared, Kind::Local] {
        let expected = Expected::now(py, kind, obj.type_name())?;
        attach(py, obj, expected)?;
    }
    Ok(())
}

/// Which internals a checker watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Shared,
    Local,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Shared => "internals",
            Kind::Local => "local internals",
        }
    }

    /// The content address `get_internals` / `get_local_internals` gives now.
    fn content(self, py: Python<'_>) -> Result<usize, InternalsError> {
        Ok(match self {
            Kind::Shared => ptr::from_ref::<Internals>(get_internals(py)?) as usize,
            Kind::Local => ptr::from_ref::<LocalInternals>(get_local_internals(py)?) as usize,
        })
    }

    /// The content address held by the capsule in the state dict; `Ok(None)` if no capsule
    /// is there.
    fn capsule_content(self, py: Python<'_>) -> Result<Option<usize>, String> {
        let capsule = match self {
            Kind::Shared => get_internals_capsule(py),
            Kind::Local => get_local_internals_capsule(py),
        }
        .map_err(|e| e.to_string())?;
        let Some(capsule) = capsule else {
            return Ok(None);
        };
        let content = match self {
            Kind::Shared => capsule_value::<Internals>(&capsule, internals_id()).map(|p| p.cast()),
            Kind::Local => capsule_value::<LocalInternals>(&capsule, get_local_internals_key())
                .map(|p| p.cast()),
        };
        content
            .map(|p: ptr::NonNull<u8>| Some(p.as_ptr() as usize))
            .map_err(|e: CapsuleError| e.to_string())
    }
}

/// What one checker expects to find when its object is collected.
struct Expected {
    kind: Kind,
    interpreter_id: i64,
    content: usize,
    object: String,
}

impl Expected {
    /// The current state, verified: the internals answer and their capsule holds them.
    fn now(py: Python<'_>, kind: Kind, object: String) -> Result<Expected, GcCheckerError> {
        let what = kind.what();
        let interpreter_id = py.interpreter_id();
        let content = kind
            .content(py)
            .map_err(|source| GcCheckerError::Internals { what, source })?;
        let capsule_problem = |problem: String| GcCheckerError::Capsule {
            what,
            interpreter_id,
            problem,
        };
        match kind.capsule_content(py).map_err(capsule_problem)? {
            Some(held) if held == content => {}
            Some(held) => {
                return Err(capsule_problem(format!(
                    "holds content at {held:#x}, not the {what} in use at {content:#x}"
                )));
            }
            None => return Err(capsule_problem("is not in the state dict".to_owned())),
        }
        Ok(Expected {
            kind,
            interpreter_id,
            content,
            object,
        })
    }

    /// Checks the internals again; `Err` is the report.
    fn check(&self, py: Python<'_>) -> Result<(), String> {
        let what = self.kind.what();
        let object = &self.object;
        let id = py.interpreter_id();
        if id != self.interpreter_id {
            return Err(format!(
                "a '{object}' object watched in interpreter {} was collected in interpreter {id}",
                self.interpreter_id
            ));
        }
        match self.kind.capsule_content(py) {
            Ok(None) => {}
            Ok(Some(held)) if held == self.content => {}
            Ok(Some(held)) => {
                return Err(format!(
                    "when a '{object}' object was collected, the {what} capsule of interpreter \
                     {id} held content at {held:#x}, but the {what} were at {:#x} when the \
                     checker was attached: they were re-created",
                    self.content
                ));
            }
            Err(error) => {
                return Err(format!(
                    "when a '{object}' object was collected, the {what} capsule of interpreter \
                     {id} could not be read: {error}"
                ));
            }
        }
        match self.kind.content(py) {
            Ok(content) if content == self.content => Ok(()),
            Ok(content) => Err(format!(
                "when a '{object}' object was collected, the {what} of interpreter {id} were at \
                 {content:#x}, but at {:#x} when the checker was attached: they were re-created",
                self.content
            )),
            Err(error) => Err(format!(
                "when a '{object}' object was collected, the {what} of interpreter {id} could \
                 not be had any more: {error}"
            )),
        }
    }
}

/// The name of the capsules that carry an [`Expected`] to the callback.
const EXPECTED_CAPSULE: &str = "bindery_gc_support.gc_checker";

/// A `PyMethodDef` that can live in a `static`: CPython only reads it.
struct MethodDef(ffi::PyMethodDef);

// SAFETY: the definition is immutable: CPython never writes to a PyMethodDef, and its
// pointers are to 'static C strings and a function.
unsafe impl Sync for MethodDef {}

/// The callback of every checker of this module binary (METH_O: it gets the weak reference).
static ON_COLLECTED: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"bindery_gc_checker".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: on_collected,
    },
    ml_flags: ffi::METH_O,
    ml_doc: c"Checks that bindery's internals outlived a collected object.".as_ptr(),
});

/// Builds one checker: a function bound to a capsule holding `expected`, as the callback of
/// a new weak reference to `obj` that is kept alive until the callback runs.
fn attach(py: Python<'_>, obj: Borrowed<'_, '_>, expected: Expected) -> Result<(), GcCheckerError> {
    let capsule = new_capsule(py, EXPECTED_CAPSULE, expected, Dtor::Drop).map_err(|e| {
        GcCheckerError::Python {
            context: "creating the checker's capsule",
            error: e.to_string(),
        }
    })?;
    let definition = ptr::from_ref(&ON_COLLECTED.0).cast_mut();
    // SAFETY: attached thread state (token); the definition is static and never written to
    // by CPython; the capsule is live. Returns a new reference or null with an error set.
    let raw = unsafe { ffi::PyCFunction_NewEx(definition, capsule.as_ptr(), ptr::null_mut()) };
    // SAFETY: a new reference or null.
    let callback =
        unsafe { Owned::from_owned_ptr(py, raw) }.ok_or_else(|| GcCheckerError::Python {
            context: "PyCFunction_NewEx for the checker's callback",
            error: take_error_text(py).unwrap_or_default(),
        })?;
    // SAFETY: attached thread state; `obj` and `callback` are live. Returns a new reference
    // (a new weakref object, since it has a callback) or null with an error set.
    let raw = unsafe { ffi::PyWeakref_NewRef(obj.as_ptr(), callback.as_ptr()) };
    // SAFETY: a new reference or null.
    let Some(weakref) = (unsafe { Owned::from_owned_ptr(py, raw) }) else {
        return Err(GcCheckerError::NotWeaklyReferenceable {
            python: obj.type_name(),
            error: take_error_text(py).unwrap_or_default(),
        });
    };
    // Kept alive until the callback gives it back: a weak reference that dies first never
    // calls back, and the collector only calls back through weak references that are not
    // garbage themselves.
    let _kept = weakref.into_ptr();
    Ok(())
}

/// The checkers' callback: `self` is the capsule with what to expect, `weakref` the weak
/// reference whose object was collected.
unsafe extern "C" fn on_collected(
    slf: *mut ffi::PyObject,
    weakref: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: CPython calls functions with an attached thread state.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: `slf` is the capsule this function was bound to; the function object
        // holds it, and the caller holds the function for the call.
        let Some(capsule) = (unsafe { Borrowed::from_ptr(py, slf) }) else {
            return Err("the checker lost its record (no bound capsule)".to_owned());
        };
        let capsule = capsule.to_owned();
        let expected = capsule_value::<Expected>(&capsule, EXPECTED_CAPSULE)
            .map_err(|e| format!("the checker's record cannot be read: {e}"))?;
        // SAFETY: the capsule (held by `capsule`) owns the record and nothing mutates it.
        unsafe { expected.as_ref() }.check(py)
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(report)) => fail(&report),
        Err(_) => fail("the checker panicked while checking the internals"),
    }
    // SAFETY: attached thread state. `weakref` is the weak reference `attach` kept alive for
    // this moment (its callback is this function, called once): give that reference back.
    // The caller does not touch it after the call returns.
    unsafe { ffi::Py_DECREF(weakref) };
    // SAFETY: attached thread state; a new reference to None.
    unsafe { ffi::compat::Py_NewRef(ffi::Py_None()) }
}

/// Reports a failed check and ends the process.
fn fail(report: &str) -> ! {
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "bindery gc checker: {report}");
    let _ = stderr.flush();
    std::process::exit(GC_CHECKER_EXIT_CODE)
}
