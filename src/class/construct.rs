//! Making instances: the `tp_new` slots ([`Class::constructor`](super::Class::constructor),
//! [`Class::default_constructor`](super::Class::default_constructor), none) and the class's
//! `tp_vectorcall`, which runs `Class(a, b)` without the argument tuple and keyword dict
//! that `type.__call__` would build.
//!
//! `tp_vectorcall` is the entry point for calls of the class itself only: CPython never
//! inherits it, so a Python subclass is made by `type.__call__` (`tp_new`, then `__init__`).
//! It takes its fast path only while the class's `tp_new` is still bindery's and its
//! `tp_init` still `object.__init__` (a class whose `__new__` or `__init__` was replaced
//! from Python goes through `type.__call__`, like any other call with keywords).

use std::any::TypeId;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use bindery_capsule::{Owned, Python};
use bindery_cast::{CastError, ClassObject, RegisteredClass};
use pyo3_ffi as ffi;
use smallvec::SmallVec;

use crate::error::Error;
use crate::function::{ArgError, Fallible, IntoFunction, Plain, fn_at};

/// A constructor's result: the value, or `Result<T, E>`.
pub trait IntoConstructed<T, Marker> {
    /// The value, or the exception to raise.
    fn into_constructed(self) -> Result<T, Error>;
}

impl<T> IntoConstructed<T, Plain> for T {
    fn into_constructed(self) -> Result<T, Error> {
        Ok(self)
    }
}

impl<T, E: Into<Error>> IntoConstructed<T, Fallible> for Result<T, E> {
    fn into_constructed(self) -> Result<T, Error> {
        self.map_err(Into::into)
    }
}

/// `tp_new` of classes without a constructor.
pub(super) unsafe extern "C" fn no_constructor(
    ty: *mut ffi::PyTypeObject,
    _args: *mut ffi::PyObject,
    _kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_new with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: a live type object; tp_name is its NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr((*ty).tp_name) }.to_string_lossy();
    Error::type_error(format!(
        "cannot create '{name}' instances: the class has no constructor"
    ))
    .restore(py);
    ptr::null_mut()
}

/// `tp_new` of [`Class::default_constructor`](super::Class::default_constructor):
/// `T::default()` in a new instance of the (sub)type; arguments are refused unless the
/// subtype has its own `__init__` (the rule of `object.__new__`).
pub(super) unsafe extern "C" fn default_new<T: RegisteredClass + Default>(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_new with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    crate::panic::catch_panic(py, ptr::null_mut(), || {
        // SAFETY: tp_new's contract: a live (sub)type, an args tuple, a kwargs dict or null.
        let has_args = unsafe {
            ffi::PyTuple_GET_SIZE(args) > 0 || (!kwargs.is_null() && ffi::PyDict_Size(kwargs) > 0)
        };
        // SAFETY: `subtype` is a live type (tp_new contract).
        let own_init = !unsafe { init_is_object_init(subtype) };
        let made = if has_args && !own_init {
            // SAFETY: a live type object; tp_name is its NUL-terminated name.
            let name = unsafe { std::ffi::CStr::from_ptr((*subtype).tp_name) }.to_string_lossy();
            let short = name.rsplit('.').next().unwrap_or(&name);
            Err(Error::type_error(format!("{short}() takes no arguments")))
        } else {
            // SAFETY: `subtype` is this class or a subclass (tp_new contract).
            unsafe { new_instance::<T>(py, subtype, T::default()) }
        };
        match made {
            Ok(object) => object.into_ptr(),
            Err(error) => {
                error.restore(py);
                ptr::null_mut()
            }
        }
    })
}

/// Whether `ty`'s `__init__` is `object.__init__` (so `type.__call__` would call it for
/// nothing).
///
/// # Safety
/// `ty` is a live type object.
unsafe fn init_is_object_init(ty: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: reading the tp_init slots of two live types. Both are C function pointers of
    // libpython or of the type: comparing their addresses is exact.
    unsafe {
        let object_init = (*ptr::addr_of_mut!(ffi::PyBaseObject_Type)).tp_init;
        (*ty).tp_init.map(|f| f as usize) == object_init.map(|f| f as usize)
    }
}

