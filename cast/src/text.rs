//! Text and bytes: `String`, `&str`, `char`, `&[u8]` (and `Vec<u8>` through the sequence
//! code), `PathBuf`.
//!
//! Rust text is always valid UTF-8, so a `str` holding a lone surrogate (`"\ud800"`, which
//! Python allows) is refused with a `UnicodeError` naming the code point and its index.

use std::path::{Path, PathBuf};

use bindery_capsule::{Borrowed, Owned, Python};
use pyo3_ffi as ffi;

use crate::compat;
use crate::error::{CastError, rust_name, utf8_of};
use crate::traits::{FromPython, IntoPython, owned_or_err};

/// The UTF-8 text of a `str` (subclasses included), borrowed from it for `'a`; `T` names
/// the target in errors.
fn str_contents<'a, T: ?Sized>(obj: Borrowed<'a, '_>) -> Result<&'a str, CastError> {
    // SAFETY: `obj` is live; the check reads its type's flags.
    if unsafe { ffi::PyUnicode_Check(obj.as_ptr()) } == 0 {
        return Err(CastError::wrong_type::<T>(obj));
    }
    utf8_of(obj).ok_or_else(|| unicode_error::<T>(obj))
}

/// Why a `str` could not be encoded as UTF-8 (the pending error is consumed): a lone
/// surrogate, named with its index; any other failure (memory) is passed on.
fn unicode_error<T: ?Sized>(obj: Borrowed<'_, '_>) -> CastError {
    let py = obj.py();
    let raised = CastError::fetch(py);
    match first_surrogate(obj) {
        Some((index, code)) => CastError::Unicode {
            rust: rust_name::<T>(),
            reason: format!(
                "it holds the lone surrogate U+{code:04X} at index {index}, which UTF-8 \
                 cannot encode (Rust text is always valid UTF-8)"
            ),
        },
        None => raised,
    }
}

/// The first lone surrogate in a `str`: (index, code point).
fn first_surrogate(obj: Borrowed<'_, '_>) -> Option<(usize, u32)> {
    // SAFETY: `obj` is a live str (callers).
    let len = unsafe { ffi::PyUnicode_GetLength(obj.as_ptr()) };
    (0..len.max(0)).find_map(|i| {
        // SAFETY: `i` is in bounds of the live str; reading never fails then.
        let code = unsafe { ffi::PyUnicode_ReadChar(obj.as_ptr(), i) };
        (0xD800..=0xDFFF)
            .contains(&code)
            .then_some((i as usize, code))
    })
}

/// The exact `str` fast path: no Python code; `None` (and no error left) if the text cannot
/// be encoded, so the full path reports it.
#[inline]
fn exact_str<'a>(obj: Borrowed<'a, '_>) -> Option<&'a str> {
    // SAFETY: `obj` is live; the check compares its type pointer.
    if unsafe { ffi::PyUnicode_CheckExact(obj.as_ptr()) } == 0 {
        return None;
    }
    let text = utf8_of(obj);
    if text.is_none() {
        // SAFETY: attached thread state; the full path will raise the error again.
        unsafe { ffi::PyErr_Clear() };
    }
    text
}

/// From a `str` (subclasses included), copied; lone surrogates are a `UnicodeError`.
impl<'a, 'py> FromPython<'a, 'py> for String {
    const PYTHON_TYPE: &'static str = "str";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        str_contents::<String>(obj).map(str::to_owned)
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        exact_str(obj).map(str::to_owned)
    }
}

/// From a `str`, borrowed from it without copying (CPython keeps the UTF-8 form inside the
/// `str` object, so it lives as long as the object).
impl<'a, 'py> FromPython<'a, 'py> for &'a str {
    const PYTHON_TYPE: &'static str = "str";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        str_contents::<&str>(obj)
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        exact_str(obj)
    }
}

/// From a `str` of exactly one character; a lone surrogate is a `UnicodeError`.
impl<'a, 'py> FromPython<'a, 'py> for char {
    const PYTHON_TYPE: &'static str = "str";
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let ptr = obj.as_ptr();
        // SAFETY: `obj` is live; the check reads its type's flags.
        if unsafe { ffi::PyUnicode_Check(ptr) } == 0 {
            return Err(CastError::wrong_type::<char>(obj));
        }
        // SAFETY: a live str.
        let len = unsafe { ffi::PyUnicode_GetLength(ptr) };
        if len != 1 {
            return Err(CastError::CharLength {
                len: len.max(0) as usize,
            });
        }
        // SAFETY: index 0 is in bounds of the live str.
        let code = unsafe { ffi::PyUnicode_ReadChar(ptr, 0) };
        char::from_u32(code).ok_or_else(|| CastError::Unicode {
            rust: "char".to_owned(),
            reason: format!(
                "it is the lone surrogate U+{code:04X}, which is not a Unicode scalar value"
            ),
        })
    }
}

/// The `bytes` object for `data`.
pub(crate) fn bytes_object<'py>(py: Python<'py>, data: &[u8]) -> Result<Owned<'py>, CastError> {
    // SAFETY: attached thread state; `data` is valid for its length; copies.
    owned_or_err(py, unsafe {
        ffi::PyBytes_FromStringAndSize(data.as_ptr().cast(), data.len() as ffi::Py_ssize_t)
    })
}

