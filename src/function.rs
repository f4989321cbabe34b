//! Bound functions: a Rust fn or closure with typed parameters and return value, called by
//! CPython through `METH_FASTCALL | METH_KEYWORDS`.
//!
//! The call path: one generic `extern "C"` trampoline per bound Rust function. When the call
//! passes exactly the parameters positionally (the common case) the arguments are cast in
//! place from CPython's argument array: no allocation, no lock, no dict lookup, no
//! per-function data read (the Rust function is a zero-sized value for fn items and
//! non-capturing closures). Keywords, defaults and errors take a slower path that reads the
//! function's data (names, defaults) from the function object.

use std::ffi::{CString, c_void};
use std::ptr::{self, NonNull};

use bindery_capsule::{Borrowed, Dtor, Owned, Python, capsule_value, new_capsule};
use bindery_cast::{CastError, FromPython, IntoPython};
use pyo3_ffi as ffi;
use smallvec::SmallVec;

use crate::error::Error;

/// Marker: the function returns a value.
pub struct Plain;
/// Marker: the function returns `Result<T, E>`.
pub struct Fallible;

/// What a bound function may return: any [`IntoPython`] value, or `Result<T, E>` whose
/// error becomes a Python exception (`E: Into<Error>`).
pub trait IntoReturn<Marker> {
    /// Converts the return value into a new reference, or the exception to raise.
    fn into_return(self, py: Python<'_>) -> Result<*mut ffi::PyObject, Error>;
}

impl<T: for<'py> IntoPython<'py>> IntoReturn<Plain> for T {
    #[inline]
    fn into_return(self, py: Python<'_>) -> Result<*mut ffi::PyObject, Error> {
        Ok(self.into_python(py)?.into_ptr())
    }
}

impl<T: for<'py> IntoPython<'py>, E: Into<Error>> IntoReturn<Fallible> for Result<T, E> {
    #[inline]
    fn into_return(self, py: Python<'_>) -> Result<*mut ffi::PyObject, Error> {
        match self {
            Ok(value) => Ok(value.into_python(py)?.into_ptr()),
            Err(error) => Err(error.into()),
        }
    }
}

/// A Rust fn or closure that can be bound as a Python function: implemented for
/// `Fn(A1, ..., An) -> R` with up to 12 parameters, each `A: FromPython` (owned types:
/// `i64`, `f64`, `String`, `Vec<T>`, `Option<T>`, registered classes by clone or borrowed
/// as [`InstanceRef`](crate::InstanceRef) / [`InstanceMut`](crate::InstanceMut), ...) and
/// `R: IntoReturn`.
pub trait IntoFunction<Args, Marker>: Send + Sync + 'static {
    /// What the Rust function returns.
    type Output;
    /// How many parameters the function takes.
    const ARITY: usize;
    /// Calls the function with `args` (exactly `ARITY` borrowed references), returning its
    /// Rust result.
    fn call_raw(
        &self,
        py: Python<'_>,
        args: &[*mut ffi::PyObject],
    ) -> Result<Self::Output, Box<ArgError>>;
    /// Calls the function with `args` (exactly `ARITY` borrowed references). The error is
    /// boxed so the result fits in two registers on the (common) success path.
    fn invoke(
        &self,
        py: Python<'_>,
        args: &[*mut ffi::PyObject],
    ) -> Result<*mut ffi::PyObject, Box<ArgError>>;
}

/// Why a call failed: at an argument (index), or in the function or its return value.
pub enum ArgError {
    /// Argument `index` could not be converted.
    Arg(usize, CastError),
    /// The function returned an error, or its value could not be converted.
    Call(Error),
}

#[inline(always)]
pub(crate) fn arg<'a, 'py: 'a, A: FromPython<'a, 'py>>(
    py: Python<'py>,
    args: &[*mut ffi::PyObject],
    index: usize,
) -> Result<A, Box<ArgError>> {
    // SAFETY: `args[index]` is a borrowed reference CPython passed for this call (or a
    // default the caller keeps alive), valid for the whole call.
    let obj = unsafe { Borrowed::from_ptr(py, args[index]) }
        .expect("argument slots are filled before the call");
    // The exact-type fast path (an exact int or float read in place) returns a small
    // Option; only a miss takes the general conversion with its error value.
    if let Some(value) = A::from_python_exact(obj) {
        return Ok(value);
    }
    arg_slow(obj, index)
}

