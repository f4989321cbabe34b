//! Classes: a Rust type `T` bound to a Python heap type made anew in every interpreter that
//! imports the module (`PyType_FromModuleAndSpec`), with the Rust value stored inline in the
//! instance (`bindery_cast::ClassObject<T>`: no second allocation), a constructor, methods,
//! static methods, properties, `__repr__`, `__eq__`/`__hash__`, `__len__`/`__getitem__`,
//! weak references and subclassing from Python, garbage-collector support (`gc`); registered
//! in the internals (shared, or module-local on request) so casts of `T` work across modules.

mod construct;
mod gc;

use std::any::TypeId;
use std::ffi::{CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::OnceLock;

use bindery_capsule::{Borrowed, Owned, Python};
use bindery_cast::{
    CastError, ClassObject, FromPython, IntoPython, Ref, RegisteredClass, Visibility,
};
use pyo3_ffi as ffi;

use crate::error::Error;
use crate::function::{Function, FunctionData, IntoFunction, fn_at, leak_fn};
use crate::method::IntoMethod;
use crate::module::{ModuleRef, Spec};
pub use construct::IntoConstructed;
use construct::{default_new, no_constructor, tp_new};

/// A slot function and the leaked Rust value it needs (null for zero-sized ones).
type Slot = (c_int, *mut c_void);

/// A class to bind: built with [`Class::new`] and the builder methods, added with
/// [`crate::ModuleBuilder::class`].
pub struct Class<T: RegisteredClass> {
    name: String,
    doc: String,
    visibility: Visibility,
    subclassable: bool,
    constructor: Option<(Function, ffi::newfunc, TypeId)>,
    /// The class's `tp_vectorcall` (calls of the class itself), with its constructor.
    vectorcall: Option<ffi::vectorcallfunc>,
    /// Each method: its function, its `METH_FASTCALL | METH_KEYWORDS` and `METH_NOARGS`
    /// entry points (the second for methods without parameters) and its Rust type's id.
    methods: Vec<(
        Function,
        ffi::PyCFunctionFastWithKeywords,
        ffi::PyCFunction,
        TypeId,
    )>,
    statics: Vec<Function>,
    properties: Vec<PropertyDef>,
    slots: Vec<Slot>,
    /// Garbage-collector support ([`Class::gc`], [`Class::gc_through_cast`]).
    gc: Option<gc::GcSlots>,
    /// `tp_new` without a [`Function`] ([`Class::default_constructor`]).
    bare_new: Option<ffi::newfunc>,
    /// The `tp_dealloc` slot: bindery-cast's, or bindery-gc-support's for GC classes.
    dealloc: unsafe extern "C" fn(*mut ffi::PyObject),
    /// The type spec and static methods' data, made by the first exec (leaked: CPython
    /// reads the spec for every interpreter).
    built: OnceLock<Built>,
    _t: std::marker::PhantomData<fn() -> T>,
}

// SAFETY: the raw pointers are leaked, immutable slot data and Rust functions that are
// Send + Sync (builder bounds).
unsafe impl<T: RegisteredClass> Send for Class<T> {}
// SAFETY: as for Send.
unsafe impl<T: RegisteredClass> Sync for Class<T> {}

struct Built {
    spec: usize,
    statics: Vec<&'static FunctionData>,
}

struct PropertyDef {
    name: CString,
    doc: CString,
    get: ffi::getter,
    set: Option<ffi::setter>,
    closure: *mut c_void,
}

impl<T: RegisteredClass> Class<T> {
    /// A class named `name` for the Rust type `T`, registered in the shared registry,
    /// subclassable from Python, with weak reference support.
    pub fn new(name: &str) -> Class<T> {
        Class {
            name: name.to_owned(),
            doc: String::new(),
            visibility: Visibility::Shared,
            subclassable: true,
            constructor: None,
            vectorcall: None,
            methods: Vec::new(),
            statics: Vec::new(),
            properties: Vec::new(),
            slots: Vec::new(),
            gc: None,
            bare_new: None,
            dealloc: bindery_cast::tp_dealloc::<T>,
            built: OnceLock::new(),
            _t: std::marker::PhantomData,
        }
    }

    /// The class docstring.
    pub fn doc(mut self, doc: &str) -> Class<T> {
        self.doc = doc.to_owned();
        self
    }

    /// Registers the type in this module's local registry instead of the shared one: other
    /// modules do not see it, and it does not clash with their registrations of `T`.
    pub fn module_local(mut self) -> Class<T> {
        self.visibility = Visibility::Local;
        self
    }

    /// Forbids subclassing from Python.
    pub fn final_class(mut self) -> Class<T> {
        self.subclassable = false;
        self
    }

    /// The constructor: `f` makes the value from the call's arguments (`Fn(A..) -> T` or
    /// `-> Result<T, E>`). `describe` names its parameters like a [`Function`]'s.
    ///
    /// `Class(a, b)` with every parameter positional and a non-capturing `f` runs `f` on
    /// CPython's argument array (the class's own `tp_vectorcall`); other calls, Python
    /// subclasses and a class whose `__init__`/`__new__` was replaced from Python go through
    /// `type.__call__` as usual.
    pub fn constructor<F, Args, M>(
        mut self,
        f: F,
        describe: impl FnOnce(Function) -> Function,
    ) -> Class<T>
    where
        F: IntoFunction<Args, M>,
        F::Output: IntoConstructed<T, M>,
        Args: 'static,
        M: 'static,
    {
        let function = describe(Function::new("__new__", f)).finish();
        self.bare_new = None;
        self.constructor = Some((function, tp_new::<T, F, Args, M>, TypeId::of::<F>()));
        self.vectorcall = Some(construct::vectorcall_new::<T, F, Args, M>);
        self
    }

    /// The constructor `Class()`, making `T::default()`. Like `object()`, it takes no
    /// arguments (`TypeError: Name() takes no arguments`), except in a Python subclass that
    /// defines its own `__init__`: then the arguments are left to that `__init__`, which
    /// runs on the constructed value. Replaces a [`Class::constructor`].
    pub fn default_constructor(mut self) -> Class<T>
    where
        T: Default,
    {
        self.constructor = None;
        self.bare_new = Some(default_new::<T>);
        self.vectorcall = Some(construct::vectorcall_default::<T>);
        self
    }

    /// A method: `f` takes `&T` or `&mut T` first, then the parameters `describe` names.
    /// A method without parameters is `METH_NOARGS`; the others are
    /// `METH_FASTCALL | METH_KEYWORDS`.
    pub fn method<F, Recv, Args, M>(
        mut self,
        name: &str,
        f: F,
        describe: impl FnOnce(Function) -> Function,
    ) -> Class<T>
    where
        F: IntoMethod<T, Recv, Args, M>,
        Recv: 'static,
        Args: 'static,
        M: 'static,
    {
        let function = describe(Function::method(name, F::ARITY, leak_fn(f))).finish();
        self.methods.push((
            function,
            crate::method::method_trampoline::<T, F, Recv, Args, M>,
            crate::method::method_noargs::<T, F, Recv, Args, M>,
            TypeId::of::<F>(),
        ));
        self
    }

    /// A static method (`Class.name(...)`, no instance), built like a module function.
    pub fn static_method(mut self, function: Function) -> Class<T> {
        self.statics.push(function.finish());
        self
    }

    /// A read-only property computed by `get(&T)`.
    pub fn getter<G, R, M>(mut self, name: &str, get: G) -> Class<T>
    where
        G: Fn(&T) -> R + Send + Sync + 'static,
        R: crate::function::IntoReturn<M>,
        M: 'static,
    {
        self.properties.push(PropertyDef {
            name: CString::new(name).expect("property names have no NUL"),
            doc: CString::default(),
            get: getter::<T, G, R, M>,
            set: None,
            closure: leak_fn(PropertyFns::<G, ()> { get, set: () }),
        });
        self
    }

    /// A read-write property: `get(&T)` and `set(&mut T, value)`.
    pub fn property<G, S, R, M, V>(mut self, name: &str, get: G, set: S) -> Class<T>
    where
        G: Fn(&T) -> R + Send + Sync + 'static,
        R: crate::function::IntoReturn<M>,
        S: Fn(&mut T, V) + Send + Sync + 'static,
        V: for<'a, 'py> FromPython<'a, 'py>,
        M: 'static,
    {
        self.properties.push(PropertyDef {
            name: CString::new(name).expect("property names have no NUL"),
            doc: CString::default(),
            get: getter_of_pair::<T, G, S, R, M>,
            set: Some(setter::<T, G, S, V>),
            closure: leak_fn(PropertyFns { get, set }),
        });
        self
    }

    /// `__repr__` from `f(&T) -> String`. `f` must not capture (a fn item or a closure
    /// without captures): slots carry no data.
    pub fn repr<F: Fn(&T) -> String + Send + Sync + Copy + 'static>(mut self, f: F) -> Class<T> {
        zero_sized(&f, "repr");
        self.slots
            .push((ffi::Py_tp_repr, repr::<T, F> as *mut c_void));
        self
    }

    /// `__eq__` (and `__ne__`) from `f(&T, &T) -> bool`; comparing with another type is
    /// `NotImplemented`. `f` must not capture.
    pub fn eq<F: Fn(&T, &T) -> bool + Send + Sync + Copy + 'static>(mut self, f: F) -> Class<T> {
        zero_sized(&f, "eq");
        self.slots
            .push((ffi::Py_tp_richcompare, richcompare::<T, F> as *mut c_void));
        self
    }

    /// `__hash__` from `f(&T) -> u64`. `f` must not capture.
    pub fn hash<F: Fn(&T) -> u64 + Send + Sync + Copy + 'static>(mut self, f: F) -> Class<T> {
        zero_sized(&f, "hash");
        self.slots
            .push((ffi::Py_tp_hash, hash::<T, F> as *mut c_void));
        self
    }

    /// `__len__` (sequence and mapping protocol) from `f(&T) -> usize`. `f` must not
    /// capture.
    pub fn len<F: Fn(&T) -> usize + Send + Sync + Copy + 'static>(mut self, f: F) -> Class<T> {
        zero_sized(&f, "len");
        self.slots
            .push((ffi::Py_mp_length, len::<T, F> as *mut c_void));
        self.slots
            .push((ffi::Py_sq_length, len::<T, F> as *mut c_void));
        self
    }

    /// `__getitem__` (mapping protocol) from `f(&T, key) -> R` (`Result` to raise
    /// `KeyError`/`IndexError`). `f` must not capture.
    pub fn getitem<F, K, R, M>(mut self, f: F) -> Class<T>
    where
        F: Fn(&T, K) -> R + Send + Sync + Copy + 'static,
        K: for<'a, 'py> FromPython<'a, 'py>,
        R: crate::function::IntoReturn<M>,
        M: 'static,
    {
        zero_sized(&f, "getitem");
        self.slots.push((
            ffi::Py_mp_subscript,
            getitem::<T, F, K, R, M> as *mut c_void,
        ));
        self
    }
}

