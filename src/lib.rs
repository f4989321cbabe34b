//! bindery: write CPython extension modules in Rust on `pyo3-ffi`, with one type registry
//! ("internals") per interpreter that is created once, shared by every compatible module and
//! never freed while a garbage-collector callback may still need it.
//!
//! This facade re-exports the crates of the workspace; pick one of them alone when you only
//! need its part:
//!
//! | crate | what for |
//! |---|---|
//! | [`capsule`] (`bindery-capsule`) | typed capsules in the interpreter state dict, with a destructor policy |
//! | `bindery-testkit` | run Python scripts and staged extension modules in fresh interpreters from `cargo test` |
//!
//! Modules, functions and classes arrive with the facade issue; until then this crate only
//! re-exports.

#![forbid(unsafe_code)]

pub use bindery_capsule as capsule;
pub use bindery_capsule::{Dtor, Python};