#[inline(never)]
fn arg_slow<'a, 'py: 'a, A: FromPython<'a, 'py>>(
    obj: Borrowed<'a, 'py>,
    index: usize,
) -> Result<A, Box<ArgError>> {
    A::from_python(obj).map_err(|e| Box::new(ArgError::Arg(index, e)))
}

/// Implements [`IntoFunction`] for one arity. Expands, for two parameters, to
/// `impl<F, R, M, A0, A1> IntoFunction<(A0, A1), M> for F where F: Fn(A0, A1) -> R ...`
/// whose `invoke` casts `args[0]` and `args[1]` and calls `self(a0, a1)`.
macro_rules! impl_into_function {
    ($n:literal $(, $a:ident $v:ident $i:tt)*) => {
        impl<F, R, M, $($a,)*> IntoFunction<($($a,)*), M> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: IntoReturn<M>,
            $($a: for<'a, 'py> FromPython<'a, 'py>,)*
        {
            type Output = R;
            const ARITY: usize = $n;
            #[inline]
            #[allow(unused_variables)]
            fn call_raw(&self, py: Python<'_>, args: &[*mut ffi::PyObject]) -> Result<R, Box<ArgError>> {
                $(let $v: $a = arg(py, args, $i)?;)*
                Ok((self)($($v),*))
            }
            #[inline]
            fn invoke(
                &self,
                py: Python<'_>,
                args: &[*mut ffi::PyObject],
            ) -> Result<*mut ffi::PyObject, Box<ArgError>> {
                self.call_raw(py, args)?.into_return(py).map_err(|e| Box::new(ArgError::Call(e)))
            }
        }
    };
}

impl_into_function!(0);
impl_into_function!(1, A0 a0 0);
impl_into_function!(2, A0 a0 0, A1 a1 1);
impl_into_function!(3, A0 a0 0, A1 a1 1, A2 a2 2);
impl_into_function!(4, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3);
impl_into_function!(5, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4);
impl_into_function!(6, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5);
impl_into_function!(7, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6);
impl_into_function!(8, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6, A7 a7 7);
impl_into_function!(9, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6, A7 a7 7, A8 a8 8);
impl_into_function!(10, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6, A7 a7 7, A8 a8 8, A9 a9 9);
impl_into_function!(11, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6, A7 a7 7, A8 a8 8, A9 a9 9, A10 a10 10);
impl_into_function!(12, A0 a0 0, A1 a1 1, A2 a2 2, A3 a3 3, A4 a4 4, A5 a5 5, A6 a6 6, A7 a7 7, A8 a8 8, A9 a9 9, A10 a10 10, A11 a11 11);

/// Makes a parameter's default value (a new reference) for one call.
pub(crate) type MakeDefault =
    std::sync::Arc<dyn Fn(Python<'_>) -> Result<*mut ffi::PyObject, CastError> + Send + Sync>;

/// One parameter: its name and, if it may be omitted, how to make its default.
#[derive(Clone)]
pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) default: Option<MakeDefault>,
}

/// A function to bind: its name, parameters, docstring and the Rust function. Built with
/// [`Function::new`] and the builder methods, added with [`crate::ModuleBuilder::function`].
#[derive(Clone)]
pub struct Function {
    pub(crate) name: String,
    pub(crate) params: Vec<Param>,
    pub(crate) doc: String,
    pub(crate) arity: usize,
    pub(crate) trampoline: ffi::PyCFunctionFastWithKeywords,
    /// The boxed Rust function (`Box<F>` as a raw pointer), leaked with the function data;
    /// null for zero-sized functions, which need no storage.
    pub(crate) call: *const c_void,
}

// SAFETY: `call` points to an `F: Send + Sync` (or is null); the rest is plain data.
unsafe impl Send for Function {}
// SAFETY: as for Send: `F: Sync`.
unsafe impl Sync for Function {}

impl Function {
    /// A function named `name` calling `f`. Name its parameters with [`Function::arg`] (in
    /// order); unnamed ones are called `arg0`, `arg1`, ...
    pub fn new<F, Args, M>(name: &str, f: F) -> Function
    where
        F: IntoFunction<Args, M>,
        Args: 'static,
        M: 'static,
    {
        let call = leak_fn(f).cast_const();
        Function {
            name: name.to_owned(),
            params: Vec::new(),
            doc: String::new(),
            arity: F::ARITY,
            trampoline: trampoline::<F, Args, M>,
            call,
        }
    }

