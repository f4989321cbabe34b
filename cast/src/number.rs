//! Numbers: `bool`, every integer width and `f32`/`f64`.
//!
//! Integers follow CPython's rules for `int` parameters: an `int` (subclasses and `bool`
//! included) or any object with `__index__`; never a `float`, never a `str`. A value out of
//! the Rust type's range is an `OverflowError` naming the value, the type and its range:
//! never truncated, never wrapped. Floats accept what CPython's `float` parameters accept:
//! a `float`, an `int`, or an object with `__float__` or `__index__`.

use std::fmt::Display;

use bindery_capsule::{Borrowed, Owned, Python};
use pyo3_ffi as ffi;

use crate::error::{CastError, rust_name, shorten};
use crate::traits::{FromPython, IntoPython, owned_or_err};

/// An `int` object: the argument itself, or what its `__index__` returned.
enum IntObject<'a, 'py> {
    Itself(Borrowed<'a, 'py>),
    Index(Owned<'py>),
}

impl<'py> IntObject<'_, 'py> {
    fn get(&self) -> Borrowed<'_, 'py> {
        match self {
            IntObject::Itself(obj) => *obj,
            IntObject::Index(obj) => obj.as_borrowed(),
        }
    }
}

/// The `int` for `obj` as CPython's `int` parameters see it: `obj` if it is an `int`, else
/// `obj.__index__()`; `T` only names the target in the error.
#[inline]
fn int_object<'a, 'py, T: ?Sized>(obj: Borrowed<'a, 'py>) -> Result<IntObject<'a, 'py>, CastError> {
    // SAFETY: `obj` is live; the check only reads its type's flags.
    if unsafe { ffi::PyLong_Check(obj.as_ptr()) } != 0 {
        return Ok(IntObject::Itself(obj));
    }
    // SAFETY: as above, reads the type's number slots.
    if unsafe { ffi::PyIndex_Check(obj.as_ptr()) } == 0 {
        return Err(CastError::wrong_type::<T>(obj));
    }
    // SAFETY: attached thread state (token in `obj`); returns a new reference (an exact
    // int, or an int subclass with a DeprecationWarning) or null with an exception set.
    let index = unsafe { ffi::PyNumber_Index(obj.as_ptr()) };
    owned_or_err(obj.py(), index).map(IntObject::Index)
}

/// An `int`'s value, if it fits in `i64`, else its sign.
enum Long {
    Fits(i64),
    Above,
    Below,
}

/// Reads an `int` (exact or subclass); runs no Python code.
#[inline]
fn long_value(int: Borrowed<'_, '_>) -> Long {
    let mut overflow = 0;
    // SAFETY: `int` is a live int object (callers), so no __index__ runs and no exception
    // is raised; `overflow` is a valid local.
    let value = unsafe { ffi::PyLong_AsLongLongAndOverflow(int.as_ptr(), &mut overflow) };
    match overflow {
        0 => Long::Fits(value),
        1 => Long::Above,
        _ => Long::Below,
    }
}

/// The decimal text of an `int` for messages (`int.__repr__`, so an int subclass's own
/// `__repr__` is not called), shortened when long.
fn int_text(int: Borrowed<'_, '_>) -> String {
    let py = int.py();
    // SAFETY: reading the tp_repr slot of the static int type.
    let repr = unsafe { ffi::PyLong_Type.tp_repr };
    let Some(repr) = repr else {
        return "<int>".to_owned();
    };
    // SAFETY: `int` is a live int (subclass) object, which int's repr accepts; attached
    // thread state; returns a new reference or null with an exception set.
    let text = unsafe { Owned::from_owned_ptr(py, repr(int.as_ptr())) };
    match text.and_then(|text| crate::error::utf8_of(text.as_borrowed()).map(shorten)) {
        Some(text) => text,
        None => {
            // SAFETY: attached thread state; 3.11+ refuses to print ints of more than
            // 4300 digits (ValueError): drop that error, the message says it differently.
            unsafe { ffi::PyErr_Clear() };
            "<an int too large to print>".to_owned()
        }
    }
}

