//! Sequences and their relatives: `Vec<T>`, `SmallVec`, arrays, tuples up to 12, `Option<T>`
//! and `()`.
//!
//! From Python: a `list` or `tuple` is read in place (items borrowed, no reference count
//! change for items whose conversion runs no Python code; capacity reserved up front); any
//! other object of the sequence protocol is iterated. A `str` is never taken for a sequence
//! (`"abc"` is not `vec!['a', 'b', 'c']`). To Python: `list` (`Vec<u8>` gives `bytes`),
//! tuples give `tuple`.

use bindery_capsule::{Borrowed, Owned, Python};
use pyo3_ffi as ffi;
use smallvec::SmallVec;

use crate::error::{CastError, rust_name};
use crate::traits::{FromPython, IntoPython, owned_or_err};

/// Where a sequence's items are collected.
trait Collect<T> {
    fn with_capacity(n: usize) -> Self;
    fn push(&mut self, value: T);
    fn len(&self) -> usize;
    /// Appends every item of `items` (the collection keeps its length in a register while
    /// it does, unlike a loop of `push` that may be interrupted by a call).
    fn extend_from(&mut self, items: impl Iterator<Item = T>);
}

impl<T> Collect<T> for Vec<T> {
    #[inline]
    fn with_capacity(n: usize) -> Self {
        Vec::with_capacity(n)
    }
    #[inline]
    fn push(&mut self, value: T) {
        Vec::push(self, value)
    }
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
    #[inline]
    fn extend_from(&mut self, items: impl Iterator<Item = T>) {
        self.extend(items)
    }
}

impl<A: smallvec::Array> Collect<A::Item> for SmallVec<A> {
    #[inline]
    fn with_capacity(n: usize) -> Self {
        SmallVec::with_capacity(n)
    }
    #[inline]
    fn push(&mut self, value: A::Item) {
        SmallVec::push(self, value)
    }
    #[inline]
    fn len(&self) -> usize {
        SmallVec::len(self)
    }
    #[inline]
    fn extend_from(&mut self, items: impl Iterator<Item = A::Item>) {
        self.extend(items)
    }
}

/// Converts items on their exact fast path for as long as they take it: the run of items
/// read in place, with no Python code, no reference count change and no bounds check
/// between items. Returns how many were converted (all, unless an item needs the general
/// path).
#[inline]
fn exact_prefix<'py, T, C>(py: Python<'py>, items: &[*mut ffi::PyObject], out: &mut C) -> usize
where
    T: for<'b> FromPython<'b, 'py>,
    C: Collect<T>,
{
    let before = out.len();
    out.extend_from(items.iter().map_while(|&item| {
        // SAFETY: the caller's items are live objects held by their container, and no
        // Python code runs while this iterator is consumed (exact conversions run none).
        let item = unsafe { Borrowed::from_ptr(py, item) }?;
        T::from_python_exact(item)
    }));
    out.len() - before
}

/// The item array of a list or tuple (`len` entries), as a slice valid until Python code
/// runs (a list may reallocate it then).
///
/// # Safety
/// `items` points to `len` initialised object pointers (or `len` is 0).
unsafe fn item_slice<'x>(
    items: *mut *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
) -> &'x [*mut ffi::PyObject] {
    if len <= 0 || items.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(items, len as usize) }
    }
}

/// Converts one item that the caller holds no reference to: the exact fast path first
/// (no Python code can run, so the borrowed item stays valid), else with a reference held
/// for the conversion. `R` names the container in errors.
#[inline]
fn item_from<'py, T, R: ?Sized>(
    item: Borrowed<'_, 'py>,
    index: usize,
    container: Borrowed<'_, 'py>,
) -> Result<T, CastError>
where
    T: for<'b> FromPython<'b, 'py>,
{
    if let Some(value) = T::from_python_exact(item) {
        return Ok(value);
    }
    item_slow::<T, R>(item.to_owned(), index, container)
}