    /// The description of a method: its name and arity; the class builder supplies the
    /// trampoline and keeps the Rust function (`call`, see `Function::call`).
    pub(crate) fn method(name: &str, arity: usize, call: *mut c_void) -> Function {
        Function {
            name: name.to_owned(),
            params: Vec::new(),
            doc: String::new(),
            arity,
            trampoline: method_placeholder,
            call: call.cast_const(),
        }
    }

    /// Names the next parameter.
    pub fn arg(mut self, name: &str) -> Function {
        self.params.push(Param {
            name: name.to_owned(),
            default: None,
        });
        self
    }

    /// Names the next parameter and gives it a default, used when the call omits it (the
    /// default is converted anew for each such call, so mutable defaults are never shared).
    pub fn arg_default<D>(mut self, name: &str, default: D) -> Function
    where
        D: for<'py> IntoPython<'py> + Clone + Send + Sync + 'static,
    {
        self.params.push(Param {
            name: name.to_owned(),
            default: Some(std::sync::Arc::new(move |py| {
                default.clone().into_python(py).map(Owned::into_ptr)
            })),
        });
        self
    }

    /// Names the next parameter as optional: omitted means `None` (for an `Option<T>`
    /// parameter).
    pub fn arg_optional(self, name: &str) -> Function {
        self.arg_default(name, None::<i64>)
    }

    /// The docstring (without the signature line, which bindery writes).
    pub fn doc(mut self, doc: &str) -> Function {
        self.doc = doc.to_owned();
        self
    }

    /// Fills in unnamed parameters, checks the spec; panics on a spec error at module
    /// build time (a programming error, reported with the function's name).
    pub(crate) fn finish(mut self) -> Function {
        assert!(
            self.params.len() <= self.arity,
            "bindery: function {}() names {} parameters but the Rust function takes {}",
            self.name,
            self.params.len(),
            self.arity
        );
        while self.params.len() < self.arity {
            let name = format!("arg{}", self.params.len());
            self.params.push(Param {
                name,
                default: None,
            });
        }
        let mut seen_default = false;
        for p in &self.params {
            assert!(
                !(seen_default && p.default.is_none()),
                "bindery: function {}(): parameter '{}' without a default follows one with a default",
                self.name,
                p.name
            );
            seen_default |= p.default.is_some();
        }
        self
    }
}

/// Stands in for a method's trampoline in its description (methods are called through the
/// class's method table, never through this).
unsafe extern "C" fn method_placeholder(
    _slf: *mut ffi::PyObject,
    _args: *const *mut ffi::PyObject,
    _nargs: ffi::Py_ssize_t,
    _kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    ptr::null_mut()
}

/// The per-function data CPython passes back to the trampoline as the function's `self`.
pub(crate) struct FunctionData {
    pub(crate) function: Function,
    /// The module that defines the function (its exception classes).
    pub(crate) module: &'static crate::module::Spec,
    /// `name()` for messages.
    pub(crate) display: String,
    pub(crate) def: ffi::PyMethodDef,
    /// Keeps `def.ml_name` and `def.ml_doc` alive.
    _strings: (CString, CString),
}

/// Name of the capsules that carry function data.
const DATA_CAPSULE: &str = "bindery.function";

