//! Typed CPython capsules that own a Rust value, found or created exactly once per
//! interpreter in the interpreter's state dict, with a destructor policy chosen by type.
//!
//! ```text
//! Python<'py>                      proof of an attached thread state (no PyGILState_*)
//! Owned<'py> / Borrowed<'a, 'py>   strong reference / borrowed reference (no refcount change)
//! Handle                           storable strong reference: Send + Sync, no lifetime
//! Dtor::{Drop, Leak, Custom(f)}    what happens to the value when the capsule dies
//! new_capsule(py, name, v, dtor)   -> Owned capsule         capsule_value::<T>(&obj, name) -> NonNull<T>
//! atomic_get_or_create_in_state_dict::<T>(py, key, make, dtor) -> (NonNull<T>, created)
//! get_capsule_from_state_dict(py, key) -> Option<Owned>     (lifetime checks)
//! SavedError / take_error_text     keep or read the pending Python error
//! ```
//!
//! # Example
//!
//! A counter shared by every extension module that uses the same key, one per interpreter
//! (main and each subinterpreter), created by whichever module is imported first:
//!
//! ```no_run
//! use bindery_capsule::{atomic_get_or_create_in_state_dict, Dtor, Python};
//! use pyo3_ffi as ffi;
//! use std::ffi::{c_int, CString};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! /// Shared state. The key names it, its version and whatever decides its layout.
//! pub struct Counter {
//!     imports: AtomicU64,
//! }
//! const KEY: &str = "my_project.Counter.v1";
//!
//! /// A PEP 489 `Py_mod_exec` slot.
//! pub unsafe extern "C" fn exec_module(_module: *mut ffi::PyObject) -> c_int {
//!     // SAFETY: CPython calls exec slots with an attached thread state.
//!     let py = unsafe { Python::assume_attached() };
//!     // Nothing below panics; real code wraps the body in catch_unwind.
//!     let make = || Counter { imports: AtomicU64::new(0) };
//!     match atomic_get_or_create_in_state_dict(py, KEY, make, Dtor::Drop) {
//!         Ok((counter, _created)) => {
//!             // SAFETY: the capsule stays in the state dict until the interpreter
//!             // finalizes, and Counter is only touched through atomics.
//!             unsafe { counter.as_ref() }.imports.fetch_add(1, Ordering::Relaxed);
//!             0
//!         }
//!         Err(error) => {
//!             let message = CString::new(error.to_string()).unwrap_or_default();
//!             // SAFETY: attached thread state; both pointers are valid C strings/objects.
//!             unsafe { ffi::PyErr_SetString(ffi::PyExc_RuntimeError, message.as_ptr()) };
//!             -1
//!         }
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! # Recipes
//!
//! **Sharing state between two separately built modules.** Both call
//! [`atomic_get_or_create_in_state_dict`] with the same key and the same `T`. The first
//! creates, the others get the same pointer with `created == false`. Bindery checks the
//! recorded type name, size and alignment, but cannot see inside `T`: put into the key
//! everything that decides `T`'s layout (a version you bump, the compiler version, ...).
//!
//! **Choosing a [`Dtor`].**
//! - [`Dtor::Leak`] for things garbage-collector callbacks (`tp_traverse`, `tp_clear`,
//!   finalizers) may still read at shutdown, after the interpreter cleared its state dict:
//!   type registries, interned data. The value is never freed; readers never touch freed
//!   memory.
//! - [`Dtor::Drop`] for ordinary state: freed when the interpreter (or subinterpreter) is
//!   torn down, exactly once.
//! - [`Dtor::Custom`] for foreign resources that need a specific release call (a C
//!   library handle, a pool): the function gets the `Box<T>` exactly once.
//!
//! **Storing Python objects in Rust values.** [`Owned`] and [`Borrowed`] carry the token's
//! `'py` lifetime and cannot be stored; [`Handle`] can (`Send + Sync`, no lifetime):
//! `Handle::new(owned)` to keep it, `handle.bind(py)` to use it. Drop it while attached to
//! its interpreter; elsewhere the reference is leaked with a warning, never released unsafely.
//!
//! **Lifetime checks.** [`get_capsule_from_state_dict`] returns the capsule object itself;
//! holding it pins a `Drop` value, and comparing pointers tells whether the capsule under
//! the key is still the one you saw.
//!
//! # Invariants
//!
//! - Per interpreter and key, at most one capsule wins; a caller that loses a race (another
//!   thread, or `make` re-entering) disposes of its own value at once, even under `Leak`,
//!   and gets the winner. No leak, no double free.
//! - An object under the key that is not a bindery capsule of `T` (another type, a foreign
//!   capsule, a capsule of another value type) is an error that names the key and both
//!   types, and is left untouched. Foreign memory is never reinterpreted: the capsule's
//!   name and context marker are checked before its pointer is read.
//! - A Python error pending on entry is pending, unchanged, on return.
//! - Each interpreter has its own state dict, hence its own capsule: subinterpreters (shared
//!   or own GIL) never see the main interpreter's value.
//! - The value is boxed separately from the capsule: its address never moves.
//!
//! # Safety
//!
//! Python is touched only through a [`Python`] token, which proves an attached thread state
//! for its lifetime; it is made unsafely at the FFI boundary ([`Python::assume_attached`])
//! or checked ([`Python::with_attached`]). The crate never uses `PyGILState_*`, which
//! picks the main interpreter and deadlocks in subinterpreters; it works with the current
//! thread state. Capsule destructors catch panics (a panicking `Drop`) and abort with a
//! message naming the key and `T`, since unwinding into C is undefined behaviour. The
//! returned `NonNull<T>` is yours to use correctly: valid while the capsule lives (`Drop`,
//! `Custom`) or for the process (`Leak`), and reachable from every thread of the
//! interpreter, so share only `Sync` data through it or guard it.
//!
//! # Supported versions
//!
//! CPython 3.9 to 3.13 (GIL builds), through pyo3-ffi 0.30. Own-GIL subinterpreters need
//! 3.12+. The interpreter is chosen at build time (`PYO3_PYTHON`).

#![deny(missing_docs)]

mod capsule;
mod compat;
mod error;
mod layout;
mod python;
mod state_dict;

pub use capsule::{Dtor, capsule_value, new_capsule};
pub use error::CapsuleError;
pub use python::{Borrowed, Handle, Owned, Python, SavedError, take_error_text};
pub use state_dict::{atomic_get_or_create_in_state_dict, get_capsule_from_state_dict};
