//! bindery: write CPython extension modules in Rust on `pyo3-ffi`, with one type registry
//! ("internals") per interpreter that is created once, shared by every compatible module and
//! never freed while a garbage-collector callback may still need it.
//!
//! ```text
//! bindery::capsule     typed capsules in the interpreter state dict (Dtor: Drop, Leak, Custom)
//! bindery::internals   get_internals / get_local_internals, per interpreter, leaked at exit
//! bindery::Python      the token proving an attached thread state
//! ```
//!
//! # Example
//!
//! The exec slot of a PEP 489 module prepares internals for the interpreter importing it
//! (main or subinterpreter) and counts the registered types:
//!
//! ```no_run
//! use bindery::{Python, internals};
//! use std::ffi::c_int;
//!
//! unsafe extern "C" fn exec(_module: *mut pyo3_ffi::PyObject) -> c_int {
//!     // SAFETY: CPython calls exec slots with an attached thread state.
//!     let py = unsafe { Python::assume_attached() };
//!     match internals::on_module_exec(py).and_then(|()| internals::get_internals(py)) {
//!         Ok(shared) => {
//!             let _types = shared.types().len();
//!             0
//!         }
//!         Err(_error) => -1, // real code raises ImportError with the error's message
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! # The crates
//!
//! This facade re-exports the crates of the workspace; pick one of them alone when you only
//! need its part:
//!
//! | crate | what for |
//! |---|---|
//! | [`capsule`] (`bindery-capsule`) | typed capsules in the interpreter state dict, with a destructor policy |
//! | [`internals`] (`bindery-internals`) | one type registry per interpreter, shared by compatible modules, leaked at exit, guarded against re-creation |
//! | `bindery-testkit` | run Python scripts and staged extension modules in fresh interpreters from `cargo test` (a dev-dependency; any binding library) |
//!
//! Modules, functions and classes arrive with the facade; until then this crate re-exports.
//!
//! # Supported versions
//!
//! CPython 3.9 to 3.13, main interpreter and subinterpreters (own GIL on 3.12+).

#![forbid(unsafe_code)]

pub use bindery_capsule as capsule;
pub use bindery_capsule::{Dtor, Python};
pub use bindery_internals as internals;
