//! [`CastError`]: why a value could not be converted, as data, with the Python exception class
//! it becomes ([`ExceptionKind`]); and [`PythonException`], an exception raised by Python code
//! during a conversion (an `__index__` that raised, a failed allocation), kept intact.

use std::fmt;
use std::ptr::NonNull;

use bindery_capsule::{Borrowed, Owned, Python};
use pyo3_ffi as ffi;

use crate::compat;

/// Why a conversion between Rust and Python failed.
///
/// Every message names the Python type, the Rust type and, where it helps, the value, and
/// [`CastError::kind`] says which Python exception it becomes ([`CastError::restore`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CastError {
    /// The Python object's type is not one the Rust type accepts. `TypeError`.
    #[error("cannot convert Python '{python}' to Rust '{rust}'")]
    WrongType {
        /// The Python type of the object, e.g. `str`.
        python: String,
        /// The Rust type asked for, e.g. `i64`.
        rust: String,
    },

    /// A number does not fit in the Rust type: never truncated, never wrapped.
    /// `OverflowError`.
    #[error("Python {python} {value} does not fit in Rust '{rust}' (range {range})")]
    Overflow {
        /// `int` or `float`.
        python: &'static str,
        /// The value as Python prints it (long values are shortened).
        value: String,
        /// The Rust type asked for.
        rust: String,
        /// The range the Rust type can hold, e.g. `0..=255`.
        range: String,
    },

    /// A sequence has the wrong length for a fixed-size Rust type (an array or a tuple).
    /// `ValueError`.
    #[error("expected a sequence of length {expected} for Rust '{rust}', got {got}")]
    Length {
        /// The length the Rust type needs.
        expected: usize,
        /// The length of the Python sequence.
        got: usize,
        /// The Rust type asked for, e.g. `[f64; 3]`.
        rust: String,
    },

    /// A `str` for a Rust `char` does not hold exactly one character. `ValueError`.
    #[error("expected a str of length 1 for Rust 'char', got a str of length {len}")]
    CharLength {
        /// The length (in code points) of the Python `str`.
        len: usize,
    },

    /// A dict key has a type the Rust map's key type does not accept. `TypeError`.
    #[error("dict keys must be '{expected}' for Rust '{rust}', got '{python}'")]
    DictKey {
        /// What the key type accepts, e.g. `str`.
        expected: &'static str,
        /// The Python type of the offending key.
        python: String,
        /// The Rust map type, e.g. `HashMap<String, i64>`.
        rust: String,
    },

    /// A `str` cannot become Rust text: it holds a lone surrogate, which UTF-8 cannot encode
    /// (Rust strings are always valid UTF-8). `UnicodeError`.
    #[error("cannot convert Python 'str' to Rust '{rust}': {reason}")]
    Unicode {
        /// The Rust type asked for.
        rust: String,
        /// What is wrong with the text, and where.
        reason: String,
    },

    /// A Python container changed size while it was being converted (Python code run by an
    /// element's conversion, such as `__index__`, mutated it). `RuntimeError`.
    #[error("Python '{python}' changed size while it was converted to Rust '{rust}'")]
    Mutated {
        /// The container's Python type.
        python: String,
        /// The Rust type asked for.
        rust: String,
    },

    /// The Rust type of a registered class has no Python type in this interpreter: no module
    /// registered it (or registered it module-locally in another module). `TypeError`.
    #[error(
        "cannot convert Python '{python}' to Rust '{rust}': the Rust type is not registered \
         in this interpreter; register it with bindery_cast::register_class (or the \
         facade's class builder) in the module's exec slot"
    )]
    Unregistered {
        /// The Python type of the object (`None` when converting from Rust to Python).
        python: String,
        /// The full path of the Rust type.
        rust: &'static str,
    },

    /// A Rust value of a registered class cannot become Python: no module registered its
    /// type in this interpreter. `TypeError`.
    #[error(
        "cannot convert Rust '{rust}' to Python: the Rust type is not registered in this \
         interpreter; register it with bindery_cast::register_class (or the facade's class \
         builder) in the module's exec slot"
    )]
    UnregisteredValue {
        /// The full path of the Rust type.
        rust: &'static str,
    },

    /// The internals (the type registries) of this interpreter could not be had.
    /// `RuntimeError`.
    #[error(transparent)]
    Internals(#[from] bindery_internals::InternalsError),

    /// The type registered under a class's stable type key holds a Rust value of another
    /// size or alignment: the modules were built from different sources under the same key.
    /// `TypeError`.
    #[error(
        "cannot convert Python '{python}' to Rust '{rust}': type key '{type_key}' is \
         registered by module '{module}' for a Rust value of {registered_size} bytes \
         (align {registered_align}), but this module's '{rust}' has {size} bytes (align \
         {align}); both modules must be built from the same source of the type, or use \
         different type keys"
    )]
    LayoutMismatch {
        /// The Python type of the object.
        python: String,
        /// The full path of the Rust type.
        rust: &'static str,
        /// The stable type key.
        type_key: &'static str,
        /// The module that registered the key.
        module: String,
        /// Size recorded by that module.
        registered_size: usize,
        /// Alignment recorded by that module.
        registered_align: usize,
        /// `size_of` of the Rust type here.
        size: usize,
        /// `align_of` of the Rust type here.
        align: usize,
    },

    /// An instance of a registered class holds no Rust value: it was made without running
    /// the class's constructor (`Cls.__new__(Cls)`), or its value was already dropped.
    /// `TypeError`.
    #[error(
        "cannot convert Python '{python}' to Rust '{rust}': the instance holds no Rust value \
         (it was created without calling the class's constructor, or it was already \
         cleared); create it by calling the class"
    )]
    Uninitialized {
        /// The Python type of the object.
        python: String,
        /// The full path of the Rust type.
        rust: &'static str,
    },

    /// A registered instance is borrowed in a way that conflicts with the borrow asked for:
    /// a shared borrow while it is mutably borrowed, or a mutable borrow while it is
    /// borrowed at all. Never aliasing: the second borrow is refused. `RuntimeError`.
    #[error(
        "cannot borrow Python '{python}' as Rust '{what}{rust}': it is already {held} \
         (by a call that is still running, e.g. one that called back into Python)"
    )]
    AlreadyBorrowed {
        /// The Python type of the object.
        python: String,
        /// The full path of the Rust type.
        rust: &'static str,
        /// `&` or `&mut `.
        what: &'static str,
        /// `mutably borrowed` or `borrowed`.
        held: &'static str,
    },

    /// An element of a container failed; `source` says why. The exception class is the
    /// source's.
    #[error("{item} of Python '{python}' for Rust '{rust}': {source}")]
    Item {
        /// Which element: `item 3`, `key 'a'`, `value for key 'a'`.
        item: String,
        /// The container's Python type.
        python: String,
        /// The Rust container type.
        rust: String,
        /// Why the element failed.
        source: Box<CastError>,
    },

    /// Python code run by the conversion raised (an `__index__` or `__float__` method, an
    /// iterator, an allocation). The exception is kept and re-raised unchanged.
    #[error("{0}")]
    Python(PythonException),
}

