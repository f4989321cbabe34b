//! Garbage-collector support for classes whose Rust value owns Python objects: the slots of
//! bindery-gc-support ([`Class::gc`], [`Class::gc_through_cast`]) and a `clear()` method that
//! releases the references only after giving up its borrow ([`Class::clear_method`]).

use std::marker::PhantomData;

use bindery_capsule::{Borrowed, Python};
use bindery_cast::{ClassObject, RegisteredClass};
use bindery_gc_support::{Clear, Cleared, Traverse};
use pyo3_ffi as ffi;

use super::Class;
use crate::error::Error;
use crate::function::{ArgError, IntoReturn, Plain};
use crate::method::IntoMethod;

/// The `tp_traverse` and `tp_clear` slots of a GC class.
pub(super) struct GcSlots {
    pub(super) traverse: ffi::traverseproc,
    pub(super) clear: ffi::inquiry,
}

impl<T: RegisteredClass + Traverse + Clear> Class<T> {
    /// Garbage-collector support for a `T` that owns Python objects ([`Traverse`] and
    /// [`Clear`]), reading the value in place: the type gets `Py_TPFLAGS_HAVE_GC`,
    /// [`bindery_gc_support::tp_traverse`] (no registry lookup), [`bindery_gc_support::tp_clear`]
    /// and [`bindery_gc_support::tp_dealloc`] (which releases what the value owns in a loop,
    /// so dropping a long chain of such objects cannot overflow the stack). The slots do
    /// nothing before the value is constructed or after it is dropped, and never unwind.
    pub fn gc(self) -> Class<T> {
        self.with_gc(bindery_gc_support::tp_traverse::<T>)
    }

    /// Like [`Class::gc`], but `tp_traverse` reaches the value through a cast of `self`
    /// ([`bindery_gc_support::tp_traverse_by_cast`]): the instance's type is looked up in the
    /// interpreter's type registry, as code that casts objects in a GC callback does (the
    /// pattern of pybind11's "custom type setup" example). It keeps working in the
    /// interpreter's last collection, after the state dict was cleared, because internals are
    /// never freed; it allocates nothing and calls no Python code. `tp_clear` and `tp_dealloc`
    /// are the same as with [`Class::gc`] (both go through the cast already). Prefer
    /// [`Class::gc`] unless you need the cast path; `examples/gc` and the shutdown suite use
    /// this one to prove it safe.
    pub fn gc_through_cast(self) -> Class<T> {
        self.with_gc(bindery_gc_support::tp_traverse_by_cast::<T>)
    }

    fn with_gc(mut self, traverse: ffi::traverseproc) -> Class<T> {
        self.gc = Some(GcSlots {
            traverse,
            clear: bindery_gc_support::tp_clear::<T>,
        });
        self.dealloc = bindery_gc_support::tp_dealloc::<T>;
        self
    }

    /// A method `name()` that empties the value as the collector's `tp_clear` does: it moves
    /// the references out ([`Clear::clear_refs`]) under a mutable borrow of `self`, gives the
    /// borrow up, and only then releases them, so a finalizer that runs then (the `__del__`
    /// of a released object) may call the object's methods and finds it empty. (A method
    /// `|v: &mut T| v.items.clear()` releases while still borrowed: such a finalizer would get
    /// `RuntimeError: already mutably borrowed`.) Returns `None`.
    pub fn clear_method(self, name: &str, doc: &str) -> Class<T> {
        self.method::<_, ClearsAfterBorrow, (), Plain>(name, ClearRefs::<T>(PhantomData), |f| {
            f.doc(doc)
        })
    }
}

/// Receiver marker of [`ClearRefs`]: borrows `self` mutably only while moving references out.
struct ClearsAfterBorrow;

/// The method of [`Class::clear_method`] (zero-sized: no data to keep).
struct ClearRefs<T>(PhantomData<fn() -> T>);

impl<T: RegisteredClass + Clear> IntoMethod<T, ClearsAfterBorrow, (), Plain> for ClearRefs<T> {
    const ARITY: usize = 0;

    fn invoke(
        &self,
        py: Python<'_>,
        slf: Borrowed<'_, '_>,
        _args: &[*mut ffi::PyObject],
    ) -> Result<*mut ffi::PyObject, Box<ArgError>> {
        let mut cleared = Cleared::new();
        {
            // SAFETY: CPython only calls a method of T's class (its method table) with an
            // instance of that class or a subclass: a ClassObject<T>.
            let mut value = unsafe { ClassObject::<T>::borrow_mut(slf) }
                .map_err(|e| Box::new(ArgError::Call(Error::from(e))))?;
            value.clear_refs(&mut cleared);
        }
        // The borrow is given up: now the references go, and their finalizers may run.
        drop(cleared);
        ().into_return(py).map_err(|e| Box::new(ArgError::Call(e)))
    }
}