fn overflow<T: ?Sized>(int: Borrowed<'_, '_>, min: impl Display, max: impl Display) -> CastError {
    CastError::Overflow {
        python: "int",
        value: int_text(int),
        rust: rust_name::<T>(),
        range: format!("{min}..={max}"),
    }
}

/// What every integer width needs for the generic conversions below.
trait Int: Copy + TryFrom<i64> + TryFrom<u64> + TryFrom<i128> + Display + 'static {
    const MIN: Self;
    const MAX: Self;
    /// Beyond 64 bits: read an `int` that does not fit in `i64`.
    fn from_wide(int: Borrowed<'_, '_>) -> Result<Self, CastError> {
        Err(overflow::<Self>(int, Self::MIN, Self::MAX))
    }
}

/// Reads an integer of type `T` from an `int` object.
#[inline]
fn int_from_long<T: Int>(int: Borrowed<'_, '_>) -> Result<T, CastError> {
    match long_value(int) {
        Long::Fits(value) => T::try_from(value).map_err(|_| overflow::<T>(int, T::MIN, T::MAX)),
        Long::Above | Long::Below => T::from_wide(int),
    }
}

/// `from_python` of every integer type: the exact-int fast path inline, the rest not.
#[inline]
fn int_from_python<T: Int>(obj: Borrowed<'_, '_>) -> Result<T, CastError> {
    match int_from_exact::<T>(obj) {
        Some(value) => Ok(value),
        None => int_from_python_slow::<T>(obj),
    }
}

#[inline(never)]
fn int_from_python_slow<T: Int>(obj: Borrowed<'_, '_>) -> Result<T, CastError> {
    let int = int_object::<T>(obj)?;
    int_from_long::<T>(int.get())
}

/// `from_python_exact` of every integer type: an exact `int` that fits.
#[inline]
fn int_from_exact<T: Int>(obj: Borrowed<'_, '_>) -> Option<T> {
    // SAFETY: `obj` is live; the check compares its type pointer.
    if unsafe { ffi::PyLong_CheckExact(obj.as_ptr()) } == 0 {
        return None;
    }
    // SAFETY: an exact int (checked); the token in `obj` proves an attached thread state.
    if let Some(value) = unsafe { crate::compat::small_int(obj.as_ptr()) } {
        return T::try_from(value).ok();
    }
    match long_value(obj) {
        Long::Fits(value) => T::try_from(value).ok(),
        Long::Above | Long::Below => None,
    }
}

/// `u64` values above `i64::MAX`.
fn u64_above_i64(int: Borrowed<'_, '_>) -> Result<u64, CastError> {
    // SAFETY: `int` is a live non-negative int; returns the value or (u64)-1 with an
    // OverflowError set.
    let value = unsafe { ffi::PyLong_AsUnsignedLongLong(int.as_ptr()) };
    // SAFETY: attached thread state.
    if value == u64::MAX && unsafe { !ffi::PyErr_Occurred().is_null() } {
        // SAFETY: attached thread state; the OverflowError is replaced by ours.
        unsafe { ffi::PyErr_Clear() };
        return Err(overflow::<u64>(int, u64::MIN, u64::MAX));
    }
    Ok(value)
}

/// A 128-bit value of an `int` as (high 64 bits as `i128`, low 64 bits), or `None` if the
/// high part does not fit in `i64` (the value needs more than 128 bits as signed).
fn split_128(int: Borrowed<'_, '_>) -> Result<Option<(i64, u64)>, CastError> {
    let py = int.py();
    // SAFETY: `int` is a live int; the mask conversion never fails for ints.
    let low = unsafe { ffi::PyLong_AsUnsignedLongLongMask(int.as_ptr()) };
    // SAFETY: attached thread state; a new int 64, or null with an exception set.
    let shift = owned_or_err(py, unsafe { ffi::PyLong_FromLong(64) })?;
    // SAFETY: both are live ints; int >> 64 never runs Python code for ints (their type's
    // nb_rshift), returns a new reference or null.
    let high = owned_or_err(py, unsafe {
        ffi::PyNumber_Rshift(int.as_ptr(), shift.as_ptr())
    })?;
    Ok(match long_value(high.as_borrowed()) {
        Long::Fits(high) => Some((high, low)),
        Long::Above | Long::Below => None,
    })
}

