//! Reporting owned references to the cycle collector: [`Visit`], [`VisitError`] and the
//! [`Traverse`] trait with its implementations for handles and containers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::num::NonZero;

use bindery_capsule::Handle;
use pyo3_ffi as ffi;
use smallvec::SmallVec;

/// The visitor CPython passes to `tp_traverse` (its `visitproc` and `arg`), for one call.
///
/// [`Visit::call`] reports one owned reference. A non-zero return of the collector's visit
/// function becomes a [`VisitError`], which `?` carries out of every [`Traverse`]
/// implementation so that `tp_traverse` returns it at once, as `Py_VISIT` does.
///
/// `Copy`, and neither `Send` nor `Sync`: it is only valid on the collecting thread, during
/// the `tp_traverse` call it was made for.
#[derive(Clone, Copy)]
pub struct Visit<'a> {
    visit: ffi::visitproc,
    arg: *mut c_void,
    // Scoped to the traverse call; the raw pointer makes it !Send and !Sync.
    _call: PhantomData<&'a mut c_void>,
}

impl std::fmt::Debug for Visit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Visit")
    }
}

/// What a [`Visit`] stopped with: the non-zero value the collector's visit function returned.
/// `tp_traverse` must return it unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the garbage collector's visit function returned {code} for an object reported by \
     tp_traverse; traversal stops and tp_traverse returns that value (CPython's Py_VISIT rule)"
)]
pub struct VisitError {
    code: NonZero<c_int>,
}

impl VisitError {
    /// The value to return from `tp_traverse`.
    pub fn code(self) -> c_int {
        self.code.get()
    }
}

impl<'a> Visit<'a> {
    /// Wraps the visitor of a `tp_traverse` call.
    ///
    /// # Safety
    /// `visit` and `arg` are the arguments CPython passed to the `tp_traverse` being run, and
    /// the `Visit` is used only during that call, on that thread.
    #[inline]
    pub unsafe fn from_raw(visit: ffi::visitproc, arg: *mut c_void) -> Visit<'a> {
        Visit {
            visit,
            arg,
            _call: PhantomData,
        }
    }

    /// Reports one owned reference to the collector.
    #[inline]
    pub fn call(self, handle: &Handle) -> Result<(), VisitError> {
        // SAFETY: a Handle owns a strong reference, so its object is alive.
        unsafe { self.call_ptr(handle.as_ptr()) }
    }

    /// Reports a raw strong reference the traversed object owns (a type object, a field of a
    /// C struct). Null is skipped, as `Py_VISIT` does.
    ///
    /// # Safety
    /// `obj` is null or a live object to which the traversed object owns a strong reference.
    #[inline]
    pub unsafe fn call_ptr(self, obj: *mut ffi::PyObject) -> Result<(), VisitError> {
        if obj.is_null() {
            return Ok(());
        }
        // SAFETY: the visit function and its argument come from CPython for this traverse
        // call (from_raw's contract); `obj` is live (caller). Visit functions do not change
        // reference counts, allocate or call Python code.
        let code = unsafe { (self.visit)(obj, self.arg) };
        match NonZero::new(code) {
            None => Ok(()),
            Some(code) => Err(VisitError { code }),
        }
    }
}

/// A value that reports every Python object it owns to the cycle collector.
///
/// Implement it for the Rust value of a registered class that holds [`Handle`]s, by calling
/// `traverse` on each field that owns references (`?` stops at the first [`VisitError`]).
/// The rules CPython sets for `tp_traverse` apply: report each strong reference you own
/// exactly once; no reference-count change, no allocation, no Python call, no lock that
/// Python code could hold. Borrowed pointers and objects owned elsewhere are not reported.
///
/// Implemented for [`Handle`], `Option`, `Box`, slices, `Vec`, `VecDeque`, `SmallVec`,
/// arrays, tuples up to 8 elements, the values of `HashMap` and `BTreeMap` (keys cannot own
/// Python objects: `Handle` is not hashable), and, as a no-op, for plain data (`bool`,
/// `char`, numbers, `String`, `str`, `()`) so that tuples and maps mixing data and handles
/// work.
pub trait Traverse {
    /// Calls `visit` on every Python object this value owns a strong reference to.
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError>;
}

impl Traverse for Handle {
    #[inline]
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        visit.call(self)
    }
}

impl<T: Traverse + ?Sized> Traverse for &T {
    #[inline]
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        (**self).traverse(visit)
    }
}

impl<T: Traverse + ?Sized> Traverse for Box<T> {
    #[inline]
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        (**self).traverse(visit)
    }
}

impl<T: Traverse> Traverse for Option<T> {
    #[inline]
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        match self {
            Some(value) => value.traverse(visit),
            None => Ok(()),
        }
    }
}

impl<T: Traverse> Traverse for [T] {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.iter().try_for_each(|item| item.traverse(visit))
    }
}

impl<T: Traverse, const N: usize> Traverse for [T; N] {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.as_slice().traverse(visit)
    }
}

impl<T: Traverse> Traverse for Vec<T> {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.as_slice().traverse(visit)
    }
}

impl<T: Traverse> Traverse for VecDeque<T> {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.iter().try_for_each(|item| item.traverse(visit))
    }
}

impl<A: smallvec::Array> Traverse for SmallVec<A>
where
    A::Item: Traverse,
{
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.as_slice().traverse(visit)
    }
}

/// The values (keys cannot own Python objects).
impl<K, V: Traverse, S> Traverse for HashMap<K, V, S> {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.values().try_for_each(|value| value.traverse(visit))
    }
}

/// The values (keys cannot own Python objects).
impl<K, V: Traverse> Traverse for BTreeMap<K, V> {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.values().try_for_each(|value| value.traverse(visit))
    }
}

/// Implements `Traverse` for tuples whose elements all implement it.
macro_rules! traverse_tuple {
    ($($name:ident),+) => {
        impl<$($name: Traverse),+> Traverse for ($($name,)+) {
            #[allow(non_snake_case, reason = "the type parameters name the elements")]
            fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
                let ($($name,)+) = self;
                $($name.traverse(visit)?;)+
                Ok(())
            }
        }
    };
}

traverse_tuple!(A);
traverse_tuple!(A, B);
traverse_tuple!(A, B, C);
traverse_tuple!(A, B, C, D);
traverse_tuple!(A, B, C, D, E);
traverse_tuple!(A, B, C, D, E, F);
traverse_tuple!(A, B, C, D, E, F, G);
traverse_tuple!(A, B, C, D, E, F, G, H);

/// Implements a no-op `Traverse` for types that own no Python object.
macro_rules! traverse_plain_data {
    ($($ty:ty),+) => {
        $(
            /// Owns no Python object: reports nothing.
            impl Traverse for $ty {
                #[inline]
                fn traverse(&self, _visit: Visit<'_>) -> Result<(), VisitError> {
                    Ok(())
                }
            }
        )+
    };
}

traverse_plain_data!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    str
);
