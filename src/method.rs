//! Methods of bound classes: Rust fns or closures whose first parameter is `&T` or `&mut T`,
//! called through `METH_FASTCALL | METH_KEYWORDS` from the class's method table.
//!
//! The receiver is borrowed under the instance's runtime borrow flag: a method taking
//! `&mut T` while the value is borrowed (a re-entrant call) raises `RuntimeError`, never
//! aliases. A method's names and defaults are found by the Rust function's type (methods
//! have no per-function object to carry them), on the slow path only.

use std::any::TypeId;
use std::collections::HashMap;
use std::ptr;
use std::sync::RwLock;

use bindery_capsule::{Borrowed, Owned, Python};
use bindery_cast::{FromPython, RegisteredClass};
use pyo3_ffi as ffi;
use smallvec::SmallVec;

use crate::error::Error;
use crate::function::{ArgError, DataRef, FunctionData, IntoReturn, arg, callee};

/// Marker: the method takes `&T`.
pub struct Shared;
/// Marker: the method takes `&mut T`.
pub struct Exclusive;

/// A Rust fn or closure that can be bound as a method of the class of `T`: implemented for
/// `Fn(&T, A1, ..., An) -> R` and `Fn(&mut T, A1, ..., An) -> R` with up to 8 parameters
/// after the receiver.
pub trait IntoMethod<T, Recv, Args, M>: Send + Sync + 'static {
    /// How many parameters follow the receiver.
    const ARITY: usize;
    /// Borrows the receiver and calls the method with `args` (exactly `ARITY`).
    fn invoke(
        &self,
        py: Python<'_>,
        slf: Borrowed<'_, '_>,
        args: &[*mut ffi::PyObject],
    ) -> Result<*mut ffi::PyObject, Box<ArgError>>;
}

fn receiver_error(error: bindery_cast::CastError) -> Box<ArgError> {
    Box::new(ArgError::Call(Error::from(error)))
}

/// Implements [`IntoMethod`] for one arity, for both receivers. For one parameter it
/// expands to `impl IntoMethod<T, Shared, (A0,), M> for F where F: Fn(&T, A0) -> R` (and
/// the `&mut T` twin), whose `invoke` borrows `slf` as `Ref<T>` (`RefMut<T>`), casts
/// `args[0]` and calls `self(&value, a0)`.
macro_rules! impl_into_method {
    ($n:literal $(, $a:ident $v:ident $i:tt)*) => {
        impl<T, F, R, M, $($a,)*> IntoMethod<T, Shared, ($($a,)*), M> for F
        where
            T: RegisteredClass,
            F: Fn(&T, $($a),*) -> R + Send + Sync + 'static,
            R: IntoReturn<M>,
            $($a: for<'a, 'py> FromPython<'a, 'py>,)*
        {
            const ARITY: usize = $n;
            #[inline]
            #[allow(unused_variables)]
            fn invoke(&self, py: Python<'_>, slf: Borrowed<'_, '_>, args: &[*mut ffi::PyObject])
                -> Result<*mut ffi::PyObject, Box<ArgError>> {
                // SAFETY: CPython only calls a method of T's class (its method table) with an
                // instance of that class or a subclass: a ClassObject<T>.
                let this = unsafe { bindery_cast::ClassObject::<T>::borrow(slf) }.map_err(receiver_error)?;
                $(let $v: $a = arg(py, args, $i)?;)*
                (self)(&this, $($v),*).into_return(py).map_err(|e| Box::new(ArgError::Call(e)))
            }
        }
        impl<T, F, R, M, $($a,)*> IntoMethod<T, Exclusive, ($($a,)*), M> for F
        where
            T: RegisteredClass,
            F: Fn(&mut T, $($a),*) -> R + Send + Sync + 'static,
            R: IntoReturn<M>,
            $($a: for<'a, 'py> FromPython<'a, 'py>,)*
        {
            const ARITY: usize = $n;
            #[inline]
            #[allow(unused_variables)]
            fn invoke(&self, py: Python<'_>, slf: Borrowed<'_, '_>, args: &[*mut ffi::PyObject])
                -> Result<*mut ffi::PyObject, Box<ArgError>> {
                $(let $v: $a = arg(py, args, $i)?;)*
                // SAFETY: as for the shared receiver: a method of T's class gets a ClassObject<T>.
                let mut this = unsafe { bindery_cast::ClassObject::<T>::borrow_mut(slf) }
                    .map_err(receiver_error)?;
                (self)(&mut this, $($v),*).into_return(py).map_err(|e| Box::new(ArgError::Call(e)))
            }
        }
    };
}

impl_into_method!(0);
impl_into_method!(1, A0 a0 0);
impl_into_method!(2, A0 a0 0, A1 a1 1);
impl_into_method!(3, A0 a0 0, A1 a1 1, A2 a2 2);
impl_into_method!(4, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3);
impl_into_method!(5, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4);
impl_into_method!(6, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5);
impl_into_method!(7, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6);
impl_into_method!(8, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6, A7 a7 7);

/// Method data by the Rust function's type. Written when a class's definition is made
/// (first import), read on slow paths (keywords, defaults, errors).
static METHODS: RwLock<Option<HashMap<TypeId, DataRef>>> = RwLock::new(None);

/// Records the data of the method implemented by the Rust function type `id`.
pub(crate) fn record(id: TypeId, data: &'static FunctionData) {
    let mut map = METHODS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get_or_insert_with(HashMap::new)
        .entry(id)
        .or_insert(DataRef(data));
}

pub(crate) fn data_for(id: TypeId) -> Option<&'static FunctionData> {
    let map = METHODS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.as_ref()?.get(&id).map(|data| data.0)
}

/// The `METH_FASTCALL | METH_KEYWORDS` entry point of a method `F` of the class of `T`.
pub(crate) unsafe extern "C" fn method_trampoline<T, F, Recv, Args, M>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    F: IntoMethod<T, Recv, Args, M>,
{
    // SAFETY: CPython calls methods with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    crate::panic::catch_panic(py, ptr::null_mut(), || {
        // SAFETY: vectorcall contract (see the function trampoline); `slf` is the instance.
        unsafe { call::<T, F, Recv, Args, M>(py, slf, args, nargsf, kwnames) }
    })
}