/// Whether a call of the class `ty` may skip `type.__call__`: `ty`'s `tp_new` is still
/// `new` and its `__init__` is `object.__init__`.
///
/// # Safety
/// `ty` is a live type object.
unsafe fn direct_call_allowed(ty: *mut ffi::PyTypeObject, new: ffi::newfunc) -> bool {
    // SAFETY: reading a live type's tp_new slot (a C function pointer; exact comparison).
    let same_new = unsafe { (*ty).tp_new }.map(|f| f as usize) == Some(new as usize);
    // SAFETY: `ty` is live (contract).
    same_new && unsafe { init_is_object_init(ty) }
}

/// Allocates an instance of `subtype` and stores `value` in it.
///
/// # Safety
/// `subtype` is `T`'s class or a subclass of it (its instances are `ClassObject<T>`).
unsafe fn new_instance<'py, T: RegisteredClass>(
    py: Python<'py>,
    subtype: *mut ffi::PyTypeObject,
    value: T,
) -> Result<Owned<'py>, Error> {
    // SAFETY: reading the live subtype's tp_alloc slot.
    let alloc = unsafe { (*subtype).tp_alloc }.unwrap_or(ffi::PyType_GenericAlloc);
    // SAFETY: attached thread state; a zeroed instance of the (sub)type or null.
    let object = unsafe { Owned::from_owned_ptr(py, alloc(subtype, 0)) }
        .ok_or_else(|| Error::from(CastError::fetch(py)))?;
    // SAFETY: the (sub)type's instances are ClassObject<T> (caller), and this one is fresh.
    if unsafe { ClassObject::<T>::init(object.as_ptr(), value) }.is_err() {
        return Err(Error::runtime_error(
            "bindery: a fresh instance already had a value",
        ));
    }
    Ok(object)
}

/// `tp_new` of a class whose constructor is `F`: runs the constructor with the call's
/// arguments, allocates an instance of the (sub)type and stores the value in it.
pub(super) unsafe extern "C" fn tp_new<T, F, Args, M>(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: RegisteredClass,
    F: IntoFunction<Args, M>,
    F::Output: IntoConstructed<T, M>,
{
    // SAFETY: CPython calls tp_new with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `args` is a tuple and `kwargs` a dict or null (tp_new contract).
        unsafe { construct::<T, F, Args, M>(py, subtype, args, kwargs) }
    }));
    finish::<F>(py, outcome)
}

/// `tp_vectorcall` of a class whose constructor is `F`: `Class(a, b)` with every parameter
/// given positionally runs the constructor on CPython's argument array; any other call
/// (keywords, defaults, a constructor that captures, a replaced `__new__` or `__init__`)
/// goes through `type.__call__`.
pub(super) unsafe extern "C" fn vectorcall_new<T, F, Args, M>(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: RegisteredClass,
    F: IntoFunction<Args, M>,
    F::Output: IntoConstructed<T, M>,
{
    let ty = callable.cast::<ffi::PyTypeObject>();
    // SAFETY: PyVectorcall_NARGS only masks a flag bit.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    let direct = kwnames.is_null()
        && nargs == F::ARITY
        && size_of::<F>() == 0
        // SAFETY: CPython calls a type's tp_vectorcall with that (live) type.
        && unsafe { direct_call_allowed(ty, tp_new::<T, F, Args, M>) };
    if !direct {
        // SAFETY: vectorcall contract, forwarded.
        return unsafe { call_type(callable, args, nargs, kwnames) };
    }
    // SAFETY: CPython calls vectorcall functions with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `args` holds `nargs` borrowed references (vectorcall contract).
        let given = unsafe { crate::function::arg_slice(args, nargs) };
        // SAFETY: F is zero-sized (checked above): no data is read.
        let f = unsafe { fn_at::<F>(ptr::null()) };
        // SAFETY: `ty` is T's class (tp_vectorcall is never inherited).
        unsafe { make::<T, F, Args, M>(py, f, given, ty) }
    }));
    finish::<F>(py, outcome)
}

/// `tp_vectorcall` of [`Class::default_constructor`](super::Class::default_constructor):
/// `Class()` makes `T::default()` directly; any other call goes through `type.__call__`.
pub(super) unsafe extern "C" fn vectorcall_default<T: RegisteredClass + Default>(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let ty = callable.cast::<ffi::PyTypeObject>();
    // SAFETY: PyVectorcall_NARGS only masks a flag bit.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    // SAFETY: CPython calls a type's tp_vectorcall with that (live) type.
    if nargs != 0 || !kwnames.is_null() || !unsafe { direct_call_allowed(ty, default_new::<T>) } {
        // SAFETY: vectorcall contract, forwarded.
        return unsafe { call_type(callable, args, nargs, kwnames) };
    }
    // SAFETY: CPython calls vectorcall functions with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    crate::panic::catch_panic(py, ptr::null_mut(), || {
        // SAFETY: `ty` is T's class (tp_vectorcall is never inherited).
        match unsafe { new_instance::<T>(py, ty, T::default()) } {
            Ok(object) => object.into_ptr(),
            Err(error) => {
                error.restore(py);
                ptr::null_mut()
            }
        }
    })
}