#[inline(never)]
fn item_slow<'py, T, R: ?Sized>(
    item: Owned<'py>,
    index: usize,
    container: Borrowed<'_, 'py>,
) -> Result<T, CastError>
where
    T: for<'b> FromPython<'b, 'py>,
{
    T::from_python(item.as_borrowed())
        .map_err(|error| error.in_item::<R>(format!("item {index}"), container))
}

/// Reads the items of `obj` (`list`, `tuple`, or another sequence, not `str`) into `C`.
fn extract_sequence<'py, T, C>(obj: Borrowed<'_, 'py>) -> Result<C, CastError>
where
    T: for<'b> FromPython<'b, 'py>,
    C: Collect<T>,
{
    let py = obj.py();
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is live; the check reads its type.
    if unsafe { ffi::PyList_Check(ptr) } != 0 {
        // SAFETY: a live list.
        let len = unsafe { ffi::PyList_GET_SIZE(ptr) };
        let mut out = C::with_capacity(len as usize);
        let mut i = 0;
        while i < len {
            // SAFETY: a live list's item array holds its current size's worth of items (the
            // size is checked after every conversion that may run Python code, which is
            // also what could reallocate the array); the slice is used only by
            // `exact_prefix`, during which no Python code runs.
            let items = unsafe { item_slice((*ptr.cast::<ffi::PyListObject>()).ob_item, len) };
            i += exact_prefix::<T, C>(py, &items[i as usize..], &mut out) as ffi::Py_ssize_t;
            if i == len {
                break;
            }
            // SAFETY: as above: `i` < len, the list's current size; the item is held by the
            // list until `item_slow` takes its own reference, before any Python code runs.
            let item = unsafe { Borrowed::from_ptr(py, items[i as usize]) }
                .expect("a list's items are never NULL");
            out.push(item_slow::<T, C>(item.to_owned(), i as usize, obj)?);
            // SAFETY: a live list.
            if unsafe { ffi::PyList_GET_SIZE(ptr) } != len {
                return Err(CastError::Mutated {
                    python: obj.type_name(),
                    rust: rust_name::<C>(),
                });
            }
            i += 1;
        }
        return Ok(out);
    }
    // SAFETY: as above.
    if unsafe { ffi::PyTuple_Check(ptr) } != 0 {
        // SAFETY: a live tuple; its size and items never change while it lives.
        let len = unsafe { ffi::PyTuple_GET_SIZE(ptr) };
        // SAFETY: a tuple's items follow its header, `len` of them, alive and unchanged
        // while the tuple lives (for the whole call), whatever Python code runs.
        let items = unsafe {
            // A raw place, not `ob_item.as_mut_ptr()`: a reference to the declared
            // one-item array would not cover the items after the first.
            item_slice(
                std::ptr::addr_of_mut!((*ptr.cast::<ffi::PyTupleObject>()).ob_item)
                    .cast::<*mut ffi::PyObject>(),
                len,
            )
        };
        let mut out = C::with_capacity(items.len());
        let mut i = 0;
        while i < items.len() {
            i += exact_prefix::<T, C>(py, &items[i..], &mut out);
            if i == items.len() {
                break;
            }
            // SAFETY: see `items`.
            let item = unsafe { Borrowed::from_ptr(py, items[i]) }
                .expect("a tuple's items are never NULL");
            out.push(item_from::<T, C>(item, i, obj)?);
            i += 1;
        }
        return Ok(out);
    }
    // SAFETY: as above.
    let is_sequence = unsafe { ffi::PySequence_Check(ptr) != 0 && ffi::PyUnicode_Check(ptr) == 0 };
    if !is_sequence {
        return Err(CastError::wrong_type::<C>(obj));
    }
    // SAFETY: attached thread state; may call __len__ / __length_hint__; -1 on error.
    let hint = unsafe { ffi::PyObject_LengthHint(ptr, 0) };
    if hint < 0 {
        return Err(CastError::fetch(py));
    }
    // SAFETY: attached thread state; a new iterator or null.
    let iter = owned_or_err(py, unsafe { ffi::PyObject_GetIter(ptr) })?;
    let mut out = C::with_capacity(hint as usize);
    loop {
        // SAFETY: attached thread state; a live iterator; a new reference, or null at the
        // end (no exception) or on error (exception set).
        let item = unsafe { Owned::from_owned_ptr(py, ffi::PyIter_Next(iter.as_ptr())) };
        let Some(item) = item else {
            // SAFETY: attached thread state.
            if unsafe { !ffi::PyErr_Occurred().is_null() } {
                return Err(CastError::fetch(py));
            }
            return Ok(out);
        };
        let index = out.len();
        out.push(item_slow::<T, C>(item, index, obj)?);
    }
}