macro_rules! small_ints {
    ($($t:ty),*) => {$(
        impl Int for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
        }
    )*};
}
small_ints!(i8, i16, i32, i64, isize, u8, u16, u32);

impl Int for usize {
    const MIN: Self = usize::MIN;
    const MAX: Self = usize::MAX;
    fn from_wide(int: Borrowed<'_, '_>) -> Result<Self, CastError> {
        let fail = || overflow::<usize>(int, usize::MIN, usize::MAX);
        match long_value(int) {
            Long::Above => {
                usize::try_from(u64_above_i64(int).map_err(|_| fail())?).map_err(|_| fail())
            }
            _ => Err(fail()),
        }
    }
}

impl Int for u64 {
    const MIN: Self = u64::MIN;
    const MAX: Self = u64::MAX;
    fn from_wide(int: Borrowed<'_, '_>) -> Result<Self, CastError> {
        match long_value(int) {
            Long::Above => u64_above_i64(int),
            _ => Err(overflow::<u64>(int, u64::MIN, u64::MAX)),
        }
    }
}

impl Int for i128 {
    const MIN: Self = i128::MIN;
    const MAX: Self = i128::MAX;
    fn from_wide(int: Borrowed<'_, '_>) -> Result<Self, CastError> {
        match split_128(int)? {
            Some((high, low)) => Ok(((high as i128) << 64) | low as i128),
            None => Err(overflow::<i128>(int, i128::MIN, i128::MAX)),
        }
    }
}

impl Int for u128 {
    const MIN: Self = u128::MIN;
    const MAX: Self = u128::MAX;
    fn from_wide(int: Borrowed<'_, '_>) -> Result<Self, CastError> {
        let fail = || overflow::<u128>(int, u128::MIN, u128::MAX);
        if matches!(long_value(int), Long::Below) {
            return Err(fail());
        }
        // Values of 2**127 and above have a high part above i64::MAX: read it as u64.
        let py = int.py();
        // SAFETY: `int` is a live int; the mask conversion never fails for ints.
        let low = unsafe { ffi::PyLong_AsUnsignedLongLongMask(int.as_ptr()) };
        // SAFETY: attached thread state; new reference or null.
        let shift = owned_or_err(py, unsafe { ffi::PyLong_FromLong(64) })?;
        // SAFETY: live ints; returns a new reference or null.
        let high = owned_or_err(py, unsafe {
            ffi::PyNumber_Rshift(int.as_ptr(), shift.as_ptr())
        })?;
        let high = match long_value(high.as_borrowed()) {
            Long::Fits(high) => u64::try_from(high).map_err(|_| fail())?,
            Long::Above => u64_above_i64(high.as_borrowed()).map_err(|_| fail())?,
            Long::Below => return Err(fail()),
        };
        Ok(((high as u128) << 64) | low as u128)
    }
}

macro_rules! int_conversions {
    ($($t:ty => $into:expr),*) => {$(
        /// From an `int`, a `bool` or an object with `__index__`; out of range is an
        /// `OverflowError`.
        impl<'a, 'py> FromPython<'a, 'py> for $t {
            const PYTHON_TYPE: &'static str = "int";
            #[inline]
            fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
                int_from_python::<$t>(obj)
            }
            #[inline]
            fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
                int_from_exact::<$t>(obj)
            }
        }

        /// To an `int`.
        impl<'py> IntoPython<'py> for $t {
            #[inline]
            fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
                #[allow(clippy::redundant_closure_call)]
                let object = ($into)(py, self);
                object
            }
        }
    )*};
}