/// The result of a constructor call: the instance, or null with the exception (named after
/// the constructor's parameters) or the panic raised.
fn finish<F: 'static>(
    py: Python<'_>,
    outcome: std::thread::Result<Result<*mut ffi::PyObject, Box<ArgError>>>,
) -> *mut ffi::PyObject {
    match outcome {
        Ok(Ok(object)) => object,
        Ok(Err(error)) => {
            // The names for the message: looked up on this error path only.
            let data = crate::method::data_for(TypeId::of::<F>());
            crate::function::explain_with(data, *error).restore_in(py, data.map(|d| d.module));
            ptr::null_mut()
        }
        Err(panic) => {
            crate::panic::raise_panic(py, panic);
            ptr::null_mut()
        }
    }
}

/// `type.__call__(cls, *args, **kwargs)` from vectorcall arguments: the general path
/// (`tp_new`, then `__init__`), for calls a class's `tp_vectorcall` does not take itself.
/// It calls `type`'s `tp_call` slot directly: calling the class again would come back to
/// its `tp_vectorcall`.
///
/// # Safety
/// The vectorcall contract: a live type `callable`, `args` holding `nargs` positional
/// arguments then one value per name in `kwnames` (a tuple, or null); attached thread state.
#[cold]
#[inline(never)]
unsafe fn call_type(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: attached thread state (contract).
    let py = unsafe { Python::assume_attached() };
    // SAFETY: a new tuple of `nargs` slots, or null with MemoryError set.
    let Some(tuple) = (unsafe { Owned::from_owned_ptr(py, ffi::PyTuple_New(nargs as _)) }) else {
        return ptr::null_mut();
    };
    for i in 0..nargs {
        // SAFETY: i < nargs (contract); SET_ITEM steals the new reference made here, into a
        // fresh tuple's empty slot.
        unsafe {
            let item = *args.add(i);
            ffi::Py_INCREF(item);
            ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i as ffi::Py_ssize_t, item);
        }
    }
    let mut kwargs: Option<Owned<'_>> = None;
    if !kwnames.is_null() {
        // SAFETY: a new dict, or null with MemoryError set.
        let Some(dict) = (unsafe { Owned::from_owned_ptr(py, ffi::PyDict_New()) }) else {
            return ptr::null_mut();
        };
        // SAFETY: `kwnames` is a tuple (contract).
        let nkw = unsafe { ffi::PyTuple_GET_SIZE(kwnames) } as usize;
        for k in 0..nkw {
            // SAFETY: k < len(kwnames); the value follows the positional arguments
            // (contract); SetItem takes its own references.
            let stored = unsafe {
                ffi::PyDict_SetItem(
                    dict.as_ptr(),
                    ffi::PyTuple_GET_ITEM(kwnames, k as ffi::Py_ssize_t),
                    *args.add(nargs + k),
                )
            };
            if stored < 0 {
                return ptr::null_mut();
            }
        }
        kwargs = Some(dict);
    }
    // SAFETY: reading a slot of the static `type` object.
    let Some(call) = (unsafe { (*ptr::addr_of_mut!(ffi::PyType_Type)).tp_call }) else {
        Error::runtime_error("bindery: type.__call__ is missing").restore(py);
        return ptr::null_mut();
    };
    // SAFETY: type.__call__ takes a live type, a tuple and a dict or null, and returns a
    // new reference or null with an exception set.
    unsafe {
        call(
            callable,
            tuple.as_ptr(),
            kwargs.as_ref().map_or(ptr::null_mut(), Owned::as_ptr),
        )
    }
}