/// The Python exception class a [`CastError`] becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionKind {
    /// `TypeError`.
    TypeError,
    /// `ValueError`.
    ValueError,
    /// `OverflowError`.
    OverflowError,
    /// `UnicodeError` (a `ValueError`).
    UnicodeError,
    /// `RuntimeError`.
    RuntimeError,
    /// The class of an exception Python raised during the conversion, kept as is.
    Raised,
}

impl CastError {
    /// The Python exception class this error becomes.
    pub fn kind(&self) -> ExceptionKind {
        match self {
            CastError::WrongType { .. }
            | CastError::DictKey { .. }
            | CastError::Unregistered { .. }
            | CastError::UnregisteredValue { .. }
            | CastError::LayoutMismatch { .. }
            | CastError::Uninitialized { .. } => ExceptionKind::TypeError,
            CastError::Overflow { .. } => ExceptionKind::OverflowError,
            CastError::Length { .. } | CastError::CharLength { .. } => ExceptionKind::ValueError,
            CastError::Unicode { .. } => ExceptionKind::UnicodeError,
            CastError::Mutated { .. }
            | CastError::AlreadyBorrowed { .. }
            | CastError::Internals(_) => ExceptionKind::RuntimeError,
            CastError::Item { source, .. } => source.kind(),
            CastError::Python(_) => ExceptionKind::Raised,
        }
    }