/// A `list` of the items, which must be exactly `len`.
pub(crate) fn list_from_iter<'py, T: IntoPython<'py>>(
    py: Python<'py>,
    len: usize,
    items: impl IntoIterator<Item = T>,
) -> Result<Owned<'py>, CastError> {
    // SAFETY: attached thread state; a new list of `len` NULL slots, or null.
    let list = owned_or_err(py, unsafe { ffi::PyList_New(len as ffi::Py_ssize_t) })?;
    let mut count = 0;
    for item in items {
        assert!(count < len, "more items than announced");
        let item = item.into_python(py)?;
        // SAFETY: `count` < len; the slot is empty; SET_ITEM steals the new reference.
        unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), count as ffi::Py_ssize_t, item.into_ptr()) };
        count += 1;
    }
    // A list with NULL slots must never reach Python code.
    assert_eq!(count, len, "fewer items than announced");
    Ok(list)
}

/// From a `list`, `tuple` or other sequence (not `str`); `Vec<u8>` also from `bytes` and
/// `bytearray`.
impl<'a, 'py, T> FromPython<'a, 'py> for Vec<T>
where
    T: for<'b> FromPython<'b, 'py>,
{
    const PYTHON_TYPE: &'static str = "list";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        if let Some(Some(items)) = crate::text::with_bytes_like(obj, T::vec_from_bytes) {
            return Ok(items);
        }
        extract_sequence::<T, Vec<T>>(obj)
    }
}

/// A `list` (`Vec<u8>`: `bytes`).
impl<'py, T: IntoPython<'py>> IntoPython<'py> for Vec<T> {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        T::vec_into_python(self, py)
    }
}

/// From a `list`, `tuple` or other sequence (not `str`).
impl<'a, 'py, A> FromPython<'a, 'py> for SmallVec<A>
where
    A: smallvec::Array,
    A::Item: for<'b> FromPython<'b, 'py>,
{
    const PYTHON_TYPE: &'static str = "list";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        extract_sequence::<A::Item, SmallVec<A>>(obj)
    }
}

/// A `list`.
impl<'py, A> IntoPython<'py> for SmallVec<A>
where
    A: smallvec::Array,
    A::Item: IntoPython<'py>,
{
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        list_from_iter(py, self.len(), self)
    }
}

/// The length of a `list`, `tuple` or other sequence (not `str`), for fixed-size targets.
fn sequence_len<R: ?Sized>(obj: Borrowed<'_, '_>) -> Result<usize, CastError> {
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is live; the checks read its type; the sizes read live objects.
    unsafe {
        if ffi::PyList_Check(ptr) != 0 {
            return Ok(ffi::PyList_GET_SIZE(ptr) as usize);
        }
        if ffi::PyTuple_Check(ptr) != 0 {
            return Ok(ffi::PyTuple_GET_SIZE(ptr) as usize);
        }
        if ffi::PySequence_Check(ptr) == 0 || ffi::PyUnicode_Check(ptr) != 0 {
            return Err(CastError::wrong_type::<R>(obj));
        }
    }
    // SAFETY: attached thread state; may call __len__; -1 with an exception on error.
    let len = unsafe { ffi::PySequence_Size(ptr) };
    if len < 0 {
        return Err(CastError::fetch(obj.py()));
    }
    Ok(len as usize)
}

