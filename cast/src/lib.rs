//! Rust <-> Python conversion for bindery: strict, fast casts of builtins and containers,
//! and of registered Rust classes shared across extension modules through the internals.
//!
//! (Crate docs: see the end of this work item.)

#![deny(missing_docs)]

mod class;
mod compat;
mod error;
mod lookup;
mod map;
mod number;
mod seq;
mod text;
mod traits;

pub use class::{
    ClassObject, Ref, RefMut, RegisterError, RegisteredClass, Visibility, new_instance,
    register_class, tp_dealloc, try_borrow_in_gc,
};
pub use error::{CastError, ExceptionKind, PythonException, rust_name};
pub use traits::{FromPython, IntoPython, cast, to_python};