fn zero_sized<F>(_f: &F, what: &str) {
    assert!(
        size_of::<F>() == 0,
        "bindery: the {what} function of a class must not capture anything (a fn item or a \
         closure without captures): class slots carry no data"
    );
}

/// A property's getter and setter functions (`()` for none).
struct PropertyFns<G, S> {
    get: G,
    set: S,
}

/// The class's part in a module: its type object is made in each interpreter.
pub(crate) trait ClassDef: Send + Sync {
    /// Makes the type in this interpreter, registers it and adds it to the module.
    fn create(&'static self, module: &ModuleRef<'_>, spec: &'static Spec) -> Result<(), Error>;
}

impl<T: RegisteredClass> ClassDef for Class<T> {
    fn create(&'static self, module: &ModuleRef<'_>, spec: &'static Spec) -> Result<(), Error> {
        let py = module.py();
        let built = self.built.get_or_init(|| self.build(py, spec));
        let type_spec = built.spec as *mut ffi::PyType_Spec;
        // SAFETY: attached thread state; `type_spec` is leaked and valid; the module is a
        // live module object; no bases (object).
        let ty =
            unsafe { ffi::PyType_FromModuleAndSpec(module.as_ptr(), type_spec, ptr::null_mut()) };
        // SAFETY: a new reference or null with an exception set.
        let ty = unsafe { Owned::from_owned_ptr(py, ty) }
            .ok_or_else(|| Error::from(CastError::fetch(py)))?;
        if let Some(vectorcall) = self.vectorcall {
            // SAFETY: a fresh heap type nobody has called yet. `type` has
            // Py_TPFLAGS_HAVE_VECTORCALL, so calls of this type read this field; CPython
            // never inherits it to subclasses (construct.rs relies on that).
            unsafe { (*ty.as_ptr().cast::<ffi::PyTypeObject>()).tp_vectorcall = Some(vectorcall) };
        }
        for function in &built.statics {
            let object = function.new_object(py, module.as_ptr())?;
            // SAFETY: attached thread state; a live function object.
            let method =
                unsafe { Owned::from_owned_ptr(py, ffi::PyStaticMethod_New(object.as_ptr())) }
                    .ok_or_else(|| Error::from(CastError::fetch(py)))?;
            let name = CString::new(function.function.name.as_str()).expect("no NUL");
            // SAFETY: attached thread state; live objects; heap types accept new attributes.
            if unsafe { ffi::PyObject_SetAttrString(ty.as_ptr(), name.as_ptr(), method.as_ptr()) }
                < 0
            {
                return Err(CastError::fetch(py).into());
            }
        }
        // SAFETY: the type's instances are ClassObject<T> (basicsize from BASIC_SIZE plus
        // the weak-reference slot), allocated by tp_alloc, initialised by our tp_new and
        // destroyed by `self.dealloc` (bindery_cast's or bindery_gc_support's tp_dealloc::<T>).
        unsafe {
            bindery_cast::register_class::<T>(py, ty.as_ptr().cast(), spec.name(), self.visibility)
        }
        .map_err(|e| Error::new(crate::ExceptionClass::ImportError, e.to_string()))?;
        module.add(&self.name, ty)
    }
}

impl<T: RegisteredClass> Class<T> {
    /// Builds the leaked type spec and static methods (first exec of the module in the
    /// process).
    fn build(&'static self, py: Python<'_>, spec: &'static Spec) -> Built {
        let qualified = CString::new(format!("{}.{}", spec.name(), self.name)).expect("no NUL");
        let mut slots: Vec<ffi::PyType_Slot> = Vec::new();
        let mut push =
            |slot: c_int, pfunc: *mut c_void| slots.push(ffi::PyType_Slot { slot, pfunc });
        push(ffi::Py_tp_dealloc, self.dealloc as *mut c_void);
        let new: ffi::newfunc = match &self.constructor {
            Some((function, new, id)) => {
                let data = FunctionData::leak(function.clone(), signature(py, function), spec);
                crate::method::record(*id, data);
                *new
            }
            None => self.bare_new.unwrap_or(no_constructor),
        };
        push(ffi::Py_tp_new, new as *mut c_void);
        if !self.doc.is_empty() {
            let doc = CString::new(self.doc.replace('\0', "")).expect("NUL removed");
            push(ffi::Py_tp_doc, doc.into_raw().cast());
        }
        let mut methods: Vec<ffi::PyMethodDef> = Vec::new();
        for (function, trampoline, noargs, id) in &self.methods {
            let data = FunctionData::leak(function.clone(), method_signature(py, function), spec);
            crate::method::record(*id, data);
            // A method without parameters is METH_NOARGS: CPython refuses arguments itself
            // ("takes no arguments"), and the call skips the vectorcall argument handling.
            let (ml_meth, ml_flags) = if function.params.is_empty() {
                (
                    ffi::PyMethodDefPointer {
                        PyCFunction: *noargs,
                    },
                    ffi::METH_NOARGS,
                )
            } else {
                (
                    ffi::PyMethodDefPointer {
                        PyCFunctionFastWithKeywords: *trampoline,
                    },
                    ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
                )
            };
            methods.push(ffi::PyMethodDef {
                ml_name: data.def.ml_name,
                ml_meth,
                ml_flags,
                ml_doc: data.def.ml_doc,
            });
        }
        methods.push(ffi::PyMethodDef::zeroed());
        push(
            ffi::Py_tp_methods,
            Box::leak(methods.into_boxed_slice()).as_mut_ptr().cast(),
        );
        let mut getset: Vec<ffi::PyGetSetDef> = self
            .properties
            .iter()
            .map(|p| ffi::PyGetSetDef {
                name: p.name.as_ptr(),
                get: Some(p.get),
                set: p.set,
                doc: if p.doc.is_empty() {
                    ptr::null()
                } else {
                    p.doc.as_ptr()
                },
                closure: p.closure,
            })
            .collect();
        getset.push(ffi::PyGetSetDef {
            name: ptr::null(),
            get: None,
            set: None,
            doc: ptr::null(),
            closure: ptr::null_mut(),
        });
        push(
            ffi::Py_tp_getset,
            Box::leak(getset.into_boxed_slice()).as_mut_ptr().cast(),
        );
        // Weak references: a slot after the value, announced by __weaklistoffset__.
        let weaklist_offset = weaklist_offset::<T>();
        let members = Box::leak(Box::new([
            ffi::PyMemberDef {
                name: c"__weaklistoffset__".as_ptr(),
                type_code: ffi::Py_T_PYSSIZET,
                offset: weaklist_offset,
                flags: ffi::Py_READONLY,
                doc: ptr::null(),
            },
            ffi::PyMemberDef::default(),
        ]));
        push(ffi::Py_tp_members, members.as_mut_ptr().cast());
        for (slot, pfunc) in &self.slots {
            push(*slot, *pfunc);
        }
        if let Some(gc) = &self.gc {
            push(ffi::Py_tp_traverse, gc.traverse as *mut c_void);
            push(ffi::Py_tp_clear, gc.clear as *mut c_void);
        }
        push(0, ptr::null_mut());
        let statics: Vec<&'static FunctionData> = self
            .statics
            .iter()
            .map(|f| FunctionData::leak(f.clone(), crate::module::signature_of(py, f), spec))
            .collect();
        let mut flags = ffi::Py_TPFLAGS_DEFAULT as u32;
        if self.subclassable {
            flags |= ffi::Py_TPFLAGS_BASETYPE as u32;
        }
        if self.gc.is_some() {
            flags |= ffi::Py_TPFLAGS_HAVE_GC as u32;
        }
        let type_spec = ffi::PyType_Spec {
            name: qualified.into_raw(),
            basicsize: (weaklist_offset as usize + size_of::<*mut ffi::PyObject>()) as c_int,
            itemsize: 0,
            flags: flags as _,
            slots: Box::leak(slots.into_boxed_slice()).as_mut_ptr(),
        };
        Built {
            spec: Box::leak(Box::new(type_spec)) as *mut ffi::PyType_Spec as usize,
            statics,
        }
    }
}

/// Where the weak-reference list pointer lives: after the `ClassObject<T>`, aligned.
fn weaklist_offset<T: RegisteredClass>() -> ffi::Py_ssize_t {
    let align = align_of::<*mut ffi::PyObject>();
    let size = size_of::<ClassObject<T>>();
    (size.div_ceil(align) * align) as ffi::Py_ssize_t
}

fn signature(py: Python<'_>, function: &Function) -> String {
    crate::module::signature_of(py, function).replace("($module", "($type")
}

fn method_signature(py: Python<'_>, function: &Function) -> String {
    crate::module::signature_of(py, function).replace("($module", "($self")
}

/// Runs a slot body with the instance borrowed; errors and panics become exceptions.
fn with_ref<T: RegisteredClass, R>(
    obj: *mut ffi::PyObject,
    on_error: R,
    body: impl FnOnce(Python<'_>, &T) -> Result<R, Error>,
) -> R {
    // SAFETY: CPython calls slots with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `obj` is the live instance the slot was called for.
        let obj = unsafe { Borrowed::from_ptr(py, obj) }
            .ok_or_else(|| Error::type_error("no instance"))?;
        // SAFETY: CPython calls a type's slot (and a getset descriptor, after checking the
        // instance's type) with an instance of that type or of a subclass, whose layout
        // begins with T's ClassObject (a subclass cannot change it): no registry lookup is
        // needed, as for methods.
        let value = unsafe { ClassObject::<T>::borrow(obj) }?;
        body(py, &value)
    }));
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => {
            error.restore(py);
            on_error
        }
        Err(panic) => {
            crate::panic::raise_panic(py, panic);
            on_error
        }
    }
}