    /// The innermost error (through [`CastError::Item`] wrappers).
    pub fn root(&self) -> &CastError {
        match self {
            CastError::Item { source, .. } => source.root(),
            other => other,
        }
    }

    /// Makes this error the pending Python exception: the class of [`CastError::kind`] with
    /// this error's message, or, for an exception Python raised ([`CastError::Python`],
    /// also inside [`CastError::Item`]), that very exception, unchanged.
    pub fn restore(self, py: Python<'_>) {
        let kind = self.kind();
        if kind == ExceptionKind::Raised {
            if let CastError::Python(exception) = self.into_root() {
                exception.restore(py);
            }
            return;
        }
        let message = self.to_string();
        // SAFETY: reading exception class statics of libpython; the token proves an
        // attached thread state.
        let class = unsafe {
            match kind {
                ExceptionKind::TypeError => ffi::PyExc_TypeError,
                ExceptionKind::ValueError => ffi::PyExc_ValueError,
                ExceptionKind::OverflowError => ffi::PyExc_OverflowError,
                ExceptionKind::UnicodeError => ffi::PyExc_UnicodeError,
                ExceptionKind::RuntimeError | ExceptionKind::Raised => ffi::PyExc_RuntimeError,
            }
        };
        set_error(py, class, &message);
    }

    /// The Python exception instance this error becomes (what [`CastError::restore`] would
    /// raise), without leaving it pending.
    pub fn into_python_exception(self, py: Python<'_>) -> Owned<'_> {
        self.restore(py);
        // SAFETY: attached thread state (token); `restore` left an exception pending.
        let exc = unsafe { compat::take_exception() };
        // SAFETY: a new reference to the exception instance.
        unsafe { Owned::from_owned_ptr(py, exc.map_or(std::ptr::null_mut(), NonNull::as_ptr)) }
            .expect("restore always leaves an exception pending")
    }

    fn into_root(self) -> CastError {
        match self {
            CastError::Item { source, .. } => source.into_root(),
            other => other,
        }
    }

    /// The pending Python exception as a [`CastError::Python`] (taking it out of the thread
    /// state). If none is pending (a C API call returned NULL without setting one), a
    /// `SystemError` saying so stands in for it.
    pub fn fetch(py: Python<'_>) -> CastError {
        CastError::Python(PythonException::fetch(py))
    }

    /// [`CastError::WrongType`] for `obj` and the Rust type `T` (named without its module
    /// path, as in `Vec<String>`).
    pub fn wrong_type<T: ?Sized>(obj: Borrowed<'_, '_>) -> CastError {
        CastError::WrongType {
            python: obj.type_name(),
            rust: rust_name::<T>(),
        }
    }

    /// Wraps an element's error with where it happened.
    pub(crate) fn in_item<T: ?Sized>(self, item: String, container: Borrowed<'_, '_>) -> Self {
        CastError::Item {
            item,
            python: container.type_name(),
            rust: rust_name::<T>(),
            source: Box::new(self),
        }
    }
}

/// Sets `class(message)` as the pending exception.
pub(crate) fn set_error(_py: Python<'_>, class: *mut ffi::PyObject, message: &str) {
    let message = std::ffi::CString::new(message.replace('\0', "\\0"))
        .expect("NUL bytes were replaced just above");
    // SAFETY: attached thread state (token); `class` is an exception class, the message a
    // valid C string (copied by CPython).
    unsafe { ffi::PyErr_SetString(class, message.as_ptr()) };
}

/// A Python exception raised during a conversion, owned until it is re-raised
/// ([`PythonException::restore`]) or dropped.
///
/// Its type name and message are read when it is taken, so printing it needs no Python.
/// Dropping it releases the exception if the dropping thread is attached to the interpreter
/// it came from; anywhere else (another thread without a thread state, another interpreter)
/// the one reference is deliberately leaked rather than released unsafely.
pub struct PythonException {
    /// The exception instance (one strong reference), or `None` when a C API call failed
    /// without setting an exception.
    exc: Option<NonNull<ffi::PyObject>>,
    /// The interpreter the exception belongs to.
    interp: *mut ffi::PyInterpreterState,
    type_name: String,
    message: String,
}

// SAFETY: the exception object is only touched (restored or released) by a thread attached
// to the interpreter it came from, checked against `interp`; the other fields are plain data.
unsafe impl Send for PythonException {}
// SAFETY: shared access only reads the cached strings.
unsafe impl Sync for PythonException {}

impl PythonException {
    /// Takes the pending exception (see [`CastError::fetch`]).
    pub fn fetch(py: Python<'_>) -> PythonException {
        // SAFETY: attached thread state (token).
        let exc = unsafe { compat::take_exception() };
        let Some(exc) = exc else {
            return PythonException {
                exc: None,
                interp: py.interpreter(),
                type_name: "SystemError".to_owned(),
                message: "a Python C API call failed without setting an exception".to_owned(),
            };
        };
        // SAFETY: `exc` is a live exception instance we own a reference to.
        let borrowed = unsafe { Borrowed::from_non_null(py, exc) };
        let type_name = borrowed.type_name();
        let message = object_str(borrowed).unwrap_or_else(|| "<str() failed>".to_owned());
        PythonException {
            exc: Some(exc),
            interp: py.interpreter(),
            type_name,
            message,
        }
    }

