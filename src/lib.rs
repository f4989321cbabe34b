//! bindery: write CPython extension modules in Rust on `pyo3-ffi`, with one type registry
//! ("internals") per interpreter that is created once, shared by every compatible module and
//! never freed while a garbage-collector callback may still need it.
//!
//! ```text
//! bindery::module!(name, build)              PyInit_<name>: PEP 489, per-interpreter module
//! fn build(m: &mut ModuleBuilder)            m.function(..), m.exception(..), m.on_exec(..)
//! Function::new("add", add).arg("a").arg_default("b", 0).doc("...")
//!     parameters: owned values (i64, String, Vec<T>, T: RegisteredClass + Clone, ...)
//!     or InstanceRef<T> / InstanceMut<T>   the caller's instance, borrowed (&T / &mut T)
//! Class::<T>::new("Point")                   a Rust type as a Python class, value stored inline
//!     .constructor(f, |f| f.arg(..)) / .default_constructor()
//!     .method("norm", |p: &T, ..| ..) / .static_method(Function) / .property / .getter
//!     .repr / .eq / .hash / .len / .getitem / .module_local() / .final_class()
//!     .gc() / .gc_through_cast() / .clear_method(..)    T: Traverse + Clear (bindery::gc)
//! Error / ExceptionClass                     Result<T, E: Into<Error>> raises
//! bindery::capsule, bindery::internals, bindery::cast    the crates, re-exported
//! ```
//!
//! # Example
//!
//! A complete extension module: two functions with typed parameters, keyword arguments and
//! a default, a docstring and signature for `help()`, an error that becomes a `ValueError`.
//!
//! ```no_run
//! use bindery::{Error, Function, ModuleBuilder};
//!
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! fn mean(xs: Vec<f64>) -> Result<f64, Error> {
//!     if xs.is_empty() {
//!         return Err(Error::value_error("mean() of an empty list"));
//!     }
//!     Ok(xs.iter().sum::<f64>() / xs.len() as f64)
//! }
//!
//! fn build(m: &mut ModuleBuilder) {
//!     m.doc("Arithmetic in Rust.");
//!     m.function(Function::new("add", add).arg("a").arg_default("b", 1).doc("Return a + b."));
//!     m.function(Function::new("mean", mean).arg("xs").doc("The mean of a list of floats."));
//! }
//!
//! bindery::module!(arith, build);
//! # fn main() {}
//! ```
//!
//! ```python
//! >>> import arith
//! >>> arith.add(2), arith.add(2, b=5)
//! (3, 7)
//! >>> import inspect; str(inspect.signature(arith.add))
//! '(a, b=1)'
//! ```
//!
//! # Rules
//!
//! - Every function call is `METH_FASTCALL | METH_KEYWORDS` (methods without parameters are
//!   `METH_NOARGS`). A call that passes every parameter positionally casts the arguments in
//!   place: no allocation, no lock, no dict lookup.
//! - Wrong argument count, unknown or repeated keyword, missing argument, wrong type: a
//!   `TypeError` (or the conversion's own class: `OverflowError`, `ValueError`) naming the
//!   function and the parameter.
//! - A panic never crosses into C: it becomes `PanicException`, which derives from
//!   `BaseException`, so `except Exception:` does not swallow a bug by accident (PyO3 made
//!   the same choice). Every bindery module exposes the class as `PanicException`.
//! - Classes are heap types made in every interpreter that imports the module, registered
//!   in the internals (shared by default, module-local on request) so other modules cast
//!   their instances; methods borrow `&T`/`&mut T` under a runtime borrow flag (a conflicting
//!   borrow is a `RuntimeError`, never aliasing); Python subclasses and weak references work.
//!   A type that owns Python objects implements `bindery::gc::{Traverse, Clear}` and calls
//!   `.gc()`: its cycles are collected, at shutdown too.
//! - Module state is per interpreter (PEP 489 multi-phase init, PEP 630): functions,
//!   exception classes and internals are made anew in each interpreter that imports the
//!   module; subinterpreters with their own GIL are declared supported on 3.12+.
//!
//! # The crates
//!
//! | crate | what for |
//! |---|---|
//! | [`capsule`] (`bindery-capsule`) | typed capsules in the interpreter state dict, with a destructor policy |
//! | [`internals`] (`bindery-internals`) | one type registry per interpreter, shared by compatible modules, leaked at exit, guarded against re-creation |
//! | [`cast`] (`bindery-cast`) | Rust <-> Python conversion, registered classes |
//! | [`gc`] (`bindery-gc-support`) | `tp_traverse`/`tp_clear` for types that own Python objects, GC checkers |
//! | `bindery-testkit` | run Python scripts and staged extension modules in fresh interpreters from `cargo test` (a dev-dependency; any binding library) |
//!
//! # Supported versions
//!
//! CPython 3.9 to 3.13, main interpreter and subinterpreters (own GIL on 3.12+).

mod args;
mod class;
mod compat;
mod error;
mod function;
mod method;
mod module;
mod panic;

pub use bindery_capsule as capsule;
pub use bindery_capsule::{Dtor, Python};
pub use bindery_cast as cast;
pub use bindery_cast::{InstanceMut, InstanceRef, RegisteredClass, Visibility};
pub use bindery_gc_support as gc;
pub use bindery_internals as internals;
pub use class::{Class, IntoConstructed};
pub use error::{CustomClass, Error, ExceptionClass};
pub use function::{Fallible, Function, IntoFunction, IntoReturn, Plain};
pub use method::{Exclusive, IntoMethod, Shared};
pub use module::{ExecHook, ModuleBuilder, ModuleCell, ModuleRef};
/// The raw C API, as bindery uses it.
pub use pyo3_ffi as ffi;

/// Locks a mutex, recovering from poisoning (every critical section here is a single take).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Defines the entry point `PyInit_<name>` of an extension module built by `build`.
///
/// `bindery::module!(arith, build);` expands to
///
/// ```text
/// #[unsafe(export_name = "PyInit_arith")]
/// pub unsafe extern "C" fn __bindery_pyinit() -> *mut bindery::ffi::PyObject {
///     static MODULE: bindery::ModuleCell = bindery::ModuleCell::new();
///     unsafe { MODULE.init("arith", build) }
/// }
/// ```
///
/// The name must be the cdylib's file name without `lib` and the extension (maturin and
/// bindery-testkit name the file `<name><EXT_SUFFIX>`).
#[macro_export]
macro_rules! module {
    ($name:ident, $build:path) => {
        #[unsafe(export_name = concat!("PyInit_", stringify!($name)))]
        #[doc(hidden)]
        pub unsafe extern "C" fn __bindery_pyinit() -> *mut $crate::ffi::PyObject {
            static MODULE: $crate::ModuleCell = $crate::ModuleCell::new();
            // SAFETY: CPython calls PyInit_<name> from its import machinery with an attached
            // thread state, which is what `init` requires.
            unsafe { MODULE.init(stringify!($name), $build) }
        }
    };
}