unsafe extern "C" fn repr<T: RegisteredClass, F: Fn(&T) -> String>(
    obj: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    with_ref::<T, _>(obj, ptr::null_mut(), |py, value| {
        // SAFETY: F is zero-sized (checked when the class was built).
        let f = unsafe { fn_at::<F>(ptr::null()) };
        Ok(f(value).into_python(py)?.into_ptr())
    })
}

unsafe extern "C" fn hash<T: RegisteredClass, F: Fn(&T) -> u64>(
    obj: *mut ffi::PyObject,
) -> ffi::Py_hash_t {
    with_ref::<T, _>(obj, -1, |_py, value| {
        // SAFETY: F is zero-sized (checked when the class was built).
        let f = unsafe { fn_at::<F>(ptr::null()) };
        let h = f(value) as ffi::Py_hash_t;
        Ok(if h == -1 { -2 } else { h })
    })
}

unsafe extern "C" fn len<T: RegisteredClass, F: Fn(&T) -> usize>(
    obj: *mut ffi::PyObject,
) -> ffi::Py_ssize_t {
    with_ref::<T, _>(obj, -1, |_py, value| {
        // SAFETY: F is zero-sized (checked when the class was built).
        let f = unsafe { fn_at::<F>(ptr::null()) };
        ffi::Py_ssize_t::try_from(f(value))
            .map_err(|_| Error::new(crate::ExceptionClass::OverflowError, "length too large"))
    })
}

