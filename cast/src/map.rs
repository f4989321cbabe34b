//! Maps and sets: `HashMap`, `BTreeMap` from and to `dict`; `HashSet`, `BTreeSet` from `set`
//! or `frozenset` and to `set`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

use bindery_capsule::{Borrowed, Owned, Python};
use pyo3_ffi as ffi;

use crate::error::{CastError, rust_name, short_repr};
use crate::traits::{FromPython, IntoPython, owned_or_err};

/// Where a dict's pairs are collected.
trait InsertPair<K, V> {
    fn with_capacity(n: usize) -> Self;
    fn insert_pair(&mut self, key: K, value: V);
}

impl<K: Eq + Hash, V, S: BuildHasher + Default> InsertPair<K, V> for HashMap<K, V, S> {
    fn with_capacity(n: usize) -> Self {
        HashMap::with_capacity_and_hasher(n, S::default())
    }
    fn insert_pair(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
}

impl<K: Ord, V> InsertPair<K, V> for BTreeMap<K, V> {
    fn with_capacity(_n: usize) -> Self {
        BTreeMap::new()
    }
    fn insert_pair(&mut self, key: K, value: V) {
        self.insert(key, value);
    }
}

/// Where a set's elements are collected.
trait InsertOne<T> {
    fn with_capacity(n: usize) -> Self;
    fn insert_one(&mut self, value: T);
}

impl<T: Eq + Hash, S: BuildHasher + Default> InsertOne<T> for HashSet<T, S> {
    fn with_capacity(n: usize) -> Self {
        HashSet::with_capacity_and_hasher(n, S::default())
    }
    fn insert_one(&mut self, value: T) {
        self.insert(value);
    }
}

impl<T: Ord> InsertOne<T> for BTreeSet<T> {
    fn with_capacity(_n: usize) -> Self {
        BTreeSet::new()
    }
    fn insert_one(&mut self, value: T) {
        self.insert(value);
    }
}

/// The error of a dict key that did not convert: a key of the wrong type says what keys
/// must be; others (an overflowing int key) are wrapped with the key.
fn key_error<M: ?Sized>(
    error: CastError,
    expected: &'static str,
    key: Borrowed<'_, '_>,
    dict: Borrowed<'_, '_>,
) -> CastError {
    match error {
        CastError::WrongType { python, .. } => CastError::DictKey {
            expected,
            python,
            rust: rust_name::<M>(),
        },
        other => other.in_item::<M>(format!("key {}", short_repr(key)), dict),
    }
}

/// Reads a `dict` (subclasses included) into `M`.
fn extract_dict<'py, K, V, M>(obj: Borrowed<'_, 'py>) -> Result<M, CastError>
where
    K: for<'b> FromPython<'b, 'py>,
    V: for<'b> FromPython<'b, 'py>,
    M: InsertPair<K, V>,
{
    let py = obj.py();
    let dict = obj.as_ptr();
    // SAFETY: `obj` is live; the check reads its type.
    if unsafe { ffi::PyDict_Check(dict) } == 0 {
        return Err(CastError::wrong_type::<M>(obj));
    }
    // SAFETY: a live dict.
    let size = unsafe { ffi::PyDict_Size(dict) };
    let mut out = M::with_capacity(size as usize);
    let mut pos: ffi::Py_ssize_t = 0;
    let mut key_ptr = std::ptr::null_mut();
    let mut value_ptr = std::ptr::null_mut();
    // SAFETY: a live dict; PyDict_Next hands out borrowed references, valid while the dict
    // is not changed; it re-reads the dict's table on every call, so a change made by
    // Python code between calls is detected below, never read through freed memory.
    while unsafe { ffi::PyDict_Next(dict, &mut pos, &mut key_ptr, &mut value_ptr) } != 0 {
        // SAFETY: borrowed from the dict, which holds them until Python code runs; the
        // slow path below takes references first.
        let (key, value) = unsafe {
            (
                Borrowed::from_ptr(py, key_ptr).expect("dict keys are never NULL"),
                Borrowed::from_ptr(py, value_ptr).expect("dict values are never NULL"),
            )
        };
        let fast_key = K::from_python_exact(key);
        let fast_value = V::from_python_exact(value);
        let (key, value) = match (fast_key, fast_value) {
            (Some(k), Some(v)) => (k, v),
            (fast_key, fast_value) => {
                let (key, value) = (key.to_owned(), value.to_owned());
                let k = match fast_key {
                    Some(k) => k,
                    None => K::from_python(key.as_borrowed()).map_err(|error| {
                        let expected = <K as FromPython<'_, 'py>>::PYTHON_TYPE;
                        key_error::<M>(error, expected, key.as_borrowed(), obj)
                    })?,
                };
                let v = match fast_value {
                    Some(v) => v,
                    None => V::from_python(value.as_borrowed()).map_err(|error| {
                        let item = format!("value for key {}", short_repr(key.as_borrowed()));
                        error.in_item::<M>(item, obj)
                    })?,
                };
                // SAFETY: a live dict.
                if unsafe { ffi::PyDict_Size(dict) } != size {
                    return Err(CastError::Mutated {
                        python: obj.type_name(),
                        rust: rust_name::<M>(),
                    });
                }
                (k, v)
            }
        };
        out.insert_pair(key, value);
    }
    Ok(out)
}

/// Reads a `set` or `frozenset` (subclasses included) into `S`.
fn extract_set<'py, T, S>(obj: Borrowed<'_, 'py>) -> Result<S, CastError>
where
    T: for<'b> FromPython<'b, 'py>,
    S: InsertOne<T>,
{
    let py = obj.py();
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is live; the check reads its type.
    if unsafe { ffi::PyAnySet_Check(ptr) } == 0 {
        return Err(CastError::wrong_type::<S>(obj));
    }
    // SAFETY: a live set.
    let size = unsafe { ffi::PySet_Size(ptr) };
    let mut out = S::with_capacity(size.max(0) as usize);
    // SAFETY: attached thread state; a new iterator or null. (The set iterator raises
    // RuntimeError if the set changes size while iterated.)
    let iter = owned_or_err(py, unsafe { ffi::PyObject_GetIter(ptr) })?;
    loop {
        // SAFETY: a live iterator; a new reference, or null at the end or on error.
        let item = unsafe { Owned::from_owned_ptr(py, ffi::PyIter_Next(iter.as_ptr())) };
        let Some(item) = item else {
            // SAFETY: attached thread state.
            if unsafe { !ffi::PyErr_Occurred().is_null() } {
                return Err(CastError::fetch(py));
            }
            return Ok(out);
        };
        let item = item.as_borrowed();
        let value = match T::from_python_exact(item) {
            Some(value) => value,
            None => T::from_python(item).map_err(|error| {
                error.in_item::<S>(format!("element {}", short_repr(item)), obj)
            })?,
        };
        out.insert_one(value);
    }
}

/// A `dict` of the converted pairs.
fn dict_from_iter<'py, K: IntoPython<'py>, V: IntoPython<'py>>(
    py: Python<'py>,
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Result<Owned<'py>, CastError> {
    // SAFETY: attached thread state; a new dict or null.
    let dict = owned_or_err(py, unsafe { ffi::PyDict_New() })?;
    for (key, value) in pairs {
        let key = key.into_python(py)?;
        let value = value.into_python(py)?;
        // SAFETY: live dict, key and value; the dict takes its own references; -1 with an
        // exception set if the key is unhashable.
        if unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) } != 0 {
            return Err(CastError::fetch(py));
        }
    }
    Ok(dict)
}

