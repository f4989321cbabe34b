//! The attached-thread-state token [`Python`], owned references [`Owned`], borrowed
//! references [`Borrowed`], storable references [`Handle`] and the pending error guard
//! [`SavedError`].

use crate::compat::{self, RawError};
use pyo3_ffi as ffi;
use std::ffi::CStr;
use std::fmt;
use std::io::Write;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
        write!(
            f,
            "<borrowed {} object at {:p}>",
            self.type_name(),
            self.ptr
        )
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

/// An owned strong reference to a Python object that can be stored anywhere: in the Rust
/// value of a registered class, a `static`-free cache, a channel. No `'py` lifetime; `Send`
/// and `Sync`.
///
/// Everything that touches the object needs a [`Python`] token: [`Handle::bind`] lends it as
/// a [`Borrowed`], [`Handle::clone_ref`] makes another strong reference. Without a token a
/// `Handle` is only a pointer ([`Handle::as_ptr`]), which is what makes it safe to move
/// between threads.
///
/// **Drop.** If the dropping thread has an attached thread state ([`Python::with_attached`]),
/// the reference is released (`Py_DECREF`), which may run finalizers. Otherwise, for example
/// a `Handle` dropped by a Rust thread that never held the GIL, or after the interpreter
/// finished, the reference is leaked: the object stays alive for the rest of the process and
/// the first such leak in the process writes one warning to stderr. It never crashes and never
/// touches the object without a thread state. Drop handles while attached to avoid the leak.
///
/// **Interpreters.** A `Handle` belongs to the interpreter its object lives in. Bind, clone
/// and drop it only while attached to that interpreter; bindery does not record the
/// interpreter, so it cannot check this for you.
///
/// **Garbage collection.** A type that owns `Handle`s must report them to the cycle collector
/// (`tp_traverse`) and release them on request (`tp_clear`), or cycles through it leak; see
/// `bindery-gc-support`.
pub struct Handle {
    ptr: NonNull<ffi::PyObject>,
}

// SAFETY: a Handle is a pointer plus one strong reference. Every operation that touches the
// object needs a `Python` token of the current thread (bind, clone_ref, into_owned) or checks
// for an attached thread state itself (Drop), so moving it to another thread is sound.
unsafe impl Send for Handle {}
// SAFETY: shared access gives out the pointer only; dereferencing it needs a token (as above).
unsafe impl Sync for Handle {}

/// Whether the leak warning of [`Handle`]'s `Drop` was written (once per process).
static HANDLE_LEAK_WARNED: AtomicBool = AtomicBool::new(false);
/// How many references `Handle`s leaked because no thread state was attached.
static HANDLES_LEAKED: AtomicUsize = AtomicUsize::new(0);

impl Handle {
    /// Stores an owned reference (no reference count change: the reference moves in).
    #[inline]
    pub fn new(obj: Owned<'_>) -> Handle {
        let ptr = obj.ptr;
        std::mem::forget(obj);
        Handle { ptr }
    }

    /// A new strong reference to a borrowed object (`Py_INCREF`).
    #[inline]
    pub fn from_borrowed(obj: Borrowed<'_, '_>) -> Handle {
        Handle::new(obj.to_owned())
    }

    /// Lends the object for as long as the handle is borrowed and the token lives (no
    /// reference count change).
    #[inline]
    pub fn bind<'a, 'py>(&'a self, py: Python<'py>) -> Borrowed<'a, 'py> {
        Borrowed {
            ptr: self.ptr,
            py,
            _borrow: PhantomData,
        }
    }

    /// Another strong reference to the same object (`Py_INCREF`).
    #[inline]
    pub fn clone_ref(&self, py: Python<'_>) -> Handle {
        Handle::from_borrowed(self.bind(py))
    }

    /// Turns the handle back into an [`Owned`] bound to `py` (no reference count change).
    #[inline]
    pub fn into_owned(self, py: Python<'_>) -> Owned<'_> {
        let ptr = self.ptr;
        std::mem::forget(self);
        Owned { ptr, py }
    }

    /// The object pointer (still owned by the handle). Dereference it only while attached
    /// to the object's interpreter.
    #[inline]
    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.ptr.as_ptr()
    }
}

impl From<Owned<'_>> for Handle {
    #[inline]
    fn from(obj: Owned<'_>) -> Handle {
        Handle::new(obj)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let ptr = self.ptr.as_ptr();
        // SAFETY: the handle owns one strong reference; `with_attached` runs the closure only
        // if this thread has an attached thread state, which allows the reference change
        // (and whatever finalizer it runs).
        let released = Python::with_attached(|_py| unsafe { ffi::Py_DECREF(ptr) });
        if released.is_none() {
            leaked_without_thread_state();
        }
    }
}