#[inline]
fn from_i64(py: Python<'_>, value: i64) -> Result<Owned<'_>, CastError> {
    // SAFETY: attached thread state (token); returns a new reference or null.
    owned_or_err(py, unsafe { ffi::PyLong_FromLongLong(value) })
}

#[inline]
fn from_u64(py: Python<'_>, value: u64) -> Result<Owned<'_>, CastError> {
    // SAFETY: attached thread state (token); returns a new reference or null.
    owned_or_err(py, unsafe { ffi::PyLong_FromUnsignedLongLong(value) })
}

/// `(high << 64) | low` as a Python int.
fn from_parts<'py>(py: Python<'py>, high: Owned<'py>, low: u64) -> Result<Owned<'py>, CastError> {
    let low = from_u64(py, low)?;
    let shift = from_i64(py, 64)?;
    // SAFETY: live ints; attached thread state; new references or null.
    let shifted = owned_or_err(py, unsafe {
        ffi::PyNumber_Lshift(high.as_ptr(), shift.as_ptr())
    })?;
    // SAFETY: as above.
    owned_or_err(py, unsafe {
        ffi::PyNumber_Or(shifted.as_ptr(), low.as_ptr())
    })
}

fn from_i128(py: Python<'_>, value: i128) -> Result<Owned<'_>, CastError> {
    match i64::try_from(value) {
        Ok(small) => from_i64(py, small),
        // The high part of an i128 always fits in i64 (arithmetic shift keeps the sign).
        Err(_) => from_parts(py, from_i64(py, (value >> 64) as i64)?, value as u64),
    }
}

fn from_u128(py: Python<'_>, value: u128) -> Result<Owned<'_>, CastError> {
    match u64::try_from(value) {
        Ok(small) => from_u64(py, small),
        Err(_) => from_parts(py, from_u64(py, (value >> 64) as u64)?, value as u64),
    }
}

int_conversions!(
    i8 => |py, v: i8| from_i64(py, i64::from(v)),
    i16 => |py, v: i16| from_i64(py, i64::from(v)),
    i32 => |py, v: i32| from_i64(py, i64::from(v)),
    i64 => from_i64,
    isize => |py, v: isize| from_i64(py, v as i64),
    u16 => |py, v: u16| from_i64(py, i64::from(v)),
    u32 => |py, v: u32| from_i64(py, i64::from(v)),
    u64 => from_u64,
    usize => |py, v: usize| from_u64(py, v as u64),
    i128 => from_i128,
    u128 => from_u128
);

/// From an `int`, a `bool` or an object with `__index__` (out of range is an
/// `OverflowError`); a `Vec<u8>` is also read from `bytes` and `bytearray`.
impl<'a, 'py> FromPython<'a, 'py> for u8 {
    const PYTHON_TYPE: &'static str = "int";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        int_from_python::<u8>(obj)
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        int_from_exact::<u8>(obj)
    }
    #[inline]
    fn vec_from_bytes(bytes: &[u8]) -> Option<Vec<Self>> {
        Some(bytes.to_vec())
    }
}

/// To an `int`; a `Vec<u8>` becomes `bytes`.
impl<'py> IntoPython<'py> for u8 {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        from_i64(py, i64::from(self))
    }
    fn vec_into_python(items: Vec<Self>, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        crate::text::bytes_object(py, &items)
    }
}

/// Only `True` and `False`: other objects' truth values are not taken for a `bool`
/// (`bool("no")` is `True`).
impl<'a, 'py> FromPython<'a, 'py> for bool {
    const PYTHON_TYPE: &'static str = "bool";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        Self::from_python_exact(obj).ok_or_else(|| CastError::wrong_type::<bool>(obj))
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        // SAFETY: reading the addresses of the two bool singletons.
        let (yes, no) = unsafe { (ffi::Py_True(), ffi::Py_False()) };
        if obj.as_ptr() == yes {
            Some(true)
        } else if obj.as_ptr() == no {
            Some(false)
        } else {
            None
        }
    }
}

/// `True` or `False`.
impl<'py> IntoPython<'py> for bool {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        // SAFETY: the bool singletons live as long as the interpreter; from_borrowed_ptr
        // takes a new reference.
        let object = unsafe {
            if self {
                ffi::Py_True()
            } else {
                ffi::Py_False()
            }
        };
        // SAFETY: a live object (see above).
        Ok(unsafe { Owned::from_borrowed_ptr(py, object) }.expect("bool singletons exist"))
    }
}

