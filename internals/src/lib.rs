//! One type registry per interpreter, shared by every compatible extension module, created
//! exactly once, never freed at exit, and refused loudly if anything tries to re-create it.
//!
//! ```text
//! on_module_exec(py)       -> Result<(), InternalsError>   first thing in every Py_mod_exec slot
//! get_internals(py)        -> Result<&Internals, InternalsError>       shared by key
//! get_local_internals(py)  -> Result<&LocalInternals, InternalsError>  this module only
//! internals.types()        -> &TypeRegistry   register / by_key / by_type
//! internals_id()           -> "__bindery_internals_v1_rustc-…_x86_64-…_64bit_gil__"
//! get_internals_capsule(py), get_local_internals_capsule(py)  -> the capsule objects
//! get_internals_if_created(py)                 -> Option: never creates (GC callbacks)
//! set_recreation_policy(RecreationPolicy::ReturnError)         opt out of the fatal error
//! ```
//!
//! # Example
//!
//! A module's `Py_mod_exec` slot registers its type in the shared registry; any module built
//! from the same sources with the same compiler finds it there by its stable type key.
//!
//! ```no_run
//! use bindery_capsule::Python;
//! use bindery_internals::{TypeInfo, get_internals, on_module_exec};
//! use pyo3_ffi::{PyObject, PyTypeObject};
//! use std::ffi::c_int;
//!
//! struct Point { x: f64, y: f64 }
//!
//! unsafe fn drop_point(p: *mut u8) {
//!     // SAFETY: the registry only calls this on a valid, initialised Point.
//!     unsafe { std::ptr::drop_in_place(p.cast::<Point>()) }
//! }
//!
//! unsafe extern "C" fn exec(module: *mut PyObject) -> c_int {
//!     // SAFETY: CPython calls exec slots with an attached thread state.
//!     let py = unsafe { Python::assume_attached() };
//!     let point_type: *mut PyTypeObject = std::ptr::null_mut(); // made with PyType_FromModuleAndSpec
//!     let registered = on_module_exec(py).and_then(|()| get_internals(py)).and_then(|internals| {
//!         internals.types().register(py, TypeInfo {
//!             type_key: "geometry 0.1::Point".into(),
//!             rust_name: std::any::type_name::<Point>(),
//!             type_object: point_type,
//!             size: size_of::<Point>(),
//!             align: align_of::<Point>(),
//!             drop_in_place: drop_point,
//!             module: "geometry".into(),
//!         })
//!     });
//!     match registered {
//!         Ok(_) => 0,
//!         Err(error) => { /* raise ImportError with error.to_string() */ -1 }
//!     }
//! }
//! ```
//!
//! # The life of internals
//!
//! 1. A module is imported in some interpreter, the main one or a subinterpreter. Its exec
//!    slot calls [`on_module_exec`]: the one place that checks which interpreter runs the
//!    module. The first time it is not the main interpreter, this module binary leaves the
//!    one-load fast path for good.
//! 2. **Fast path** ([`get_internals`]). While the module has only run in the main
//!    interpreter: one atomic load of a per-module pointer. After a subinterpreter appeared:
//!    one `PyInterpreterState_Get` call, then the main interpreter's pointer or a
//!    thread-local (interpreter, generation, pointer) cache. No lock, no dict lookup, never
//!    `PyGILState_*` (those deadlock in subinterpreters). The generation is bumped by a small
//!    sentinel capsule each subinterpreter's state dict holds, when the interpreter clears
//!    that dict at exit, before its `PyInterpreterState` can be freed and its address
//!    reused: a cache never outlives the interpreter it names. The sentinel also marks the
//!    interpreter as finalizing, so casts in its last garbage collection reach the recorded
//!    content directly: no dict lookup, no allocation.
//! 3. **Slow path.** The capsule is looked up in `PyInterpreterState_GetDict()` under
//!    [`internals_id()`]. If absent, content is built with no Rust lock held and installed
//!    with `PyDict_SetDefault`; the loser of a race drops its own copy
//!    ([`bindery_capsule::atomic_get_or_create_in_state_dict`]).
//! 4. **Leaked at exit.** The capsule's destructor policy is [`Dtor::Leak`]: when the
//!    interpreter clears its state dict at shutdown, the content is not freed, so
//!    `tp_traverse`/`tp_clear`/`__del__` that cast during the interpreter's last garbage
//!    collection still find every registered type. Each module also keeps a record, keyed
//!    by interpreter ID (pointers are reused, IDs are not), of the content every interpreter
//!    got: after the state dict was cleared (or replaced by a new, empty one, which
//!    `PyInterpreterState_GetDict` hands out after a clear), the recorded content is handed
//!    out again, never a fresh empty registry.
//! 5. **Re-creation guard.** If content would nevertheless be created a second time for an
//!    interpreter that had it and released it, that is a bug somewhere: by default a
//!    `Py_FatalError` whose message names bindery, the interpreter, the likely cause and the
//!    way out; with [`RecreationPolicy::ReturnError`], [`InternalsError::Recreated`].
//!
//! # The key
//!
//! [`internals_id()`] names the internals version ([`INTERNALS_VERSION`]), the rustc version,
//! the target triple, the pointer width and free-threaded or not: everything that must match
//! for two modules to read the same Rust structures. Modules with different keys never share
//! and never crash each other. Any change to the layout of internals or to their lifetime
//! policy bumps [`INTERNALS_VERSION`]; a patch release never does.
//! [`get_local_internals_key()`] is unique to one module binary.
//!
//! # What stays allocated per interpreter
//!
//! Deliberately leaked, per interpreter that used bindery (x86_64 Linux, measured by
//! `py_internals.rs`): the shared content, 176 bytes empty ([`Registries::allocated_bytes`]),
//! and each module's local content, another 176 bytes, plus about 100 bytes per registered
//! type with its table slots; per module binary, one record entry (about 32 bytes) and, for a
//! subinterpreter, one "dict cleared" mark (about 16 bytes). The capsule
//! objects, their headers and each module's sentinel capsule are freed with the state dict:
//! only the content itself is leaked. Measured against CPython itself in the same process over 100
//! subinterpreters, two bindery modules add no resident memory beyond the noise (under
//! 5 KiB per interpreter, 3.9-3.13), while CPython keeps about 5 KiB (3.9-3.11), 90-170 KiB
//! (3.12-3.13, shared GIL) or 1.7 MiB (3.12-3.13, own GIL) per destroyed subinterpreter.
//!
//! # Speed
//!
//! `cargo bench -p bindery-internals --features test-hooks --bench get_internals`; figures
//! in the repository's `BENCHMARKS.md`: 2 ns on the main-interpreter fast path, 4 ns in the
//! main interpreter after subinterpreters appeared, 5 ns in a subinterpreter (of which 3 ns
//! is the `PyInterpreterState_Get` call that tells interpreters apart), 250-600 ns on the
//! slow path.
//!
//! # Invariants
//!
//! - Content is created at most once per interpreter and key, and never silently re-created.
//! - Every pointer handed out stays valid until the process exits.
//! - No Rust lock is held across a Python call; the registry locks only guard single
//!   inserts and lookups.
//! - Python is touched only with a [`Python`] token (an attached thread state).
//! - A module's exec slot calls [`on_module_exec`] before anything else asks for internals
//!   in that interpreter (debug builds assert it on the fast path): otherwise a
//!   subinterpreter could be handed the main interpreter's registry.
//! - Two modules share content exactly when their [`internals_id()`] is equal. Modules that
//!   share must use the same global allocator (Rust's default, the system allocator): the
//!   shared tables grow in whichever module registers.
//!
//! # Supported versions
//!
//! CPython 3.9 to 3.13, main interpreter and subinterpreters (shared GIL on all of them, own
//! GIL on 3.12+). Re-initialising the runtime in one process (`Py_FinalizeEx` then
//! `Py_Initialize`) is not supported: the new main interpreter gets ID 0 again and would be
//! taken for the old one.
//!
//! [`Dtor::Leak`]: bindery_capsule::Dtor::Leak
//! [`Python`]: bindery_capsule::Python

mod compat;
mod content;
mod error;
mod fatal;
mod key;
mod lock;
mod manager;
mod policy;
mod registry;
#[cfg(feature = "test-hooks")]
pub mod testing;

pub use content::{Internals, LocalInternals, Registries};
pub use error::InternalsError;
pub use key::{INTERNALS_VERSION, get_local_internals_key, internals_id};
pub use manager::{
    RecreationPolicy, get_internals, get_internals_capsule, get_internals_if_created,
    get_local_internals, get_local_internals_capsule, get_local_internals_if_created,
    interpreters_seen, on_module_exec, recreation_policy, set_recreation_policy,
};
pub use registry::{ExceptionTranslator, Translators, TypeInfo, TypeRegistry};
