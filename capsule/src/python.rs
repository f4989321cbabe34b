//! The attached-thread-state token [`Python`], owned references [`Owned`], borrowed
//! references [`Borrowed`] and the pending error guard [`SavedError`].

use crate::compat::{self, RawError};
use pyo3_ffi as ffi;
use std::ffi::CStr;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Proof that the current thread has an attached thread state (holds the GIL of its
/// interpreter) for the lifetime `'py`.
///
/// Every function of this crate that touches Python takes one. It is `Copy` and neither
/// `Send` nor `Sync`: a token cannot leave the thread it was made on. Get one from
/// [`Python::assume_attached`] at the entry of an `extern "C"` function CPython called, or
/// from [`Python::with_attached`] where you do not know.
///
/// The token never uses `PyGILState_*` (which picks the main interpreter's thread state
/// and deadlocks or corrupts state in subinterpreters): it works with whatever thread state
/// is current, main interpreter or not.
#[derive(Clone, Copy)]
pub struct Python<'py> {
    // `*mut ()` makes the token !Send and !Sync; `&'py ()` ties it to the scope.
    _not_send: PhantomData<(&'py (), *mut ())>,
}

impl fmt::Debug for Python<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Python")
    }
}

impl<'py> Python<'py> {
    /// Makes a token without checking.
    ///
    /// # Safety
    /// The calling thread has an attached thread state for all of `'py`, for example inside
    /// an `extern "C"` function that CPython called (module exec slots, methods, capsule
    /// destructors), as long as nothing in `'py` detaches it (`PyEval_SaveThread`) while the
    /// token or anything made from it is used.
    pub unsafe fn assume_attached() -> Python<'py> {
        Python {
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with a token if the calling thread has an attached thread state, else returns
    /// `None` without running it. It never attaches one (no `PyGILState_Ensure`).
    ///
    /// On 3.12+ this is exact. On 3.9-3.11 CPython keeps the current thread state in a
    /// process-wide variable, so this also checks that the state belongs to the calling thread
    /// (its recorded thread id); a thread state created on one thread and resumed on another
    /// by an embedding host is reported as not attached on the thread that resumed it.
    pub fn with_attached<R>(f: impl for<'a> FnOnce(Python<'a>) -> R) -> Option<R> {
        if compat::current_thread_is_attached() {
            // SAFETY: the calling thread has an attached thread state (checked just above),
            // and the token cannot outlive `f` nor leave this thread.
            Some(f(unsafe { Python::assume_attached() }))
        } else {
            None
        }
    }

    /// The interpreter of the current thread state (`PyInterpreterState_Get`).
    pub fn interpreter(self) -> *mut ffi::PyInterpreterState {
        // SAFETY: the token proves an attached thread state, the only precondition.
        unsafe { ffi::PyInterpreterState_Get() }
    }

    /// The current interpreter's ID (`PyInterpreterState_GetID`): 0 for the main
    /// interpreter, unique over the process lifetime (unlike interpreter pointers, which
    /// are reused after an interpreter is destroyed).
    pub fn interpreter_id(self) -> i64 {
        // SAFETY: attached thread state (token); `interpreter()` is the live current one.
        unsafe { ffi::PyInterpreterState_GetID(self.interpreter()) }
    }
}

/// An owned strong reference to a Python object: `Py_DECREF` on drop, `Py_INCREF` on
/// clone. Bound to the token's lifetime, so it cannot outlive the attached thread state,
/// and not `Send`.
pub struct Owned<'py> {
    ptr: NonNull<ffi::PyObject>,
    py: Python<'py>,
}

impl<'py> Owned<'py> {
    /// Takes ownership of a new (strong) reference; `None` if `p` is null (the usual
    /// "an exception is set" return of the C API, which this leaves pending).
    ///
    /// # Safety
    /// `p` is null or a strong reference the caller owns and gives away.
    pub unsafe fn from_owned_ptr(py: Python<'py>, p: *mut ffi::PyObject) -> Option<Owned<'py>> {
        NonNull::new(p).map(|ptr| Owned { ptr, py })
    }

    /// Makes a new strong reference from a borrowed one (`Py_INCREF`); `None` if `p` is null.
    ///
    /// # Safety
    /// `p` is null or points to a live Python object.
    pub unsafe fn from_borrowed_ptr(py: Python<'py>, p: *mut ffi::PyObject) -> Option<Owned<'py>> {
        let ptr = NonNull::new(p)?;
        // SAFETY: `ptr` is a live object (caller) and the token proves an attached thread
        // state, so changing its reference count is allowed.
        unsafe { ffi::Py_INCREF(ptr.as_ptr()) };
        Some(Owned { ptr, py })
    }

    /// The object pointer (still owned by `self`).
    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.ptr.as_ptr()
    }

    /// Gives the strong reference away to the caller (no decref).
    pub fn into_ptr(self) -> *mut ffi::PyObject {
        let ptr = self.ptr.as_ptr();
        std::mem::forget(self);
        ptr
    }

    /// The token this reference is bound to.
    pub fn py(&self) -> Python<'py> {
        self.py
    }

