//! Shared code of the example extension modules `bindery_example_capsule_a` and
//! `bindery_example_capsule_b`: two separately built cdylibs that find the same capsule in
//! the interpreter state dict through `bindery-capsule`.
//!
//! Each module is a PEP 489 multi-phase module on raw pyo3-ffi: its own crate holds only
//! its `PyModuleDef`, `PyInit_` function and exec slot; everything else is here and is
//! compiled into each cdylib separately (so the two modules share no Rust statics: only
//! the interpreter state dict connects them).
//!
//! Python API of both modules (`key`, `policy`, `tag` are `str`):
//!
//! | function | returns |
//! |---|---|
//! | `get_or_create(key, policy, tag)` | `(address, created)` of the [`Probe`] under `key`; `policy` in `"drop"`, `"leak"`, `"custom"` |
//! | `get_or_create_with(key, policy, tag, callback)` | same; `callback()` runs inside `make`, so it can race on `key` |
//! | `get_or_create_other(key)` | same with the value type [`Other`] |
//! | `read(key)` | the probe's tag, or `None` if absent |
//! | `capsule(key)` | the capsule object, or `None` |
//! | `state_dict()` | the interpreter state dict |
//! | `interpreter_id()` | the current interpreter's ID |
//!
//! A [`Probe`] writes `bindery-probe: drop <tag>` to stderr when dropped; the custom
//! policy writes `bindery-probe: custom <tag>` instead. Errors: `TypeError` when the key
//! holds something else, `ValueError` for a bad key or policy, `RuntimeError` otherwise,
//! each with `CapsuleError`'s message.

#![deny(missing_docs)]

mod compat;
mod functions;
mod module;
mod probe;

pub use compat::{ExecFn, MODULE_SLOTS, module_slots};
pub use module::{exec_module, module_def};
pub use probe::{Other, Probe, custom_dispose};