/// From a `list`, `tuple` or other sequence (not `str`) of exactly `N` items; another
/// length is a `ValueError`.
impl<'a, 'py, T, const N: usize> FromPython<'a, 'py> for [T; N]
where
    T: for<'b> FromPython<'b, 'py>,
{
    const PYTHON_TYPE: &'static str = "list";
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let wrong_length = |got| CastError::Length {
            expected: N,
            got,
            rust: rust_name::<[T; N]>(),
        };
        let len = sequence_len::<[T; N]>(obj)?;
        if len != N {
            return Err(wrong_length(len));
        }
        let items = extract_sequence::<T, Vec<T>>(obj).map_err(|error| match error {
            CastError::Item {
                item,
                python,
                source,
                ..
            } => CastError::Item {
                item,
                python,
                rust: rust_name::<[T; N]>(),
                source,
            },
            other => other,
        })?;
        items
            .try_into()
            .map_err(|items: Vec<T>| wrong_length(items.len()))
    }
}

/// A `list`.
impl<'py, T: IntoPython<'py>, const N: usize> IntoPython<'py> for [T; N] {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        list_from_iter(py, N, self)
    }
}

/// `None` becomes `None`, anything else `Some(T)`.
impl<'a, 'py, T: FromPython<'a, 'py>> FromPython<'a, 'py> for Option<T> {
    const PYTHON_TYPE: &'static str = T::PYTHON_TYPE;
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        // SAFETY: comparing with the address of the None singleton.
        if obj.as_ptr() == unsafe { ffi::Py_None() } {
            Ok(None)
        } else {
            T::from_python(obj).map(Some)
        }
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        // SAFETY: comparing with the address of the None singleton.
        if obj.as_ptr() == unsafe { ffi::Py_None() } {
            Some(None)
        } else {
            T::from_python_exact(obj).map(Some)
        }
    }
}

fn none(py: Python<'_>) -> Owned<'_> {
    // SAFETY: None lives as long as the interpreter; a new reference is taken.
    unsafe { Owned::from_borrowed_ptr(py, ffi::Py_None()) }.expect("None exists")
}

/// `None` or the value.
impl<'py, T: IntoPython<'py>> IntoPython<'py> for Option<T> {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        match self {
            Some(value) => value.into_python(py),
            None => Ok(none(py)),
        }
    }
}

/// Only `None`.
impl<'a, 'py> FromPython<'a, 'py> for () {
    const PYTHON_TYPE: &'static str = "None";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        // SAFETY: comparing with the address of the None singleton.
        if obj.as_ptr() == unsafe { ffi::Py_None() } {
            Ok(())
        } else {
            Err(CastError::wrong_type::<()>(obj))
        }
    }
}

/// `None`.
impl<'py> IntoPython<'py> for () {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        Ok(none(py))
    }
}

/// The tuple to read a Rust tuple from: the object itself if it is a `tuple`, a snapshot of
/// a `list`; `R` names the target in errors.
fn tuple_of<'a, 'py, R: ?Sized>(
    obj: Borrowed<'a, 'py>,
    expected: usize,
) -> Result<TupleSource<'a, 'py>, CastError> {
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is live; the checks read its type.
    let source = if unsafe { ffi::PyTuple_Check(ptr) } != 0 {
        TupleSource::Itself(obj)
    } else if unsafe { ffi::PyList_Check(ptr) } != 0 {
        // SAFETY: attached thread state; a live list; a new tuple of its items, or null.
        TupleSource::Copy(owned_or_err(obj.py(), unsafe { ffi::PyList_AsTuple(ptr) })?)
    } else {
        return Err(CastError::wrong_type::<R>(obj));
    };
    // SAFETY: a live tuple.
    let got = unsafe { ffi::PyTuple_GET_SIZE(source.get().as_ptr()) } as usize;
    if got != expected {
        return Err(CastError::Length {
            expected,
            got,
            rust: rust_name::<R>(),
        });
    }
    Ok(source)
}