    /// The exception's type name, e.g. `ValueError`.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// `str()` of the exception.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Makes the exception pending again, unchanged (a `SystemError` when there was none).
    pub fn restore(mut self, py: Python<'_>) {
        match self.exc.take() {
            Some(exc) if self.interp == py.interpreter() => {
                // SAFETY: attached to the interpreter the exception belongs to; we give our
                // reference away.
                unsafe { compat::raise_exception(exc) }
            }
            Some(_) | None => {
                // SAFETY: reading an exception class static; attached thread state.
                let class = unsafe { ffi::PyExc_SystemError };
                set_error(py, class, &format!("{}: {}", self.type_name, self.message));
            }
        }
    }
}

impl Drop for PythonException {
    fn drop(&mut self) {
        if let Some(exc) = self.exc.take() {
            let interp = self.interp;
            Python::with_attached(|py| {
                if py.interpreter() == interp {
                    // SAFETY: attached to the exception's interpreter; we own one reference.
                    unsafe { ffi::Py_DECREF(exc.as_ptr()) };
                }
            });
        }
    }
}

impl fmt::Debug for PythonException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonException")
            .field("type_name", &self.type_name)
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for PythonException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.type_name)
        } else {
            write!(f, "{}: {}", self.type_name, self.message)
        }
    }
}

/// `str(obj)`; `None` (and no error left pending) if that fails or is not valid UTF-8.
pub(crate) fn object_str(obj: Borrowed<'_, '_>) -> Option<String> {
    let py = obj.py();
    // SAFETY: attached thread state; `obj` is live; returns a new reference or null.
    let text = unsafe { Owned::from_owned_ptr(py, ffi::PyObject_Str(obj.as_ptr())) };
    let result = text.and_then(|text| utf8_of(text.as_borrowed()).map(str::to_owned));
    if result.is_none() {
        // SAFETY: attached thread state; drop the error of str() or of the encoding.
        unsafe { ffi::PyErr_Clear() };
    }
    result
}