    /// A borrowed handle to the same object, valid while `self` is (no reference count
    /// change).
    #[inline]
    pub fn as_borrowed(&self) -> Borrowed<'_, 'py> {
        Borrowed {
            ptr: self.ptr,
            py: self.py,
            _borrow: PhantomData,
        }
    }

    /// The name of the object's type for messages: `__qualname__` for builtins
    /// (`"dict"`), `__module__.__qualname__` otherwise (`"collections.OrderedDict"`),
    /// falling back to `tp_name`. Leaves any pending Python error untouched.
    pub fn type_name(&self) -> String {
        self.as_borrowed().type_name()
    }
}

/// A borrowed reference to a Python object: no reference count change when made, copied or
/// dropped. The object is guaranteed alive for `'a` by whoever lent it (an [`Owned`] via
/// [`Owned::as_borrowed`], or CPython for the arguments of a call, as `METH_FASTCALL` passes
/// them), and the handle cannot outlive the token's `'py`.
///
/// `Copy`, neither `Send` nor `Sync` (it carries the token). Turn it into an [`Owned`] with
/// [`Borrowed::to_owned`] to keep the object beyond `'a`.
#[derive(Clone, Copy)]
pub struct Borrowed<'a, 'py> {
    ptr: NonNull<ffi::PyObject>,
    py: Python<'py>,
    _borrow: PhantomData<&'a Owned<'py>>,
}

impl<'a, 'py> Borrowed<'a, 'py> {
    /// Wraps a borrowed pointer; `None` if `p` is null (the C API's "an exception is set").
    ///
    /// # Safety
    /// `p` is null or points to a live object that stays alive for all of `'a` (someone
    /// else holds a strong reference for that long, or CPython lent it for a call).
    #[inline]
    pub unsafe fn from_ptr(py: Python<'py>, p: *mut ffi::PyObject) -> Option<Borrowed<'a, 'py>> {
        NonNull::new(p).map(|ptr| Borrowed {
            ptr,
            py,
            _borrow: PhantomData,
        })
    }

    /// Wraps a non-null borrowed pointer.
    ///
    /// # Safety
    /// As for [`Borrowed::from_ptr`]: `p` is live for all of `'a`.
    #[inline]
    pub unsafe fn from_non_null(py: Python<'py>, p: NonNull<ffi::PyObject>) -> Borrowed<'a, 'py> {
        Borrowed {
            ptr: p,
            py,
            _borrow: PhantomData,
        }
    }

    /// The object pointer (borrowed: the caller gets no reference).
    #[inline]
    pub fn as_ptr(self) -> *mut ffi::PyObject {
        self.ptr.as_ptr()
    }

    /// The token this handle is bound to.
    #[inline]
    pub fn py(self) -> Python<'py> {
        self.py
    }

    /// A new strong reference to the object (`Py_INCREF`).
    #[inline]
    pub fn to_owned(self) -> Owned<'py> {
        // SAFETY: the object is live for 'a (constructor contract) and the token proves an
        // attached thread state, so the reference count may change.
        unsafe { ffi::Py_INCREF(self.as_ptr()) };
        Owned {
            ptr: self.ptr,
            py: self.py,
        }
    }

    /// The object's type object (borrowed from the object).
    #[inline]
    pub fn type_ptr(self) -> *mut ffi::PyTypeObject {
        // SAFETY: the object is live, so its type pointer is valid.
        unsafe { ffi::Py_TYPE(self.as_ptr()) }
    }

    /// Whether both handles point to the same object (Python's `is`).
    #[inline]
    pub fn is(self, other: Borrowed<'_, 'py>) -> bool {
        self.ptr == other.ptr
    }

    /// The name of the object's type for messages, as [`Owned::type_name`] gives it.
    pub fn type_name(self) -> String {
        type_object_name(self.py, self.type_ptr())
    }
}

impl fmt::Debug for Borrowed<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<borrowed {} object at {:p}>", self.type_name(), self.ptr)
    }
}

impl Clone for Owned<'_> {
    fn clone(&self) -> Self {
        // SAFETY: `self` is a live object and the token proves an attached thread state.
        unsafe { ffi::Py_INCREF(self.as_ptr()) };
        Owned {
            ptr: self.ptr,
            py: self.py,
        }
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        // SAFETY: we own one strong reference and the token proves an attached thread state.
        unsafe { ffi::Py_DECREF(self.as_ptr()) };
    }
}

impl fmt::Debug for Owned<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} object at {:p}>", self.type_name(), self.ptr)
    }
}