/// The `METH_NOARGS` entry point of a method `F` without parameters (`F::ARITY == 0`).
pub(crate) unsafe extern "C" fn method_noargs<T, F, Recv, Args, M>(
    slf: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    F: IntoMethod<T, Recv, Args, M>,
{
    // SAFETY: CPython calls methods with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    crate::panic::catch_panic(py, ptr::null_mut(), || {
        // SAFETY: `slf` is the instance; no arguments and no keywords (CPython refused any
        // before calling a METH_NOARGS function; `arg_slice` takes the null array).
        unsafe { call::<T, F, Recv, Args, M>(py, slf, ptr::null(), 0, ptr::null_mut()) }
    })
}

/// # Safety
/// As for the trampoline.
#[inline]
unsafe fn call<T, F, Recv, Args, M>(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    F: IntoMethod<T, Recv, Args, M>,
{
    // SAFETY: `slf` is the instance the method was called on, alive for the call.
    let Some(this) = (unsafe { Borrowed::from_ptr(py, slf) }) else {
        return fail::<F>(
            py,
            ArgError::Call(Error::type_error("a method needs an instance")),
        );
    };
    // SAFETY: PyVectorcall_NARGS only masks a flag bit.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf as usize) } as usize;
    let data = if size_of::<F>() == 0 && kwnames.is_null() && nargs == F::ARITY {
        None
    } else {
        match data_for(TypeId::of::<F>()) {
            Some(data) => Some(data),
            None => {
                return fail::<F>(
                    py,
                    ArgError::Call(Error::runtime_error("bindery: method data missing")),
                );
            }
        }
    };
    // SAFETY: `data` is F's (recorded by TypeId) or F is zero-sized.
    let Some(f) = (unsafe { callee::<F>(data) }) else {
        return fail::<F>(
            py,
            ArgError::Call(Error::runtime_error("bindery: method data missing")),
        );
    };
    let result = if kwnames.is_null() && nargs == F::ARITY {
        // SAFETY: `args` holds `nargs` borrowed references (vectorcall contract).
        f.invoke(py, this, unsafe { crate::function::arg_slice(args, nargs) })
    } else {
        let data = data.expect("looked up above");
        let mut defaults: SmallVec<[Owned<'_>; 4]> = SmallVec::new();
        // SAFETY: vectorcall contract, forwarded.
        match unsafe { crate::args::gather(py, data, args, nargs, kwnames, &mut defaults) } {
            Ok(slots) => f.invoke(py, this, &slots),
            Err(error) => Err(Box::new(ArgError::Call(error))),
        }
    };
    match result {
        Ok(object) => object,
        Err(error) => fail::<F>(py, *error),
    }
}

#[cold]
#[inline(never)]
fn fail<F: 'static>(py: Python<'_>, error: ArgError) -> *mut ffi::PyObject {
    let data = data_for(TypeId::of::<F>());
    crate::function::explain_with(data, error).restore_in(py, data.map(|d| d.module));
    ptr::null_mut()
}