/// The exact `float` fast path: the value read inline from the object, no call.
#[inline]
fn exact_float(obj: Borrowed<'_, '_>) -> Option<f64> {
    // SAFETY: `obj` is live; the check compares its type pointer.
    if unsafe { ffi::PyFloat_CheckExact(obj.as_ptr()) } != 0 {
        // SAFETY: an exact float is a PyFloatObject; ob_fval is immutable.
        Some(unsafe { (*obj.as_ptr().cast::<ffi::PyFloatObject>()).ob_fval })
    } else {
        None
    }
}

/// `f64` from anything CPython's `float` parameters take; `T` names the target in errors.
#[inline(never)]
fn float_from_python<T: ?Sized>(obj: Borrowed<'_, '_>) -> Result<f64, CastError> {
    if let Some(value) = exact_float(obj) {
        return Ok(value);
    }
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is live; the check reads its type.
    if unsafe { ffi::PyFloat_Check(ptr) } != 0 {
        // SAFETY: a float subclass instance is laid out as a PyFloatObject.
        return Ok(unsafe { ffi::PyFloat_AS_DOUBLE(ptr) });
    }
    // SAFETY: as above.
    if unsafe { ffi::PyLong_Check(ptr) } != 0 {
        // SAFETY: a live int; no Python code runs; -1.0 with OverflowError if too large.
        let value = unsafe { ffi::PyLong_AsDouble(ptr) };
        // SAFETY: attached thread state.
        if value == -1.0 && unsafe { !ffi::PyErr_Occurred().is_null() } {
            // SAFETY: attached thread state; the OverflowError is replaced by ours.
            unsafe { ffi::PyErr_Clear() };
            return Err(CastError::Overflow {
                python: "int",
                value: int_text(obj),
                rust: rust_name::<T>(),
                range: format!("-{0:e}..={0:e}", f64::MAX),
            });
        }
        return Ok(value);
    }
    // SAFETY: reading the number slots of the live object's type.
    let convertible = unsafe {
        let number = (*ffi::Py_TYPE(ptr)).tp_as_number;
        !number.is_null() && ((*number).nb_float.is_some() || (*number).nb_index.is_some())
    };
    if !convertible {
        return Err(CastError::wrong_type::<T>(obj));
    }
    // SAFETY: attached thread state; calls __float__ / __index__; -1.0 with an exception
    // set on failure.
    let value = unsafe { ffi::PyFloat_AsDouble(ptr) };
    // SAFETY: attached thread state.
    if value == -1.0 && unsafe { !ffi::PyErr_Occurred().is_null() } {
        return Err(CastError::fetch(obj.py()));
    }
    Ok(value)
}

/// From a `float`, an `int` (exactly when it fits, else `OverflowError`) or an object with
/// `__float__` / `__index__`.
impl<'a, 'py> FromPython<'a, 'py> for f64 {
    const PYTHON_TYPE: &'static str = "float";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        match exact_float(obj) {
            Some(value) => Ok(value),
            None => float_from_python::<f64>(obj),
        }
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        exact_float(obj)
    }
}

/// As `f64`, then rounded to the nearest `f32`; a finite value beyond `f32`'s range is an
/// `OverflowError` (infinities and NaN pass through).
impl<'a, 'py> FromPython<'a, 'py> for f32 {
    const PYTHON_TYPE: &'static str = "float";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let value = float_from_python::<f32>(obj)?;
        let narrow = value as f32;
        if narrow.is_infinite() && value.is_finite() {
            return Err(CastError::Overflow {
                python: "float",
                value: format!("{value:e}"),
                rust: "f32".to_owned(),
                range: format!("-{0:e}..={0:e}", f32::MAX),
            });
        }
        Ok(narrow)
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        let value = exact_float(obj)?;
        let narrow = value as f32;
        (!narrow.is_infinite() || value.is_infinite()).then_some(narrow)
    }
}

/// To a `float`.
impl<'py> IntoPython<'py> for f64 {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        // SAFETY: attached thread state (token); returns a new reference or null.
        owned_or_err(py, unsafe { ffi::PyFloat_FromDouble(self) })
    }
}

/// To a `float` (exactly: every `f32` is an `f64`).
impl<'py> IntoPython<'py> for f32 {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        f64::from(self).into_python(py)
    }
}
