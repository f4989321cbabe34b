//! The class `ContainerOwnsPythonObjects`: a Rust vector of Python objects, with GC support
//! that reaches the value through a cast of `self`.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use bindery_capsule::{Borrowed, Handle, Owned, Python};
use bindery_cast::{
    ClassObject, Ref, RefMut, RegisteredClass, Visibility, cast, register_class, to_python,
};
use bindery_gc_support::{Clear, Cleared, Traverse, Visit, VisitError};
use pyo3_ffi as ffi;

use crate::{Failure, Reply, guard, none};

/// The Python class's name, as `tp_name` (module-qualified).
const QUALIFIED_NAME: &std::ffi::CStr = c"bindery_example_gc.ContainerOwnsPythonObjects";

/// How many `ContainerOwnsPythonObjects` values exist in the process (all interpreters):
/// incremented when `tp_new` stores one, decremented by its `Drop`. A double drop would make
/// it wrap around; a leak keeps it up.
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The Rust value of a `ContainerOwnsPythonObjects` instance.
pub(crate) struct ContainerOwnsPythonObjects {
    items: Vec<Handle>,
}

impl ContainerOwnsPythonObjects {
    fn new() -> ContainerOwnsPythonObjects {
        LIVE.fetch_add(1, Ordering::Relaxed);
        ContainerOwnsPythonObjects { items: Vec::new() }
    }
}

impl Drop for ContainerOwnsPythonObjects {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RegisteredClass for ContainerOwnsPythonObjects {
    const TYPE_KEY: &'static str = concat!(
        "bindery-example-gc ",
        env!("CARGO_PKG_VERSION"),
        "::ContainerOwnsPythonObjects"
    );
}

impl Traverse for ContainerOwnsPythonObjects {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.items.traverse(visit)
    }
}

impl Clear for ContainerOwnsPythonObjects {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        self.items.clear_refs(cleared);
    }
}

/// `self` of a method as a borrowed handle.
fn this<'a, 'py>(py: Python<'py>, slf: *mut ffi::PyObject) -> Borrowed<'a, 'py> {
    // SAFETY: CPython passes methods a live `self`, alive for the call.
    unsafe { Borrowed::from_ptr(py, slf) }.expect("CPython passes a non-null self")
}

/// `Py_tp_new`: a new instance holding an empty vector. Takes no arguments, unless a Python
/// subclass defines its own `__init__` (which then gets them).
unsafe extern "C" fn tp_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwds: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: CPython passes a live args tuple and a kwargs dict or null; `subtype` and
        // the object type are live types.
        let (has_args, own_init) = unsafe {
            let has_args =
                ffi::PyTuple_Size(args) > 0 || (!kwds.is_null() && ffi::PyDict_Size(kwds) > 0);
            let object_init = (*ptr::addr_of_mut!(ffi::PyBaseObject_Type)).tp_init;
            // Both are libpython's (or the subclass's) C functions: comparing addresses is
            // exact here.
            let address = |f: Option<ffi::initproc>| f.map(|f| f as usize);
            (
                has_args,
                address((*subtype).tp_init) != address(object_init),
            )
        };
        if has_args && !own_init {
            return Err(Failure::type_error(
                "ContainerOwnsPythonObjects() takes no arguments".to_owned(),
            ));
        }
        // SAFETY: reading the slot of a live type; every type has tp_alloc after PyType_Ready.
        let alloc = unsafe { (*subtype).tp_alloc }.unwrap_or(ffi::PyType_GenericAlloc);
        // SAFETY: attached thread state; a new zeroed instance (state "no value yet") or null.
        let obj = unsafe { Owned::from_owned_ptr(py, alloc(subtype, 0)) }
            .ok_or_else(|| Failure::Cast(bindery_cast::CastError::fetch(py)))?;
        // SAFETY: `subtype` is our class or a subclass, so the instance is a
        // ClassObject<ContainerOwnsPythonObjects>, fresh and empty; GIL held.
        let stored = unsafe { ClassObject::init(obj.as_ptr(), ContainerOwnsPythonObjects::new()) };
        debug_assert!(stored.is_ok(), "a fresh instance is empty");
        Ok(obj)
    })
}

/// `append(obj)`: keeps a strong reference to `obj`.
unsafe extern "C" fn append(
    slf: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(|py| {
        // SAFETY: METH_O passes one live, borrowed argument.
        let obj = unsafe { Borrowed::from_ptr(py, obj) }.expect("CPython passes the argument");
        let mut value = cast::<RefMut<'_, ContainerOwnsPythonObjects>>(this(py, slf))?;
        value.items.push(Handle::from_borrowed(obj));
        drop(value);
        none(py)
    })
}

/// `size()`: how many objects it holds.
unsafe extern "C" fn size(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guard(|py| -> Reply<'_> {
        let value = cast::<Ref<'_, ContainerOwnsPythonObjects>>(this(py, slf))?;
        let len = value.items.len();
        drop(value);
        Ok(to_python(py, len)?)
    })
}

/// `clear()`: releases every object it holds (after releasing its own borrow, so finalizers
/// that run may use the container).
unsafe extern "C" fn clear(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    guard(|py| {
        let mut cleared = Cleared::new();
        cast::<RefMut<'_, ContainerOwnsPythonObjects>>(this(py, slf))?.clear_refs(&mut cleared);
        drop(cleared);
        none(py)
    })
}

/// A `PyMethodDef` table that can live in a `static`: CPython only reads it.
struct Methods([ffi::PyMethodDef; 4]);