unsafe extern "C" fn getitem<T, F, K, R, M>(
    obj: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: RegisteredClass,
    F: Fn(&T, K) -> R,
    K: for<'a, 'py> FromPython<'a, 'py>,
    R: crate::function::IntoReturn<M>,
{
    with_ref::<T, _>(obj, ptr::null_mut(), |py, value| {
        // SAFETY: `key` is a live borrowed reference for this call.
        let key =
            unsafe { Borrowed::from_ptr(py, key) }.ok_or_else(|| Error::type_error("no key"))?;
        let key = K::from_python(key).map_err(|e| Error::from(e).context("__getitem__ key: "))?;
        // SAFETY: F is zero-sized (checked when the class was built).
        let f = unsafe { fn_at::<F>(ptr::null()) };
        f(value, key).into_return(py)
    })
}

unsafe extern "C" fn richcompare<T: RegisteredClass, F: Fn(&T, &T) -> bool>(
    a: *mut ffi::PyObject,
    b: *mut ffi::PyObject,
    op: c_int,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls slots with an attached thread state; returning a new reference
    // to NotImplemented.
    let not_implemented = || unsafe { ffi::compat::Py_NewRef(ffi::Py_NotImplemented()) };
    if op != ffi::Py_EQ && op != ffi::Py_NE {
        return not_implemented();
    }
    with_ref::<T, _>(a, ptr::null_mut(), |py, left| {
        // SAFETY: `b` is a live borrowed reference for this call.
        let b =
            unsafe { Borrowed::from_ptr(py, b) }.ok_or_else(|| Error::type_error("no operand"))?;
        let Ok(right) = Ref::<T>::from_python(b) else {
            return Ok(not_implemented());
        };
        // SAFETY: F is zero-sized (checked when the class was built).
        let f = unsafe { fn_at::<F>(ptr::null()) };
        let equal = f(left, &right);
        Ok((if op == ffi::Py_EQ { equal } else { !equal })
            .into_python(py)?
            .into_ptr())
    })
}

unsafe extern "C" fn getter<T, G, R, M>(
    obj: *mut ffi::PyObject,
    closure: *mut c_void,
) -> *mut ffi::PyObject
where
    T: RegisteredClass,
    G: Fn(&T) -> R,
    R: crate::function::IntoReturn<M>,
{
    with_ref::<T, _>(obj, ptr::null_mut(), |py, value| {
        // SAFETY: `closure` is the PropertyFns<G, ()> leaked for this property.
        let fns = unsafe { fn_at::<PropertyFns<G, ()>>(closure) };
        (fns.get)(value).into_return(py)
    })
}

unsafe extern "C" fn getter_of_pair<T, G, S, R, M>(
    obj: *mut ffi::PyObject,
    closure: *mut c_void,
) -> *mut ffi::PyObject
where
    T: RegisteredClass,
    G: Fn(&T) -> R,
    R: crate::function::IntoReturn<M>,
{
    with_ref::<T, _>(obj, ptr::null_mut(), |py, value| {
        // SAFETY: `closure` is the PropertyFns<G, S> leaked for this property.
        let fns = unsafe { fn_at::<PropertyFns<G, S>>(closure) };
        (fns.get)(value).into_return(py)
    })
}

unsafe extern "C" fn setter<T, G, S, V>(
    obj: *mut ffi::PyObject,
    value: *mut ffi::PyObject,
    closure: *mut c_void,
) -> c_int
where
    T: RegisteredClass,
    S: Fn(&mut T, V),
    V: for<'a, 'py> FromPython<'a, 'py>,
{
    // SAFETY: CPython calls setters with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), Error> {
        if value.is_null() {
            return Err(Error::new(
                crate::ExceptionClass::AttributeError,
                "cannot delete this attribute",
            ));
        }
        // SAFETY: live borrowed references for this call.
        let (obj, value) = unsafe { (Borrowed::from_ptr(py, obj), Borrowed::from_ptr(py, value)) };
        let (obj, value) = (obj.expect("non-null"), value.expect("checked above"));
        let value =
            V::from_python(value).map_err(|e| Error::from(e).context("property value: "))?;
        // SAFETY: a getset descriptor of T's class only calls its setter with an instance
        // of that class or of a subclass (checked by CPython), laid out as ClassObject<T>.
        let mut this = unsafe { ClassObject::<T>::borrow_mut(obj) }?;
        // SAFETY: `closure` is the PropertyFns<G, S> leaked for this property.
        let fns = unsafe { fn_at::<PropertyFns<G, S>>(closure) };
        (fns.set)(&mut this, value);
        Ok(())
    }));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(error)) => {
            error.restore(py);
            -1
        }
        Err(panic) => {
            crate::panic::raise_panic(py, panic);
            -1
        }
    }
}