/// Where a `FunctionData` lives: leaked, one per function per process (shared by every
/// interpreter that imports the module).
#[derive(Clone, Copy)]
pub(crate) struct DataRef(pub(crate) &'static FunctionData);

impl FunctionData {
    /// Leaks the data of `function`, with its signature line rendered by `signature`.
    pub(crate) fn leak(
        function: Function,
        signature: String,
        module: &'static crate::module::Spec,
    ) -> &'static FunctionData {
        let name = CString::new(function.name.clone()).expect("function names have no NUL");
        let doc = CString::new(format!("{signature}\n--\n\n{}", function.doc).replace('\0', ""))
            .expect("NUL bytes removed");
        let def = ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: function.trampoline,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: doc.as_ptr(),
        };
        let display = format!("{}()", function.name);
        Box::leak(Box::new(FunctionData {
            function,
            module,
            display,
            def,
            _strings: (name, doc),
        }))
    }

    /// A new function object for `module` (this interpreter's module object).
    pub(crate) fn new_object<'py>(
        &'static self,
        py: Python<'py>,
        module: *mut ffi::PyObject,
    ) -> Result<Owned<'py>, Error> {
        let data = new_capsule(py, DATA_CAPSULE, DataRef(self), Dtor::Leak)
            .map_err(|e| Error::runtime_error(e.to_string()))?;
        let def = ptr::from_ref(&self.def).cast_mut();
        // `__module__` of a builtin function is its module's name, as PyModule_AddFunctions
        // sets it.
        // SAFETY: attached thread state; `module` is a live module object.
        let module_name = unsafe { Owned::from_owned_ptr(py, ffi::PyModule_GetNameObject(module)) }
            .ok_or_else(|| Error::from(CastError::fetch(py)))?;
        // SAFETY: `def` is leaked (lives for the process) and CPython only reads it; `data`
        // and `module_name` are live objects; attached thread state (token).
        let object = unsafe {
            ffi::PyCMethod_New(def, data.as_ptr(), module_name.as_ptr(), ptr::null_mut())
        };
        // SAFETY: a new reference or null with an exception set.
        unsafe { Owned::from_owned_ptr(py, object) }.ok_or_else(|| CastError::fetch(py).into())
    }
}

// SAFETY: FunctionData is leaked and immutable after creation; `Function` is Send + Sync and
// the C strings and method def are only read.
unsafe impl Send for DataRef {}
// SAFETY: as for Send.
unsafe impl Sync for DataRef {}

/// The function data behind a trampoline's `self`.
fn data_of(py: Python<'_>, slf: *mut ffi::PyObject) -> Option<&'static FunctionData> {
    // SAFETY: `slf` is the function's self object, alive for the call.
    let capsule = unsafe { Owned::from_borrowed_ptr(py, slf) }?;
    let data = capsule_value::<DataRef>(&capsule, DATA_CAPSULE).ok()?;
    // SAFETY: the capsule holds a DataRef (checked), which never changes.
    Some(unsafe { data.as_ref() }.0)
}

/// The Rust function value of type `F` for this call.
///
/// # Safety
/// `data` is the function data made for `F` (or `F` is zero-sized).
pub(crate) unsafe fn callee<F>(data: Option<&FunctionData>) -> Option<&F> {
    let call = if size_of::<F>() == 0 {
        ptr::null()
    } else {
        data?.function.call
    };
    // SAFETY: `call` is `leak_fn::<F>`'s result for F (null for a zero-sized F).
    Some(unsafe { fn_at::<F>(call) })
}

/// Keeps a Rust function value for the life of the process: null for zero-sized values
/// (fn items, closures without captures: made from nothing at call time, see [`fn_at`]),
/// else a leaked `Box<F>`.
pub(crate) fn leak_fn<F>(f: F) -> *mut c_void {
    if size_of::<F>() == 0 {
        std::mem::forget(f);
        ptr::null_mut()
    } else {
        Box::into_raw(Box::new(f)).cast()
    }
}

/// The function value kept by [`leak_fn`].
///
/// # Safety
/// `data` came from `leak_fn::<F>` (any pointer will do for a zero-sized `F`).
pub(crate) unsafe fn fn_at<'f, F>(data: *const c_void) -> &'f F {
    if size_of::<F>() == 0 {
        // SAFETY: F is zero-sized and a value of it was given to `leak_fn` (and forgotten
        // there), so F is inhabited; a reference to a ZST may be any aligned non-null
        // pointer.
        unsafe { NonNull::<F>::dangling().as_ref() }
    } else {
        // SAFETY: `data` is the `Box<F>` leaked by `leak_fn::<F>`, never freed.
        unsafe { &*data.cast::<F>() }
    }
}

/// The vectorcall argument array as a slice. CPython passes a null array when there are no
/// arguments (`PyObject_CallNoArgs`: a `defaultdict` factory, `copy`, `pickle`), which
/// `slice::from_raw_parts` does not accept.
///
/// # Safety
/// `args` holds `nargs` borrowed references alive for `'a`, or `nargs` is 0.
#[inline(always)]
pub(crate) unsafe fn arg_slice<'a>(
    args: *const *mut ffi::PyObject,
    nargs: usize,
) -> &'a [*mut ffi::PyObject] {
    if nargs == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract; a non-empty vectorcall array is never null.
        unsafe { std::slice::from_raw_parts(args, nargs) }
    }
}