enum TupleSource<'a, 'py> {
    Itself(Borrowed<'a, 'py>),
    Copy(Owned<'py>),
}

impl<'py> TupleSource<'_, 'py> {
    fn get(&self) -> Borrowed<'_, 'py> {
        match self {
            TupleSource::Itself(obj) => *obj,
            TupleSource::Copy(obj) => obj.as_borrowed(),
        }
    }
}

/// Item `index` of a tuple of the right length, converted; errors name the original
/// object and the Rust tuple `R`.
#[inline]
fn tuple_item<'py, T, R: ?Sized>(
    tuple: Borrowed<'_, 'py>,
    index: usize,
    original: Borrowed<'_, 'py>,
) -> Result<T, CastError>
where
    T: for<'b> FromPython<'b, 'py>,
{
    // SAFETY: `index` < the tuple's length (checked by `tuple_of`); the tuple holds the
    // item while it lives, whatever Python code runs.
    let item = unsafe {
        Borrowed::from_ptr(
            tuple.py(),
            ffi::PyTuple_GET_ITEM(tuple.as_ptr(), index as ffi::Py_ssize_t),
        )
    }
    .expect("a tuple's items are never NULL");
    T::from_python(item).map_err(|error| error.in_item::<R>(format!("item {index}"), original))
}

macro_rules! tuples {
    ($($len:literal => ($($i:tt $t:ident),+)),+ $(,)?) => {$(
        /// From a `tuple` or `list` of exactly this length; another length is a
        /// `ValueError`.
        impl<'a, 'py, $($t),+> FromPython<'a, 'py> for ($($t,)+)
        where
            $($t: for<'b> FromPython<'b, 'py>),+
        {
            const PYTHON_TYPE: &'static str = "tuple";
            fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
                let source = tuple_of::<Self>(obj, $len)?;
                let tuple = source.get();
                Ok(($(tuple_item::<$t, Self>(tuple, $i, obj)?,)+))
            }
        }

        /// A `tuple`.
        impl<'py, $($t: IntoPython<'py>),+> IntoPython<'py> for ($($t,)+) {
            fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
                // SAFETY: attached thread state; a new tuple of NULL slots, or null.
                let tuple = owned_or_err(py, unsafe { ffi::PyTuple_New($len) })?;
                $(
                    let item = self.$i.into_python(py)?;
                    // SAFETY: the index is in bounds and the slot empty; SET_ITEM steals
                    // the new reference. (A failure above drops the tuple, which accepts
                    // NULL slots.)
                    unsafe { ffi::PyTuple_SET_ITEM(tuple.as_ptr(), $i, item.into_ptr()) };
                )+
                Ok(tuple)
            }
        }
    )+};
}

tuples!(
    1 => (0 T0),
    2 => (0 T0, 1 T1),
    3 => (0 T0, 1 T1, 2 T2),
    4 => (0 T0, 1 T1, 2 T2, 3 T3),
    5 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4),
    6 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4, 5 T5),
    7 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4, 5 T5, 6 T6),
    8 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4, 5 T5, 6 T6, 7 T7),
    9 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4, 5 T5, 6 T6, 7 T7, 8 T8),
    10 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4, 5 T5, 6 T6, 7 T7, 8 T8, 9 T9),
    11 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4, 5 T5, 6 T6, 7 T7, 8 T8, 9 T9, 10 T10),
    12 => (0 T0, 1 T1, 2 T2, 3 T3, 4 T4, 5 T5, 6 T6, 7 T7, 8 T8, 9 T9, 10 T10, 11 T11),
);