/// A `set` of the converted elements.
fn set_from_iter<'py, T: IntoPython<'py>>(
    py: Python<'py>,
    items: impl IntoIterator<Item = T>,
) -> Result<Owned<'py>, CastError> {
    // SAFETY: attached thread state; a new empty set or null.
    let set = owned_or_err(py, unsafe { ffi::PySet_New(std::ptr::null_mut()) })?;
    for item in items {
        let item = item.into_python(py)?;
        // SAFETY: live set and item; the set takes its own reference; -1 if unhashable.
        if unsafe { ffi::PySet_Add(set.as_ptr(), item.as_ptr()) } != 0 {
            return Err(CastError::fetch(py));
        }
    }
    Ok(set)
}

/// From a `dict` (subclasses included).
impl<'a, 'py, K, V, S> FromPython<'a, 'py> for HashMap<K, V, S>
where
    K: for<'b> FromPython<'b, 'py> + Eq + Hash,
    V: for<'b> FromPython<'b, 'py>,
    S: BuildHasher + Default,
{
    const PYTHON_TYPE: &'static str = "dict";
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        extract_dict::<K, V, Self>(obj)
    }
}

/// From a `dict` (subclasses included).
impl<'a, 'py, K, V> FromPython<'a, 'py> for BTreeMap<K, V>
where
    K: for<'b> FromPython<'b, 'py> + Ord,
    V: for<'b> FromPython<'b, 'py>,
{
    const PYTHON_TYPE: &'static str = "dict";
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        extract_dict::<K, V, Self>(obj)
    }
}

/// A `dict`.
impl<'py, K: IntoPython<'py>, V: IntoPython<'py>, S> IntoPython<'py> for HashMap<K, V, S> {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        dict_from_iter(py, self)
    }
}

/// A `dict` (in key order).
impl<'py, K: IntoPython<'py>, V: IntoPython<'py>> IntoPython<'py> for BTreeMap<K, V> {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        dict_from_iter(py, self)
    }
}

/// From a `set` or `frozenset` (subclasses included).
impl<'a, 'py, T, S> FromPython<'a, 'py> for HashSet<T, S>
where
    T: for<'b> FromPython<'b, 'py> + Eq + Hash,
    S: BuildHasher + Default,
{
    const PYTHON_TYPE: &'static str = "set";
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        extract_set::<T, Self>(obj)
    }
}

/// From a `set` or `frozenset` (subclasses included).
impl<'a, 'py, T> FromPython<'a, 'py> for BTreeSet<T>
where
    T: for<'b> FromPython<'b, 'py> + Ord,
{
    const PYTHON_TYPE: &'static str = "set";
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        extract_set::<T, Self>(obj)
    }
}

/// A `set`.
impl<'py, T: IntoPython<'py>, S> IntoPython<'py> for HashSet<T, S> {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        set_from_iter(py, self)
    }
}

/// A `set`.
impl<'py, T: IntoPython<'py>> IntoPython<'py> for BTreeSet<T> {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        set_from_iter(py, self)
    }
}