/// The `METH_FASTCALL | METH_KEYWORDS` entry point of a bound Rust function `F`.
unsafe extern "C" fn trampoline<F, Args, M>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    F: IntoFunction<Args, M>,
{
    // SAFETY: CPython calls function entry points with an attached thread state, held for
    // the whole call.
    let py = unsafe { Python::assume_attached() };
    crate::panic::catch_panic(py, ptr::null_mut(), || {
        // SAFETY: CPython's vectorcall contract: `args` holds `nargs` positional arguments
        // followed by one value per name in `kwnames` (a tuple, or null).
        unsafe { call::<F, Args, M>(py, slf, args, nargsf, kwnames) }
    })
}

/// The body of the trampoline, panics aside: the result, or null with the exception set.
///
/// # Safety
/// As for the trampoline's vectorcall arguments.
#[inline]
unsafe fn call<F, Args, M>(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    F: IntoFunction<Args, M>,
{
    // SAFETY: PyVectorcall_NARGS only masks a flag bit.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf as usize) } as usize;
    if kwnames.is_null() && nargs == F::ARITY && size_of::<F>() == 0 {
        // Fast path: every parameter given positionally, and no function data to read.
        // SAFETY: `args` holds `nargs` borrowed references (vectorcall contract).
        let given = unsafe { arg_slice(args, nargs) };
        // SAFETY: F is zero-sized (checked above).
        let f = unsafe { callee::<F>(None) }.expect("zero-sized functions need no data");
        return match f.invoke(py, given) {
            Ok(object) => object,
            Err(error) => fail(py, slf, *error),
        };
    }
    // SAFETY: forwarded vectorcall contract.
    match unsafe { call_slow::<F, Args, M>(py, slf, args, nargs, kwnames) } {
        Ok(object) => object,
        Err(error) => fail(py, slf, *error),
    }
}

/// Keywords, defaults, or a function value stored in the function data.
///
/// # Safety
/// As for the trampoline's vectorcall arguments.
#[inline(never)]
unsafe fn call_slow<F, Args, M>(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> Result<*mut ffi::PyObject, Box<ArgError>>
where
    F: IntoFunction<Args, M>,
{
    let call_error = |error: Error| Box::new(ArgError::Call(error));
    let data = data_of(py, slf).ok_or_else(|| call_error(missing_data(py)))?;
    // SAFETY: `data` belongs to this trampoline's F.
    let f = unsafe { callee::<F>(Some(data)) }.ok_or_else(|| call_error(missing_data(py)))?;
    if kwnames.is_null() && nargs == F::ARITY {
        // SAFETY: `args` holds `nargs` borrowed references (vectorcall contract).
        let given = unsafe { arg_slice(args, nargs) };
        return f.invoke(py, given);
    }
    let mut defaults: SmallVec<[Owned<'_>; 4]> = SmallVec::new();
    // SAFETY: vectorcall contract, forwarded.
    let slots = unsafe { crate::args::gather(py, data, args, nargs, kwnames, &mut defaults) }
        .map_err(call_error)?;
    let result = f.invoke(py, &slots);
    drop(defaults);
    result
}

/// Raises `error` (with the function and parameter names) and returns null.
#[cold]
#[inline(never)]
fn fail(py: Python<'_>, slf: *mut ffi::PyObject, error: ArgError) -> *mut ffi::PyObject {
    let module = data_of(py, slf).map(|data| data.module);
    explain(py, slf, error).restore_in(py, module);
    ptr::null_mut()
}

fn missing_data(_py: Python<'_>) -> Error {
    Error::runtime_error("bindery: a bound function was called without its function data")
}

/// Adds the function and parameter names to an error.
fn explain(py: Python<'_>, slf: *mut ffi::PyObject, error: ArgError) -> Error {
    explain_with(data_of(py, slf), error)
}

/// Adds the names from `data` (if known) to an error.
pub(crate) fn explain_with(data: Option<&FunctionData>, error: ArgError) -> Error {
    match error {
        ArgError::Call(error) => error,
        ArgError::Arg(index, error) => {
            let prefix = match data {
                Some(data) => format!(
                    "{} argument '{}': ",
                    data.display,
                    data.function
                        .params
                        .get(index)
                        .map_or("?", |p| p.name.as_str())
                ),
                None => format!("argument {index}: "),
            };
            Error::from(error).context(&prefix)
        }
    }
}
