//! The two conversion traits, [`IntoPython`] and [`FromPython`], their entry points
//! [`to_python`] and [`cast`], and the handle conversions (`Owned`, `Borrowed`).

use bindery_capsule::{Borrowed, Handle, Owned, Python};
use pyo3_ffi as ffi;

use crate::error::CastError;

/// A Rust value that can become a Python object.
///
/// ```text
/// to_python(py, 3_i64)?              -> int
/// to_python(py, vec![1.0, 2.0])?     -> list of float
/// ```
pub trait IntoPython<'py>: Sized {
    /// Converts `self` into a new Python object (a strong reference).
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError>;

    /// How a `Vec<Self>` becomes Python: a `list` of the items, except `Vec<u8>`, which
    /// becomes `bytes`. Implementations other than `u8`'s keep the default.
    #[doc(hidden)]
    fn vec_into_python(items: Vec<Self>, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        crate::seq::list_from_iter(py, items.len(), items)
    }
}

/// A Rust value that can be read from a Python object.
///
/// `'a` is how long the object is borrowed: types that borrow from the object (`&'a str`,
/// `&'a [u8]`, the guards [`Ref`](crate::Ref) and [`RefMut`](crate::RefMut)) live that long.
/// Containers (`Vec<T>`, maps, tuples, ...) only hold element types that do not borrow
/// (`T: for<'b> FromPython<'b, 'py>`): the items of a list or dict may be replaced, and
/// freed, while the Rust value lives.
pub trait FromPython<'a, 'py>: Sized {
    /// The Python type(s) this type accepts, for messages (`int`, `str`, ...).
    const PYTHON_TYPE: &'static str = "object";

    /// Converts the object, or says why not.
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError>;

    /// A conversion that runs no Python code (no method call, no reference count change)
    /// and therefore cannot be disturbed by it: the fast path containers use on items they
    /// read in place. `None` means "take [`FromPython::from_python`]", which must then give
    /// the same result. The default always says `None`.
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        let _ = obj;
        None
    }

    /// Reading a `Vec<Self>` from `bytes` or `bytearray` contents: `Some` only for `u8`.
    #[doc(hidden)]
    #[inline]
    fn vec_from_bytes(bytes: &[u8]) -> Option<Vec<Self>> {
        let _ = bytes;
        None
    }
}

/// Converts a Python object to `T`: the one entry point for Python -> Rust.
///
/// ```text
/// let n: i64 = cast(obj)?;                 // int, or an object with __index__
/// let name: &str = cast(obj)?;             // borrowed from the str, no copy
/// let v: Vec<f64> = cast(obj)?;            // list or tuple read in place
/// let p: Ref<Point> = cast(obj)?;          // registered class, shared borrow
/// ```
#[inline]
pub fn cast<'a, 'py, T: FromPython<'a, 'py>>(obj: Borrowed<'a, 'py>) -> Result<T, CastError> {
    T::from_python(obj)
}

/// Converts a Rust value to a new Python object: the one entry point for Rust -> Python.
#[inline]
pub fn to_python<'py, T: IntoPython<'py>>(
    py: Python<'py>,
    value: T,
) -> Result<Owned<'py>, CastError> {
    value.into_python(py)
}

/// Takes ownership of a new reference returned by a C API call; a null return becomes the
/// pending exception as [`CastError::Python`].
#[inline]
pub(crate) fn owned_or_err(py: Python<'_>, p: *mut ffi::PyObject) -> Result<Owned<'_>, CastError> {
    // SAFETY: every caller passes the result of a C API call that returns a new reference
    // or null with an exception set.
    match unsafe { Owned::from_owned_ptr(py, p) } {
        Some(obj) => Ok(obj),
        None => Err(CastError::fetch(py)),
    }
}

/// Any object, as a new strong reference.
impl<'a, 'py> FromPython<'a, 'py> for Owned<'py> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        Ok(obj.to_owned())
    }
}

/// Any object, as a storable strong reference (for Rust values that keep Python objects,
/// such as containers with GC support).
impl<'a, 'py> FromPython<'a, 'py> for Handle {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        Ok(Handle::from_borrowed(obj))
    }
}

/// The object the handle refers to (a new reference).
impl<'py> IntoPython<'py> for Handle {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        Ok(self.into_owned(py))
    }
}

/// The object the handle refers to (a new reference).
impl<'py> IntoPython<'py> for &Handle {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        Ok(self.bind(py).to_owned())
    }
}

/// Any object, borrowed.
impl<'a, 'py> FromPython<'a, 'py> for Borrowed<'a, 'py> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        Ok(obj)
    }
}

/// The object itself.
impl<'py> IntoPython<'py> for Owned<'py> {
    #[inline]
    fn into_python(self, _py: Python<'py>) -> Result<Owned<'py>, CastError> {
        Ok(self)
    }
}

/// A new reference to the object.
impl<'py> IntoPython<'py> for &Owned<'py> {
    #[inline]
    fn into_python(self, _py: Python<'py>) -> Result<Owned<'py>, CastError> {
        Ok(self.clone())
    }
}

/// A new reference to the object.
impl<'py> IntoPython<'py> for Borrowed<'_, 'py> {
    #[inline]
    fn into_python(self, _py: Python<'py>) -> Result<Owned<'py>, CastError> {
        Ok(self.to_owned())
    }
}
