//! [`Error`]: what a bound function returns to raise a Python exception, and how Rust error
//! types map to Python exception classes.

use std::ffi::CString;

use bindery_capsule::Python;
use bindery_cast::CastError;
use pyo3_ffi as ffi;

/// A built-in Python exception class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExceptionClass {
    /// `Exception`.
    Exception,
    /// `TypeError`.
    TypeError,
    /// `ValueError`.
    ValueError,
    /// `OverflowError`.
    OverflowError,
    /// `ZeroDivisionError`.
    ZeroDivisionError,
    /// `RuntimeError`.
    RuntimeError,
    /// `KeyError`.
    KeyError,
    /// `IndexError`.
    IndexError,
    /// `AttributeError`.
    AttributeError,
    /// `NotImplementedError`.
    NotImplementedError,
    /// `OSError`.
    OSError,
    /// `ImportError`.
    ImportError,
}

impl ExceptionClass {
    /// The class object (a borrowed reference to a static of libpython).
    pub fn as_ptr(self, _py: Python<'_>) -> *mut ffi::PyObject {
        // SAFETY: reading exception class statics, valid for the process; the token proves
        // an attached thread state.
        unsafe {
            match self {
                ExceptionClass::Exception => ffi::PyExc_Exception,
                ExceptionClass::TypeError => ffi::PyExc_TypeError,
                ExceptionClass::ValueError => ffi::PyExc_ValueError,
                ExceptionClass::OverflowError => ffi::PyExc_OverflowError,
                ExceptionClass::ZeroDivisionError => ffi::PyExc_ZeroDivisionError,
                ExceptionClass::RuntimeError => ffi::PyExc_RuntimeError,
                ExceptionClass::KeyError => ffi::PyExc_KeyError,
                ExceptionClass::IndexError => ffi::PyExc_IndexError,
                ExceptionClass::AttributeError => ffi::PyExc_AttributeError,
                ExceptionClass::NotImplementedError => ffi::PyExc_NotImplementedError,
                ExceptionClass::OSError => ffi::PyExc_OSError,
                ExceptionClass::ImportError => ffi::PyExc_ImportError,
            }
        }
    }
}

/// A Python exception to raise: a class and a message, a conversion error, or an exception
/// Python itself raised (kept as is).
///
/// Bound functions return `Result<T, E>` with `E: Into<Error>`. Map your own error types
/// with a `From` impl:
///
/// ```
/// use bindery::{Error, ExceptionClass};
///
/// #[derive(Debug)]
/// enum ParseError { Empty, Bad(String) }
///
/// impl From<ParseError> for Error {
///     fn from(e: ParseError) -> Error {
///         match e {
///             ParseError::Empty => Error::new(ExceptionClass::ValueError, "empty input"),
///             ParseError::Bad(s) => Error::new(ExceptionClass::ValueError, format!("bad input {s:?}")),
///         }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Error {
    repr: Repr,
}

#[derive(Debug)]
enum Repr {
    Builtin(ExceptionClass, String),
    Cast(CastError),
    /// The class object is an exception type the module made (a new reference, kept
    /// alive by the module state), plus the message.
    Custom(CustomClass, String),
}

/// An exception class the module creates in every interpreter that imports it (see
/// [`crate::ModuleBuilder::exception`]), named by its attribute name in the module; the
/// class object is looked up in the calling interpreter when the error is raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomClass {
    /// The exception's attribute name in the module, e.g. `"ParseError"`.
    pub name: &'static str,
}

impl Error {
    /// An exception of a built-in class with a message.
    pub fn new(class: ExceptionClass, message: impl Into<String>) -> Error {
        Error {
            repr: Repr::Builtin(class, message.into()),
        }
    }

    /// A `TypeError`.
    pub fn type_error(message: impl Into<String>) -> Error {
        Error::new(ExceptionClass::TypeError, message)
    }

    /// A `ValueError`.
    pub fn value_error(message: impl Into<String>) -> Error {
        Error::new(ExceptionClass::ValueError, message)
    }

    /// A `RuntimeError`.
    pub fn runtime_error(message: impl Into<String>) -> Error {
        Error::new(ExceptionClass::RuntimeError, message)
    }

    /// An exception of a class the module created (see [`crate::ModuleBuilder::exception`]),
    /// by name: `Error::custom(CustomClass { name: "ParseError" }, "...")`.
    pub fn custom(class: CustomClass, message: impl Into<String>) -> Error {
        Error {
            repr: Repr::Custom(class, message.into()),
        }
    }

    /// The message, as the exception will show it.
    pub fn message(&self) -> String {
        match &self.repr {
            Repr::Builtin(_, m) | Repr::Custom(_, m) => m.clone(),
            Repr::Cast(e) => e.to_string(),
        }
    }

    /// Prefixes the message (keeps the class): `"add() argument 'a': "`.
    pub(crate) fn context(self, prefix: &str) -> Error {
        match self.repr {
            Repr::Cast(CastError::Python(_)) => self,
            Repr::Cast(e) => {
                let class = match e.kind() {
                    bindery_cast::ExceptionKind::TypeError => ExceptionClass::TypeError,
                    bindery_cast::ExceptionKind::ValueError
                    | bindery_cast::ExceptionKind::UnicodeError => ExceptionClass::ValueError,
                    bindery_cast::ExceptionKind::OverflowError => ExceptionClass::OverflowError,
                    _ => ExceptionClass::RuntimeError,
                };
                if matches!(e.kind(), bindery_cast::ExceptionKind::UnicodeError) {
                    // Keep UnicodeError's own class: re-raise it, the message is specific.
                    return Error {
                        repr: Repr::Cast(e),
                    };
                }
                Error::new(class, format!("{prefix}{e}"))
            }
            Repr::Builtin(class, m) => Error::new(class, format!("{prefix}{m}")),
            Repr::Custom(class, m) => Error::custom(class, format!("{prefix}{m}")),
        }
    }

    /// Makes this error the pending Python exception. A custom class is looked up among the
    /// exceptions of `module` (the module whose function raised) in this interpreter.
    pub(crate) fn restore_in(self, py: Python<'_>, module: Option<&crate::module::Spec>) {
        match self.repr {
            Repr::Builtin(class, message) => set_error(py, class.as_ptr(py), &message),
            Repr::Cast(error) => error.restore(py),
            Repr::Custom(class, message) => {
                match module.and_then(|m| m.exception(py, class.name)) {
                    Some(object) => set_error(py, object, &message),
                    None => set_error(
                        py,
                        ExceptionClass::RuntimeError.as_ptr(py),
                        &format!(
                            "{message} (bindery: exception class '{}' is not defined by this module)",
                            class.name
                        ),
                    ),
                }
            }
        }
    }

    /// Makes this error the pending Python exception (custom classes need the module: use
    /// it from bound functions, which know theirs).
    pub fn restore(self, py: Python<'_>) {
        self.restore_in(py, None)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

impl From<CastError> for Error {
    fn from(error: CastError) -> Error {
        Error {
            repr: Repr::Cast(error),
        }
    }
}

/// Sets `class(message)` as the pending exception.
pub(crate) fn set_error(_py: Python<'_>, class: *mut ffi::PyObject, message: &str) {
    let message = CString::new(message.replace('\0', "\\0")).expect("NUL bytes replaced");
    // SAFETY: attached thread state (token); `class` is an exception class, `message` a
    // valid C string.
    unsafe { ffi::PyErr_SetString(class, message.as_ptr()) };
}