/// The `Drop` of a [`Handle`] on a thread without an attached thread state: count, and warn
/// the first time.
#[cold]
fn leaked_without_thread_state() {
    HANDLES_LEAKED.fetch_add(1, Ordering::Relaxed);
    if !HANDLE_LEAK_WARNED.swap(true, Ordering::Relaxed) {
        let _ = writeln!(
            std::io::stderr(),
            "bindery: a Handle to a Python object was dropped on a thread without an attached \
             thread state (a thread that does not hold the GIL, or after the interpreter \
             finished); its reference is leaked and the object stays alive. Drop Handles while \
             attached to their interpreter. (This warning is written once per process.)"
        );
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No thread state is needed to print the address; the type name would need one.
        write!(f, "Handle({:p})", self.ptr)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, Once};

    /// Detaches and deletes the test's thread state, also when an assertion panics.
    struct Attached;

    impl Drop for Attached {
        fn drop(&mut self) {
            // SAFETY: this thread's attached thread state, made in `with_python`.
            unsafe {
                ffi::PyErr_Clear();
                ffi::PyThreadState_Clear(ffi::PyThreadState_Get());
                ffi::PyThreadState_DeleteCurrent();
            }
        }
    }

    /// Runs `f` attached to the main interpreter with a fresh thread state of this thread,
    /// one test at a time (the tests of this binary share one interpreter).
    fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
        static INIT: Once = Once::new();
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        INIT.call_once(|| {
            // SAFETY: the only initialization in this process; the main thread state is
            // then detached so any test thread can attach its own.
            unsafe {
                ffi::Py_InitializeEx(0);
                ffi::PyEval_SaveThread();
            }
        });
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: initialized interpreter; a new thread state made and attached on this
        // thread, which holds no other.
        unsafe {
            ffi::PyEval_RestoreThread(ffi::PyThreadState_New(ffi::PyInterpreterState_Main()))
        };
        let _attached = Attached;
        Python::with_attached(f).expect("a thread state was just attached")
    }

    fn refcount(obj: &Owned<'_>) -> isize {
        // SAFETY: `obj` is live and the token it carries proves an attached thread state.
        unsafe { ffi::Py_REFCNT(obj.as_ptr()) }
    }

    fn new_list(py: Python<'_>) -> Owned<'_> {
        // SAFETY: attached thread state; a new reference or null.
        unsafe { Owned::from_owned_ptr(py, ffi::PyList_New(0)) }.expect("a list")
    }

    #[test]
    fn handle_is_send_and_sync() {
        fn storable<T: Send + Sync + 'static>() {}
        storable::<Handle>();
    }

    #[test]
    fn handle_owns_one_reference_and_releases_it() {
        with_python(|py| {
            let list = new_list(py);
            let before = refcount(&list);
            let handle = Handle::new(list.clone());
            assert_eq!(refcount(&list), before + 1, "new moves the reference in");
            let second = handle.clone_ref(py);
            let third = Handle::from_borrowed(list.as_borrowed());
            assert_eq!(refcount(&list), before + 3);
            assert!(handle.bind(py).is(list.as_borrowed()));
            assert_eq!(second.as_ptr(), list.as_ptr());
            assert_eq!(handle.bind(py).type_name(), "list");
            assert!(format!("{handle:?}").starts_with("Handle(0x"));
            drop(second);
            drop(third);
            let owned = handle.into_owned(py);
            assert_eq!(
                refcount(&list),
                before + 1,
                "into_owned keeps the reference"
            );
            drop(owned);
            assert_eq!(refcount(&list), before);
        });
    }

    #[test]
    fn drop_without_a_thread_state_leaks_instead_of_crashing() {
        let (raw, handle) = with_python(|py| {
            let list = new_list(py);
            let handle = Handle::new(list.clone());
            (list.into_ptr() as usize, handle)
        });
        let leaked_before = HANDLES_LEAKED.load(Ordering::Relaxed);
        // A Rust thread that never attached a thread state drops the handle.
        std::thread::spawn(move || drop(handle))
            .join()
            .expect("no panic");
        assert_eq!(HANDLES_LEAKED.load(Ordering::Relaxed), leaked_before + 1);
        assert!(
            HANDLE_LEAK_WARNED.load(Ordering::Relaxed),
            "the warning was written"
        );
        with_python(|py| {
            // SAFETY: `raw` is the strong reference taken by `into_ptr` above.
            let list =
                unsafe { Owned::from_owned_ptr(py, raw as *mut ffi::PyObject) }.expect("non-null");
            // Ours and the leaked one: the object was not released without a thread state.
            assert_eq!(refcount(&list), 2);
        });
    }
}