// SAFETY: immutable: CPython never writes to method definitions; the pointers are to
// 'static C strings and functions.
unsafe impl Sync for Methods {}

const fn method(
    name: &'static std::ffi::CStr,
    f: unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject,
    flags: c_int,
    doc: &'static std::ffi::CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: f },
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    }
}

static METHODS: Methods = Methods([
    method(
        c"append",
        append,
        ffi::METH_O,
        c"append(obj)\n--\n\nKeep a reference to obj.",
    ),
    method(
        c"size",
        size,
        ffi::METH_NOARGS,
        c"size()\n--\n\nHow many objects it holds.",
    ),
    method(
        c"clear",
        clear,
        ffi::METH_NOARGS,
        c"clear()\n--\n\nRelease every object it holds.",
    ),
    ffi::PyMethodDef::zeroed(),
]);

/// The `__weaklistoffset__` member: instances support weak references (the GC checkers need
/// them), through a pointer slot right after the `ClassObject`.
struct Members([ffi::PyMemberDef; 2]);

// SAFETY: immutable; CPython only reads member definitions.
unsafe impl Sync for Members {}

/// Where the weak reference list lives in an instance.
const WEAKLIST_OFFSET: ffi::Py_ssize_t = ClassObject::<ContainerOwnsPythonObjects>::BASIC_SIZE;

static MEMBERS: Members = Members([
    ffi::PyMemberDef {
        name: c"__weaklistoffset__".as_ptr(),
        type_code: ffi::Py_T_PYSSIZET,
        offset: WEAKLIST_OFFSET,
        flags: ffi::Py_READONLY,
        doc: ptr::null(),
    },
    ffi::PyMemberDef {
        name: ptr::null(),
        type_code: 0,
        offset: 0,
        flags: 0,
        doc: ptr::null(),
    },
]);

/// Creates the class for `module`'s interpreter, registers it (shared registry, by its type
/// key) and adds it to the module.
pub(crate) fn add_class(py: Python<'_>, module: *mut ffi::PyObject) -> Result<(), Failure> {
    type C = ContainerOwnsPythonObjects;
    let slot = |slot, pfunc: *mut c_void| ffi::PyType_Slot { slot, pfunc };
    let mut slots = [
        slot(ffi::Py_tp_new, tp_new as *mut c_void),
        // GC support: both slots reach the value through a cast of `self`.
        slot(
            ffi::Py_tp_traverse,
            bindery_gc_support::tp_traverse_by_cast::<C> as *mut c_void,
        ),
        slot(
            ffi::Py_tp_clear,
            bindery_gc_support::tp_clear::<C> as *mut c_void,
        ),
        // Clears (moves the references out, through a cast of `self`), untracks, clears weak
        // references, drops the value, frees, releases the heap type, then the references,
        // iteratively (long chains of containers do not exhaust the stack).
        slot(
            ffi::Py_tp_dealloc,
            bindery_gc_support::tp_dealloc::<C> as *mut c_void,
        ),
        slot(
            ffi::Py_tp_methods,
            ptr::from_ref(&METHODS.0).cast_mut().cast(),
        ),
        slot(
            ffi::Py_tp_members,
            ptr::from_ref(&MEMBERS.0).cast_mut().cast(),
        ),
        slot(
            ffi::Py_tp_doc,
            c"A Rust vector of Python objects, with cycle-collector support."
                .as_ptr()
                .cast_mut()
                .cast(),
        ),
        slot(0, ptr::null_mut()),
    ];
    let basicsize = WEAKLIST_OFFSET as usize + size_of::<*mut ffi::PyObject>();
    let mut spec = ffi::PyType_Spec {
        name: QUALIFIED_NAME.as_ptr(),
        basicsize: basicsize as c_int,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_HAVE_GC | ffi::Py_TPFLAGS_BASETYPE)
            as u32,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: attached thread state (exec slot); `spec` and `slots` are valid for the call,
    // the name is 'static (the type keeps pointing to it), the method and member tables are
    // 'static and only read. Returns a new reference or null with an error set.
    let ty = unsafe { ffi::PyType_FromModuleAndSpec(module, &mut spec, ptr::null_mut()) };
    // SAFETY: a new reference or null.
    let ty = unsafe { Owned::from_owned_ptr(py, ty) }
        .ok_or_else(|| Failure::Cast(bindery_cast::CastError::fetch(py)))?;
    // SAFETY: instances of `ty` (and its subclasses) are ClassObject<C>, allocated zeroed by
    // tp_alloc, given a value only by tp_new through ClassObject::init, destroyed by
    // bindery_gc_support::tp_dealloc::<C> (which ends in bindery_cast::tp_dealloc::<C>); the
    // module keeps the type alive for the interpreter's life (below), and every instance
    // keeps it alive too.
    unsafe {
        register_class::<C>(
            py,
            ty.as_ptr().cast(),
            "bindery_example_gc",
            Visibility::Shared,
        )
    }
    .map_err(|e| Failure::runtime_error(e.to_string()))?;
    // SAFETY: attached thread state; module and type are live; the module takes its own
    // reference.
    let added = unsafe {
        ffi::compat::PyModule_AddObjectRef(
            module,
            c"ContainerOwnsPythonObjects".as_ptr(),
            ty.as_ptr(),
        )
    };
    if added != 0 {
        return Err(Failure::Cast(bindery_cast::CastError::fetch(py)));
    }
    Ok(())
}