/// The contents of a `bytes` object (subclasses included), borrowed from it.
fn bytes_contents<'a>(obj: Borrowed<'a, '_>) -> Option<&'a [u8]> {
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is live; the check reads its type's flags.
    if unsafe { ffi::PyBytes_Check(ptr) } == 0 {
        return None;
    }
    // SAFETY: a live bytes object: its buffer holds GET_SIZE bytes, is immutable and lives
    // as long as the object, i.e. for 'a.
    Some(unsafe {
        std::slice::from_raw_parts(
            ffi::PyBytes_AS_STRING(ptr).cast::<u8>(),
            ffi::Py_SIZE(ptr) as usize,
        )
    })
}

/// Runs `f` on the contents of a `bytes` or `bytearray` object (`None` for other objects).
/// `f` gets a plain slice and cannot run Python code, so a `bytearray` cannot change while
/// it is read.
pub(crate) fn with_bytes_like<R>(obj: Borrowed<'_, '_>, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    if let Some(data) = bytes_contents(obj) {
        return Some(f(data));
    }
    let ptr = obj.as_ptr();
    // SAFETY: `obj` is live; the check reads its type.
    if unsafe { ffi::PyByteArray_Check(ptr) } == 0 {
        return None;
    }
    // SAFETY: a live bytearray; the buffer holds Size bytes (it may be null when empty)
    // and stays put while `f`, which has no token, runs.
    let data = unsafe {
        let len = ffi::PyByteArray_Size(ptr) as usize;
        let data = ffi::PyByteArray_AsString(ptr).cast::<u8>();
        if len == 0 || data.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(data, len)
        }
    };
    Some(f(data))
}

/// From `bytes` only, borrowed without copying (a `bytearray` could be resized while the
/// slice lives: read it as `Vec<u8>` instead).
impl<'a, 'py> FromPython<'a, 'py> for &'a [u8] {
    const PYTHON_TYPE: &'static str = "bytes";
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        bytes_contents(obj).ok_or_else(|| CastError::wrong_type::<&[u8]>(obj))
    }
    #[inline]
    fn from_python_exact(obj: Borrowed<'a, 'py>) -> Option<Self> {
        bytes_contents(obj)
    }
}

/// A `str`.
impl<'py> IntoPython<'py> for &str {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        // SAFETY: attached thread state; valid UTF-8 of the given length; copies.
        owned_or_err(py, unsafe {
            ffi::PyUnicode_FromStringAndSize(self.as_ptr().cast(), self.len() as ffi::Py_ssize_t)
        })
    }
}

/// A `str`.
impl<'py> IntoPython<'py> for String {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        self.as_str().into_python(py)
    }
}

/// A `str`.
impl<'py> IntoPython<'py> for &String {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        self.as_str().into_python(py)
    }
}

/// A `str` of one character.
impl<'py> IntoPython<'py> for char {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        self.encode_utf8(&mut [0; 4]).into_python(py)
    }
}

/// `bytes`.
impl<'py> IntoPython<'py> for &[u8] {
    #[inline]
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        bytes_object(py, self)
    }
}

/// From a `str`, `bytes` or any `os.PathLike` (what `os.fspath` accepts); a `str` is
/// encoded as `os.fsencode` does (so undecodable file names round-trip).
impl<'a, 'py> FromPython<'a, 'py> for PathBuf {
    const PYTHON_TYPE: &'static str = "str or os.PathLike";
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let py = obj.py();
        // SAFETY: attached thread state; os.fspath(obj): a new str or bytes, or null with
        // TypeError for other objects.
        let path = unsafe { ffi::PyOS_FSPath(obj.as_ptr()) };
        let path = match owned_or_err(py, path) {
            Ok(path) => path,
            Err(CastError::Python(raised)) if raised.type_name() == "TypeError" => {
                return Err(CastError::wrong_type::<PathBuf>(obj));
            }
            Err(other) => return Err(other),
        };
        let encoded;
        let bytes = match bytes_contents(path.as_borrowed()) {
            Some(bytes) => bytes,
            None => {
                // SAFETY: attached thread state; `path` is a live str (os.fspath returns
                // str or bytes); returns new bytes (surrogateescape) or null.
                encoded =
                    owned_or_err(py, unsafe { ffi::PyUnicode_EncodeFSDefault(path.as_ptr()) })
                        .map_err(|error| match error {
                            CastError::Python(_) => unicode_error::<PathBuf>(path.as_borrowed()),
                            other => other,
                        })?;
                bytes_contents(encoded.as_borrowed()).expect("EncodeFSDefault returns bytes")
            }
        };
        compat::os_string_from_bytes(bytes)
            .map(PathBuf::from)
            .ok_or_else(|| CastError::Unicode {
                rust: "PathBuf".to_owned(),
                reason: "the path is not valid UTF-8, which this platform needs".to_owned(),
            })
    }
}

/// A `str`, decoded as `os.fsdecode` does.
impl<'py> IntoPython<'py> for &Path {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        let Some(bytes) = compat::os_str_bytes(self.as_os_str()) else {
            return Err(CastError::Unicode {
                rust: "Path".to_owned(),
                reason: "the path is not valid UTF-8, which this platform needs".to_owned(),
            });
        };
        // SAFETY: attached thread state; `bytes` is valid for its length; copies.
        owned_or_err(py, unsafe {
            ffi::PyUnicode_DecodeFSDefaultAndSize(
                bytes.as_ptr().cast(),
                bytes.len() as ffi::Py_ssize_t,
            )
        })
    }
}

/// A `str`, decoded as `os.fsdecode` does.
impl<'py> IntoPython<'py> for PathBuf {
    fn into_python(self, py: Python<'py>) -> Result<Owned<'py>, CastError> {
        self.as_path().into_python(py)
    }
}
