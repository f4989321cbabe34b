//! Cycle-collector support for Rust types that own Python objects: `tp_traverse` and
//! `tp_clear` that are safe at any moment the collector chooses, interpreter shutdown
//! included, and checkers that prove it in tests.
//!
//! ```text
//! Handle                                   storable strong reference (bindery-capsule)
//! trait Traverse { fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> }
//! trait Clear    { fn clear_refs(&mut self, cleared: &mut Cleared) }
//! visit.call(&handle)?                     report one owned reference (Py_VISIT)
//! tp_traverse::<T>          reads the value in place          } extern "C" slot functions,
//! tp_traverse_by_cast::<T>  reaches it through a cast of self } ready for a PyType_Spec
//! tp_clear::<T>             empties it through a cast of self }
//! tp_dealloc::<T>           frees it, releasing references   }
//! add_gc_checkers_with_weakrefs(py, obj)   fail loudly if internals die before obj
//! ```
//!
//! # Example
//!
//! A container that owns Python objects, as a registered class (the complete module, with
//! its methods and tests, is `examples/gc` in the repository):
//!
//! ```no_run
//! use bindery_capsule::{Handle, Python};
//! use bindery_cast::{ClassObject, RegisteredClass, Visibility, register_class};
//! use bindery_gc_support::{
//!     Clear, Cleared, Traverse, Visit, VisitError, tp_clear, tp_dealloc, tp_traverse_by_cast,
//! };
//! use pyo3_ffi as ffi;
//! use std::ffi::c_void;
//!
//! /// Python objects in a Rust vector: `c.append(c)` makes a cycle through Rust.
//! #[derive(Default)]
//! struct Container {
//!     items: Vec<Handle>,
//! }
//!
//! impl RegisteredClass for Container {
//!     const TYPE_KEY: &'static str = "my-crate 0.1.0::Container";
//! }
//!
//! impl Traverse for Container {
//!     fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
//!         self.items.traverse(visit) // every Handle, once
//!     }
//! }
//!
//! impl Clear for Container {
//!     fn clear_refs(&mut self, cleared: &mut Cleared) {
//!         self.items.clear_refs(cleared) // empty and usable afterwards
//!     }
//! }
//!
//! /// `Py_tp_new`: allocate (zeroed: "no value yet"), then store the value.
//! unsafe extern "C" fn new(
//!     ty: *mut ffi::PyTypeObject,
//!     _args: *mut ffi::PyObject,
//!     _kwds: *mut ffi::PyObject,
//! ) -> *mut ffi::PyObject {
//!     // SAFETY: CPython calls tp_new with the GIL held; tp_alloc is inherited.
//!     let obj = unsafe { ((*ty).tp_alloc.unwrap())(ty, 0) };
//!     if !obj.is_null() {
//!         // SAFETY: a fresh, empty instance of a type whose instances are ClassObject<Container>.
//!         let _ = unsafe { ClassObject::<Container>::init(obj, Container::default()) };
//!     }
//!     obj
//! }
//!
//! /// The type spec's slots: GC support is three lines.
//! fn slots() -> [ffi::PyType_Slot; 5] {
//!     let slot = |slot, pfunc: *mut c_void| ffi::PyType_Slot { slot, pfunc };
//!     [
//!         slot(ffi::Py_tp_new, new as *mut c_void),
//!         slot(ffi::Py_tp_traverse, tp_traverse_by_cast::<Container> as *mut c_void),
//!         slot(ffi::Py_tp_clear, tp_clear::<Container> as *mut c_void),
//!         slot(ffi::Py_tp_dealloc, tp_dealloc::<Container> as *mut c_void),
//!         slot(0, std::ptr::null_mut()),
//!     ]
//! }
//!
//! /// In the module's `Py_mod_exec` slot, after `bindery_internals::on_module_exec`.
//! unsafe fn add_type(py: Python<'_>, module: *mut ffi::PyObject) -> Result<(), String> {
//!     let mut slots = slots();
//!     let mut spec = ffi::PyType_Spec {
//!         name: c"my_module.Container".as_ptr(),
//!         basicsize: ClassObject::<Container>::BASIC_SIZE as i32,
//!         itemsize: 0,
//!         flags: (ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_HAVE_GC) as u32,
//!         slots: slots.as_mut_ptr(),
//!     };
//!     // SAFETY: GIL held (exec slot); the spec is valid for the call, its name is 'static.
//!     let ty = unsafe { ffi::PyType_FromModuleAndSpec(module, &mut spec, std::ptr::null_mut()) };
//!     if ty.is_null() {
//!         return Err("PyType_FromModuleAndSpec failed".into());
//!     }
//!     // SAFETY: instances of `ty` are ClassObject<Container>, made by `new`, destroyed by
//!     // tp_dealloc; the module keeps the type alive (below).
//!     unsafe { register_class::<Container>(py, ty.cast(), "my_module", Visibility::Shared) }
//!         .map_err(|e| e.to_string())?;
//!     // SAFETY: GIL held; steals the reference to `ty`.
//!     unsafe { ffi::PyModule_AddObject(module, c"Container".as_ptr(), ty) };
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! In Python, `c = Container(); c.append(c); del c` is now collected by `gc.collect()`;
//! without `tp_traverse` and `tp_clear` it would leak, and with a `tp_traverse` that reported
//! too much it could free live objects.
//!
//! # Recipes
//!
//! **Writing `Traverse`.** Call `traverse` on every field that owns Python references and
//! propagate the result with `?`: `self.items.traverse(visit)?; self.callback.traverse(visit)`.
//! Report what you own, once: a [`Handle`](bindery_capsule::Handle) you hold, not a borrowed
//! pointer or an object you only know the address of. Traverse must not change reference
//! counts, allocate, call Python, or take a lock that Python code can hold: it runs in the
//! middle of a collection. Reporting too little only keeps objects alive (a leak); reporting
//! something you do not own lets the collector free a live object (a crash later).
//!
//! **Writing `Clear`.** Move every owned reference out with `clear_refs` (containers become
//! empty, `Option`s become `None`) and leave the value valid: methods called on a cleared
//! object must keep working. Store single objects as `Option<Handle>` so they can be
//! cleared. The references are released by [`tp_clear`] after it gave up its borrow of the
//! value, so a `__del__` that runs then may call the object's methods.
//!
//! **Choosing a traverse slot.** [`tp_traverse`] reads the value in place (no lookup) and
//! suits a type that only its own module defines. [`tp_traverse_by_cast`] reaches the value
//! the way a cast does, through the type registry in the internals: the pattern of
//! pybind11's "custom type setup" example, and the one that depends on internals still being
//! valid in the interpreter's last garbage collection, which bindery guarantees (internals
//! are leaked, never re-created). [`tp_clear`] always goes through the cast (it needs the
//! mutable borrow the cast hands out). Python subclasses (`Py_TPFLAGS_BASETYPE`) work: CPython
//! calls the base type's slots after handling the subclass's own `__dict__` and slots.
//!
//! **State checks.** The collector may meet an instance before `tp_new` stored its value,
//! after `tp_dealloc` or a clear dropped it, or while a method holds `&mut` to it (pybind11
//! bug #4869 crashed there). The slots check the instance's state first: then `tp_traverse`
//! reports only the instance's heap type (`Py_VISIT(Py_TYPE(self))`, which every instance of
//! a heap type owns) and `tp_clear` does nothing.
//!
//! **Deallocation.** Use this crate's [`tp_dealloc`]: it moves the value's references out,
//! untracks the object, clears weak references, drops the value, frees the memory, releases
//! the heap type, and then releases the references in a loop that deallocations further down
//! feed instead of recursing. A chain of 100,000 containers, each holding the next, is
//! freed with a flat stack; with [`bindery_cast::tp_dealloc`] alone (which drops the value in
//! place) a chain of some thousands overflows an 8 MiB stack.
//!
//! **Checking lifetimes in tests.** [`add_gc_checkers_with_weakrefs`] makes the collection of
//! an object verify that the internals it may need are still the same, usable ones; a failure
//! prints `bindery gc checker: ...` and exits with [`GC_CHECKER_EXIT_CODE`]. Attach it to
//! objects left in cycles at exit and run the script in a subprocess, several times
//! (`bindery_testkit::Script::reruns`): shutdown order varies between runs.
//!
//! The hardest moment is the interpreter's last collection, after it cleared its state dict
//! (and with it the internals capsules). To test it, store a cycle in the state dict from the
//! script: with `ctypes.pythonapi`, declare `PyInterpreterState_GetDict`'s `restype` as
//! `c_void_p` and convert with `ctypes.cast(address, ctypes.py_object).value`. (A `restype`
//! of `py_object` makes ctypes release a reference it never got, since it assumes new
//! references, and frees the state dict early: the test then crashes for the wrong reason.)
//! The repository's `gc-support/tests/py_shutdown.rs` runs that scenario and the others
//! (module globals, `atexit`, `__del__`, daemon threads, subinterpreters, a negative
//! control) against `examples/gc`.
//!
//! # Invariants
//!
//! - The slots never unwind into C: a panic aborts with a message naming the Rust type and
//!   the Python type.
//! - `tp_traverse` changes no reference count, allocates nothing and calls no Python code
//!   (the cast of [`tp_traverse_by_cast`] included), and returns the first non-zero visit
//!   result unchanged.
//! - The slots touch the value only while it is constructed and not dropped; `tp_clear`
//!   leaves it constructed, empty and unborrowed, and leaves no Python error set.
//! - Checkers hold no reference to the internals capsules.
//!
//! # Safety
//!
//! The slot functions are `unsafe extern "C"`: install them only on a type whose instances
//! are [`bindery_cast::ClassObject<T>`] for the same `T` (registered with
//! [`bindery_cast::register_class`]). [`Visit::from_raw`] and [`Visit::call_ptr`] are for
//! hand-written traverse functions and carry CPython's own contract.
//!
//! # Supported versions
//!
//! CPython 3.9 to 3.13, main interpreter and subinterpreters (shared GIL, and own GIL on
//! 3.12+). CPython 3.9's main interpreter runs no garbage collection after it cleared its
//! state dict, so a cycle reachable only from the state dict is never collected there
//! (never traversed, never crashes); 3.10+ collects it in the last collection, and so do
//! subinterpreters on every version.

#![deny(missing_docs)]

mod checkers;
mod clear;
mod dealloc;
mod slots;
mod traverse;

pub use checkers::{GC_CHECKER_EXIT_CODE, GcCheckerError, add_gc_checkers_with_weakrefs};
pub use clear::{Clear, Cleared};
pub use dealloc::tp_dealloc;
pub use slots::{tp_clear, tp_traverse, tp_traverse_by_cast};
pub use traverse::{Traverse, Visit, VisitError};
