//! Rust <-> Python conversion: one trait each way, strict about what it accepts, fast on
//! exact builtin types, and able to cast registered Rust classes across separately built
//! extension modules through bindery's internals.
//!
//! ```text
//! cast::<T>(obj: Borrowed<'a, 'py>) -> Result<T, CastError>       Python -> Rust (FromPython)
//! to_python(py, value) -> Result<Owned<'py>, CastError>           Rust -> Python (IntoPython)
//! CastError: kind() -> ExceptionKind, restore(py), into_python_exception(py)
//!
//! RegisteredClass { const TYPE_KEY }    a Rust type bound to a Python class
//! ClassObject<T>                        the instance layout (basicsize = ClassObject::<T>::BASIC_SIZE)
//! register_class::<T>(py, type, module, Visibility::{Shared, Local})   in the exec slot
//! cast::<Ref<T>>(obj) / cast::<RefMut<T>>(obj) / cast::<T>(obj)       &T, &mut T, clone
//! InstanceRef<T> / InstanceMut<T>       &T, &mut T owning a reference: function parameters
//! to_python(py, value_of_T)             a new instance of T's registered class
//! try_borrow_in_gc::<T>(obj)            for tp_traverse / tp_clear: no allocation, no Python
//! tp_dealloc::<T>                       the tp_dealloc slot of a registered class
//! ```
//!
//! # Example
//!
//! A `METH_FASTCALL` function `scaled(values, factor)` that takes a list of floats and a
//! float, and returns a new list; a wrong argument becomes the right Python exception:
//!
//! ```no_run
//! use bindery_capsule::{Borrowed, Python};
//! use bindery_cast::{CastError, cast, to_python};
//! use pyo3_ffi as ffi;
//!
//! fn scaled<'py>(args: &[Borrowed<'_, 'py>]) -> Result<*mut ffi::PyObject, CastError> {
//!     let values: Vec<f64> = cast(args[0])?;   // a list of floats, read in place
//!     let factor: f64 = cast(args[1])?;        // a float, an int, or __float__/__index__
//!     let result: Vec<f64> = values.iter().map(|v| v * factor).collect();
//!     Ok(to_python(args[0].py(), result)?.into_ptr())
//! }
//!
//! unsafe extern "C" fn scaled_entry(
//!     _module: *mut ffi::PyObject,
//!     args: *mut *mut ffi::PyObject,
//!     nargs: ffi::Py_ssize_t,
//! ) -> *mut ffi::PyObject {
//!     // SAFETY: CPython calls METH_FASTCALL functions with an attached thread state.
//!     let py = unsafe { Python::assume_attached() };
//!     // SAFETY: CPython passes `nargs` live arguments for the duration of the call.
//!     let args: Vec<Borrowed<'_, '_>> = (0..nargs as usize)
//!         .filter_map(|i| unsafe { Borrowed::from_ptr(py, *args.add(i)) })
//!         .collect();
//!     if args.len() != 2 {
//!         let error = CastError::Length { expected: 2, got: args.len(), rust: "(Vec<f64>, f64)".into() };
//!         error.restore(py);
//!         return std::ptr::null_mut();
//!     }
//!     // Real code also catches panics here: they must not unwind into C.
//!     scaled(&args).unwrap_or_else(|error| {
//!         error.restore(py); // TypeError, OverflowError, ...: see the table below
//!         std::ptr::null_mut()
//!     })
//! }
//! # fn main() {}
//! ```
//!
//! `scaled([1, 2.5], "x")` raises `TypeError: cannot convert Python 'str' to Rust 'f64'`;
//! `scaled([1, "a"], 2)` raises `TypeError: item 1 of Python 'list' for Rust 'Vec<f64>':
//! cannot convert Python 'str' to Rust 'f64'`.
//!
//! # Reference: Rust type <-> Python type
//!
//! | Rust | from Python (accepts) | to Python |
//! |---|---|---|
//! | `bool` | `True`, `False` only (not truthiness) | `bool` |
//! | `i8` ... `i128`, `u8` ... `u128`, `isize`, `usize` | `int` (subclasses, `bool`), objects with `__index__` | `int` |
//! | `f64`, `f32` | `float`, `int`, objects with `__float__` / `__index__` | `float` |
//! | `String`, `&str` (borrowed, no copy) | `str` (subclasses) | `str` |
//! | `char` | `str` of length 1 | `str` |
//! | `Vec<u8>` | `bytes`, `bytearray`, or a sequence of ints | `bytes` |
//! | `&[u8]` (borrowed, no copy) | `bytes` only | `bytes` |
//! | `PathBuf` (and `&Path` to Python) | `str`, `bytes`, `os.PathLike` (as `os.fsencode`) | `str` (as `os.fsdecode`) |
//! | `Option<T>` | `None` or what `T` accepts | `None` or `T`'s |
//! | `()` | `None` | `None` |
//! | `Vec<T>`, `SmallVec<[T; N]>` | `list`, `tuple`, other sequences; never `str` | `list` |
//! | `[T; N]` | a sequence of exactly `N` items | `list` |
//! | tuples of 1 to 12 | `tuple` or `list` of exactly that length | `tuple` |
//! | `HashMap<K, V>`, `BTreeMap<K, V>` | `dict` (subclasses) | `dict` |
//! | `HashSet<T>`, `BTreeSet<T>` | `set`, `frozenset` | `set` |
//! | `Owned<'py>`, `Borrowed<'a, 'py>` | any object | the object |
//! | `Handle` (storable, no lifetime) | any object | the object |
//! | `T: RegisteredClass` | an instance of `T`'s class or a subclass, cloned (`T: Clone`) | a new instance |
//! | `Ref<'a, T>`, `RefMut<'a, T>` | an instance of `T`'s class or a subclass, borrowed | — |
//! | `InstanceRef<T>`, `InstanceMut<T>` (no lifetime) | the same, borrowed, holding a reference to the instance | — |
//!
//! Only the object itself can be borrowed (`&str`, `&[u8]`, `Ref`): containers hold element
//! types that own their data, since a list's or dict's items may be replaced, and freed,
//! while the Rust value lives.
//!
//! # Errors and their Python classes
//!
//! | [`CastError`] | class | example message |
//! |---|---|---|
//! | `WrongType` | `TypeError` | `cannot convert Python 'str' to Rust 'i64'` |
//! | `Overflow` | `OverflowError` | `Python int 300 does not fit in Rust 'u8' (range 0..=255)` |
//! | `Length` | `ValueError` | `expected a sequence of length 3 for Rust '[f64; 3]', got 5` |
//! | `CharLength` | `ValueError` | `expected a str of length 1 for Rust 'char', got a str of length 2` |
//! | `DictKey` | `TypeError` | `dict keys must be 'str' for Rust 'HashMap<String, i64>', got 'int'` |
//! | `Unicode` | `UnicodeError` | `cannot convert Python 'str' to Rust 'String': it holds the lone surrogate U+D800 at index 3, ...` |
//! | `Item` | the element's | `item 1 of Python 'list' for Rust 'Vec<f64>': cannot convert ...` |
//! | `Mutated` | `RuntimeError` | `Python 'list' changed size while it was converted to Rust 'Vec<i64>'` |
//! | `Unregistered`, `UnregisteredValue` | `TypeError` | `... the Rust type is not registered in this interpreter; register it with bindery_cast::register_class ...` |
//! | `LayoutMismatch`, `Uninitialized` | `TypeError` | the key, the module and both layouts / how to construct |
//! | `AlreadyBorrowed` | `RuntimeError` | `cannot borrow Python 'Counter' as Rust '&mut my::Counter': it is already borrowed ...` |
//! | `Internals` | `RuntimeError` | what `bindery_internals` reported |
//! | `Python` | the raised one, unchanged | an `__index__` that raised `KeyError` stays a `KeyError` |
//!
//! # Fast paths
//!
//! - Exact `float`: the value is read from the object (`ob_fval`), no call. Exact `int`
//!   of one digit (|value| < 2**30): read from the object too (the private `compat` module
//!   knows the layout of 3.9-3.11 and of 3.12+); larger ints and exact `str`: one C call
//!   that runs no Python code. `bool`: a pointer comparison.
//! - `list` and `tuple` to `Vec`/`SmallVec`/arrays: items are read in place, borrowed, with
//!   no reference count change for items on an exact fast path; capacity is reserved up
//!   front. An item that needs the general path (an `__index__`, a subclass) is held by a
//!   strong reference while it converts, and the list's size is checked afterwards.
//! - `dict`: `PyDict_Next` with borrowed keys and values, the same exact/general split.
//! - Registered classes: a per-thread cache in front of the two registries, exact (keyed by
//!   the interpreter's internals and a registration epoch, never stale).
//!
//! Figures, measured against a hand-written loop calling `PyFloat_AsDouble` per item, are in
//! the workspace's `BENCHMARKS.md`.
//!
//! # Recipes
//!
//! **A registered class.** Give the Rust type a stable key, make a heap type whose
//! `basicsize` is [`ClassObject::BASIC_SIZE`] with [`tp_dealloc::<T>`](tp_dealloc) as its
//! `tp_dealloc` and a `tp_new` that stores the value with [`ClassObject::init`], then
//! register it in the module's exec slot after `bindery_internals::on_module_exec`:
//!
//! ```text
//! impl RegisteredClass for Point { const TYPE_KEY: &'static str = "geometry 0.1.0::Point"; }
//! let ty = PyType_FromModuleAndSpec(module, &spec, NULL);      // basicsize: ClassObject::<Point>::BASIC_SIZE
//! unsafe { register_class::<Point>(py, ty, "geometry", Visibility::Shared) }?;
//! ```
//!
//! Any module with the same internals key then casts `Point` instances (and instances of
//! Python subclasses) with `cast::<Ref<Point>>`, `cast::<RefMut<Point>>` or
//! `cast::<Point>`, and makes new ones with `to_python(py, point)`.
//! `examples/cast-common` in the workspace is a complete module pair on the raw C API.
//!
//! **Module-local classes.** [`Visibility::Local`] keeps a class to the registering module:
//! it is found before a shared registration of the same key, and other modules refuse its
//! instances.
//!
//! **Garbage-collector callbacks.** `tp_traverse` reads the value with
//! [`ClassObject::gc_get`] (the object is known to be of the class) or
//! [`try_borrow_in_gc`] (any object): both return `None` for an instance that has no value
//! yet, was already emptied, or is mutably borrowed by running code; neither allocates or
//! calls Python.
//!
//! # Invariants
//!
//! - No silent truncation: integers out of range, floats beyond `f32`, strings with lone
//!   surrogates, sequences of the wrong length are refused, never clipped or replaced.
//! - A registered instance is read only when its type's nearest registered base was
//!   registered for the same type key with the same value size and alignment, and only
//!   while its value is initialised: half-built and dropped values are never read.
//! - Borrows are checked at run time: a conflicting `&`/`&mut` is a `RuntimeError`, never an
//!   alias. A value is not dropped while it is borrowed.
//! - A Python error pending before a conversion is never consumed by it; a failed
//!   conversion leaves none pending (it is in the returned [`CastError`]).
//!
//! # Safety
//!
//! Every function that touches Python takes a [`Python`](bindery_capsule::Python) token or
//! a [`Borrowed`](bindery_capsule::Borrowed) handle carrying one. [`register_class`] is
//! `unsafe`: the caller promises that the type's instances are [`ClassObject<T>`]s.
//! [`tp_dealloc`] aborts with a message if `T`'s `Drop` panics (it cannot unwind into C).
//!
//! # Supported versions
//!
//! CPython 3.9 to 3.13 (GIL builds), main interpreter and subinterpreters (shared GIL, and
//! own GIL on 3.12+), through pyo3-ffi 0.30.

#![deny(missing_docs)]

mod class;
mod compat;
mod error;
mod instance;
mod lookup;
mod map;
mod number;
mod object;
mod seq;
mod text;
mod traits;

pub use class::{
    RegisterError, RegisteredClass, Visibility, new_instance, register_class, try_borrow_in_gc,
};
pub use error::{CastError, ExceptionKind, PythonException, rust_name};
pub use instance::{InstanceMut, InstanceRef};
pub use object::{ClassObject, Ref, RefMut, tp_dealloc};
pub use traits::{FromPython, IntoPython, cast, to_python};