/// # Safety
/// tp_new's contract.
unsafe fn construct<T, F, Args, M>(
    py: Python<'_>,
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> Result<*mut ffi::PyObject, Box<ArgError>>
where
    T: RegisteredClass,
    F: IntoFunction<Args, M>,
    F::Output: IntoConstructed<T, M>,
{
    let call_error = |e: Error| Box::new(ArgError::Call(e));
    // SAFETY: `args` is a tuple and `kwargs` null or a dict (contract).
    let (nargs, no_keywords) = unsafe {
        (
            ffi::PyTuple_GET_SIZE(args) as usize,
            kwargs.is_null() || ffi::PyDict_Size(kwargs) == 0,
        )
    };
    if no_keywords && nargs == F::ARITY && size_of::<F>() == 0 {
        // Every parameter given positionally and no function data to read: the tuple's
        // items are the argument array.
        // SAFETY: `args` is a live tuple of `nargs` borrowed items, stored contiguously after
        // its header; a raw place, not `ob_item.as_ptr()` (a reference to the declared
        // one-item array would not cover the items after the first).
        let given = unsafe {
            std::slice::from_raw_parts(
                ptr::addr_of!((*args.cast::<ffi::PyTupleObject>()).ob_item)
                    .cast::<*mut ffi::PyObject>(),
                nargs,
            )
        };
        // SAFETY: F is zero-sized (checked above): no data is read.
        let f = unsafe { fn_at::<F>(ptr::null()) };
        // SAFETY: `subtype` is this class or a subclass (tp_new contract).
        return unsafe { make::<T, F, Args, M>(py, f, given, subtype) };
    }
    let data = crate::method::data_for(TypeId::of::<F>())
        .ok_or_else(|| call_error(Error::runtime_error("bindery: constructor data missing")))?;
    // Flatten (args tuple, kwargs dict) into [positional..., keyword values...] + names.
    let mut flat: SmallVec<[*mut ffi::PyObject; 8]> = SmallVec::new();
    for i in 0..nargs {
        // SAFETY: i < len(args); borrowed items of a live tuple.
        flat.push(unsafe { ffi::PyTuple_GET_ITEM(args, i as ffi::Py_ssize_t) });
    }
    let mut kwnames: Option<Owned<'_>> = None;
    if !no_keywords {
        // SAFETY: attached thread state; a live dict.
        let keys = unsafe { Owned::from_owned_ptr(py, ffi::PyDict_Keys(kwargs)) }
            .ok_or_else(|| call_error(CastError::fetch(py).into()))?;
        // SAFETY: a live list.
        let tuple = unsafe { Owned::from_owned_ptr(py, ffi::PyList_AsTuple(keys.as_ptr())) }
            .ok_or_else(|| call_error(CastError::fetch(py).into()))?;
        // SAFETY: a live tuple of the dict's keys.
        let n = unsafe { ffi::PyTuple_GET_SIZE(tuple.as_ptr()) };
        for k in 0..n {
            // SAFETY: k < n; the dict holds each key, so the value lookup is borrowed.
            flat.push(unsafe {
                ffi::PyDict_GetItem(kwargs, ffi::PyTuple_GET_ITEM(tuple.as_ptr(), k))
            });
        }
        kwnames = Some(tuple);
    }
    // SAFETY: the data was made for F (`call` is `leak_fn::<F>`'s result).
    let f = unsafe { fn_at::<F>(data.function.call) };
    let mut defaults: SmallVec<[Owned<'_>; 4]> = SmallVec::new();
    let names = kwnames.as_ref().map_or(ptr::null_mut(), Owned::as_ptr);
    // SAFETY: `flat` holds `nargs` positional arguments then one value per name in `names`.
    let slots =
        unsafe { crate::args::gather(py, data, flat.as_ptr(), nargs, names, &mut defaults) }
            .map_err(call_error)?;
    // SAFETY: `subtype` is this class or a subclass (tp_new contract).
    unsafe { make::<T, F, Args, M>(py, f, &slots, subtype) }
}

/// Runs the constructor `f` on `args` (exactly its parameters) and stores the value in a
/// new instance of `subtype`.
///
/// # Safety
/// `subtype` is `T`'s class or a subclass of it (its instances are `ClassObject<T>`).
#[inline]
unsafe fn make<T, F, Args, M>(
    py: Python<'_>,
    f: &F,
    args: &[*mut ffi::PyObject],
    subtype: *mut ffi::PyTypeObject,
) -> Result<*mut ffi::PyObject, Box<ArgError>>
where
    T: RegisteredClass,
    F: IntoFunction<Args, M>,
    F::Output: IntoConstructed<T, M>,
{
    let call_error = |e: Error| Box::new(ArgError::Call(e));
    let value: T = f
        .call_raw(py, args)?
        .into_constructed()
        .map_err(call_error)?;
    // SAFETY: the caller's contract.
    let object = unsafe { new_instance::<T>(py, subtype, value) }.map_err(call_error)?;
    Ok(object.into_ptr())
}