/// The name of a type object for messages (see [`Owned::type_name`]).
pub(crate) fn type_object_name(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> String {
    let _saved = SavedError::save(py);
    let ty_obj = ty.cast::<ffi::PyObject>();
    let qualname = str_attr(py, ty_obj, c"__qualname__");
    let module = str_attr(py, ty_obj, c"__module__");
    match (module, qualname) {
        (Some(module), Some(qualname)) if module != "builtins" => format!("{module}.{qualname}"),
        (_, Some(qualname)) => qualname,
        _ => {
            // SAFETY: `ty` is a live type object; tp_name is a NUL-terminated string that
            // lives as long as the type.
            let name = unsafe { CStr::from_ptr((*ty).tp_name) };
            name.to_string_lossy().into_owned()
        }
    }
}

/// `str(getattr(obj, name))` if that attribute is a `str`; `None` (and no error left
/// pending) otherwise.
fn str_attr(py: Python<'_>, obj: *mut ffi::PyObject, name: &CStr) -> Option<String> {
    // SAFETY: `obj` is live (callers), `name` is NUL-terminated, attached thread state.
    let attr =
        unsafe { Owned::from_owned_ptr(py, ffi::PyObject_GetAttrString(obj, name.as_ptr())) };
    let Some(attr) = attr else {
        // SAFETY: attached thread state; drop the AttributeError.
        unsafe { ffi::PyErr_Clear() };
        return None;
    };
    let text = str_contents(&attr);
    if text.is_none() {
        // SAFETY: attached thread state; drop a UnicodeEncodeError (lone surrogates).
        unsafe { ffi::PyErr_Clear() };
    }
    text
}

/// The UTF-8 contents of a `str` object; `None` if it is not a `str` or cannot be encoded
/// (an error may then be pending).
pub(crate) fn str_contents(obj: &Owned<'_>) -> Option<String> {
    // SAFETY: `obj` is live and the token proves an attached thread state.
    if unsafe { ffi::PyUnicode_Check(obj.as_ptr()) } == 0 {
        return None;
    }
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `obj` is a live str; the returned buffer is owned by it and stays valid while
    // we hold `obj`, and holds `len` bytes.
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut len) };
    if data.is_null() {
        return None;
    }
    let len = usize::try_from(len).ok()?;
    // SAFETY: `data` points to `len` initialized bytes owned by `obj` (see above).
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// Saves the pending Python error (if any) when created and restores it when dropped, so a
/// call that must not disturb the caller's error state can use Python freely in between.
///
/// While the guard lives, no error is pending (unless code in between raises one). When it
/// drops: if an error was saved, it becomes the pending one again, replacing whatever was
/// raised in between; if none was saved, whatever is pending then stays pending.
pub struct SavedError<'py> {
    py: Python<'py>,
    saved: Option<RawError>,
}

impl<'py> SavedError<'py> {
    /// Takes the pending error out of the thread state (if any) until the guard drops.
    pub fn save(py: Python<'py>) -> SavedError<'py> {
        // SAFETY: the token proves an attached thread state.
        let saved = unsafe { RawError::fetch() };
        SavedError { py, saved }
    }

    /// Whether an error was pending when the guard was made.
    pub fn had_error(&self) -> bool {
        self.saved.is_some()
    }

    /// The token this guard is bound to.
    pub fn py(&self) -> Python<'py> {
        self.py
    }
}

impl Drop for SavedError<'_> {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            // SAFETY: the token proves an attached thread state; `saved` owns its references.
            unsafe { saved.restore() };
        }
    }
}

impl fmt::Debug for SavedError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedError")
            .field("had_error", &self.had_error())
            .finish()
    }
}

/// Takes the pending Python error and returns it as text, `"ExcType: message"` (or just
/// `"ExcType"` when the message is empty); the error is cleared. `None` if none is pending.
pub fn take_error_text(py: Python<'_>) -> Option<String> {
    // SAFETY: the token proves an attached thread state.
    let raw = unsafe { RawError::fetch() }?;
    // SAFETY: attached thread state; `raw` was just fetched, so no error is pending.
    let instance = unsafe { raw.into_instance() };
    // SAFETY: `into_instance` returns an owned reference (or None).
    let Some(instance) = (unsafe {
        Owned::from_owned_ptr(py, instance.map_or(std::ptr::null_mut(), NonNull::as_ptr))
    }) else {
        return Some("<exception that could not be normalized>".to_owned());
    };
    let type_name = instance.type_name();
    // SAFETY: `instance` is live, attached thread state; returns a new reference or null.
    let message = unsafe { Owned::from_owned_ptr(py, ffi::PyObject_Str(instance.as_ptr())) };
    let message = match message.as_ref().and_then(str_contents) {
        Some(message) => message,
        None => {
            // SAFETY: attached thread state; str() failed, drop that secondary error.
            unsafe { ffi::PyErr_Clear() };
            "<str() failed>".to_owned()
        }
    };
    Some(if message.is_empty() {
        type_name
    } else {
        format!("{type_name}: {message}")
    })
}