/// `repr(obj)`, shortened to about 60 characters, for messages; `<repr() failed>` if it
/// fails (the error is cleared).
pub(crate) fn short_repr(obj: Borrowed<'_, '_>) -> String {
    let py = obj.py();
    // SAFETY: attached thread state; `obj` is live; returns a new reference or null.
    let text = unsafe { Owned::from_owned_ptr(py, ffi::PyObject_Repr(obj.as_ptr())) };
    match text.and_then(|text| utf8_of(text.as_borrowed()).map(str::to_owned)) {
        Some(text) => shorten(&text),
        None => {
            // SAFETY: attached thread state; drop the error of repr().
            unsafe { ffi::PyErr_Clear() };
            "<repr() failed>".to_owned()
        }
    }
}

/// Keeps long texts readable in messages: the first 40 and last 12 characters.
pub(crate) fn shorten(text: &str) -> String {
    let count = text.chars().count();
    if count <= 60 {
        return text.to_owned();
    }
    let head: String = text.chars().take(40).collect();
    let tail: String = text.chars().skip(count - 12).collect();
    format!("{head}...{tail} ({count} characters)")
}

/// The UTF-8 contents of a `str` object, borrowed from it; `None` (with a Python error
/// pending) if it is not encodable.
pub(crate) fn utf8_of<'a>(obj: Borrowed<'a, '_>) -> Option<&'a str> {
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: attached thread state; `obj` is a live str (callers check); the buffer is
    // cached in the str object and lives as long as it, i.e. for 'a.
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut len) };
    if data.is_null() {
        return None;
    }
    // SAFETY: `data` points to `len` bytes of valid UTF-8 owned by the str, alive for 'a.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) };
    // SAFETY: CPython's UTF-8 encoder only produces valid UTF-8 (it refuses surrogates).
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// `std::any::type_name::<T>()` without module paths: `Vec<Option<String>>` rather than
/// `alloc::vec::Vec<core::option::Option<alloc::string::String>>`.
pub fn rust_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut path_start = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.truncate(path_start);
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            path_start = out.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_can_cross_threads_and_be_boxed() {
        fn send_sync_static<T: Send + Sync + 'static + std::error::Error>() {}
        send_sync_static::<CastError>();
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(CastError::CharLength { len: 2 });
        assert_eq!(
            boxed.to_string(),
            "expected a str of length 1 for Rust 'char', got a str of length 2"
        );
    }

    #[test]
    fn rust_names_drop_module_paths() {
        assert_eq!(rust_name::<i64>(), "i64");
        assert_eq!(rust_name::<String>(), "String");
        assert_eq!(
            rust_name::<std::collections::HashMap<String, Vec<Option<i64>>>>(),
            "HashMap<String, Vec<Option<i64>>>"
        );
        assert_eq!(rust_name::<[f64; 3]>(), "[f64; 3]");
        assert_eq!(rust_name::<(i64, String)>(), "(i64, String)");
        assert_eq!(rust_name::<&str>(), "&str");
    }

    #[test]
    fn long_values_are_shortened() {
        assert_eq!(shorten("12345"), "12345");
        let long = "9".repeat(100);
        let short = shorten(&long);
        assert!(short.starts_with(&"9".repeat(40)), "{short}");
        assert!(short.ends_with("(100 characters)"), "{short}");
    }

    #[test]
    fn kinds_follow_the_innermost_error() {
        let overflow = CastError::Overflow {
            python: "int",
            value: "300".into(),
            rust: "u8".into(),
            range: "0..=255".into(),
        };
        assert_eq!(overflow.kind(), ExceptionKind::OverflowError);
        assert_eq!(
            overflow.to_string(),
            "Python int 300 does not fit in Rust 'u8' (range 0..=255)"
        );
        let item = CastError::Item {
            item: "item 2".into(),
            python: "list".into(),
            rust: "Vec<u8>".into(),
            source: Box::new(overflow),
        };
        assert_eq!(item.kind(), ExceptionKind::OverflowError);
        assert_eq!(
            item.to_string(),
            "item 2 of Python 'list' for Rust 'Vec<u8>': Python int 300 does not fit in Rust \
             'u8' (range 0..=255)"
        );
    }
}
