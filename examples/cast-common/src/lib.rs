//! The body shared by the cast example modules `bindery_example_cast_a` and `_b`: two
//! separately built extension modules, written on the raw C API until the facade exists,
//! that prove registered classes are cast across module boundaries.
//!
//! Module a ([`Role::Defines`]) creates the heap types `Point` and `Counter` in its exec slot
//! and registers them in the interpreter's shared registry; module b ([`Role::Uses`])
//! registers no shared class and finds a's through the registry. Both register a class
//! `Secret` module-locally (same type key, each its own type), which the other module must
//! not accept. Every function is in both modules (see [`functions`]).
//!
//! | class | constructor | Rust value |
//! |---|---|---|
//! | `Point` | `Point(x, y)` | [`Point`] (cloneable) |
//! | `Counter` | `Counter(start)` | [`Counter`] |
//! | `Secret` | `Secret(text)` | [`Secret`] (module-local) |
//! | `Node` | `Node(label)` | [`node::Node`] (GC-tracked, holds one object; module a) |

mod compat;
pub mod functions;
pub mod node;

use std::ffi::{CStr, CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::OnceLock;

use bindery_capsule::{Borrowed, Python};
use bindery_cast::{
    CastError, ClassObject, RegisteredClass, Visibility, cast, register_class, tp_dealloc,
};
use bindery_internals::on_module_exec;
use pyo3_ffi as ffi;

/// A point, registered in the shared registry by module a.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Abscissa.
    pub x: f64,
    /// Ordinate.
    pub y: f64,
}

impl RegisteredClass for Point {
    const TYPE_KEY: &'static str = "bindery-example-cast-common 0.1.0::Point";
}

/// A counter with a history, registered in the shared registry by module a (not `Clone`:
/// it can only be borrowed).
#[derive(Debug, Default)]
pub struct Counter {
    /// Current count.
    pub count: i64,
    /// What happened to it.
    pub history: Vec<String>,
}

impl RegisteredClass for Counter {
    const TYPE_KEY: &'static str = "bindery-example-cast-common 0.1.0::Counter";
}

/// Registered module-locally by each module: the other module must not accept it.
#[derive(Clone, Debug)]
pub struct Secret {
    /// The text.
    pub text: String,
}

impl RegisteredClass for Secret {
    const TYPE_KEY: &'static str = "bindery-example-cast-common 0.1.0::Secret";
}

/// A type nobody registers.
#[derive(Clone, Debug)]
pub struct Unregistered;

impl RegisteredClass for Unregistered {
    const TYPE_KEY: &'static str = "bindery-example-cast-common 0.1.0::Unregistered";
}

/// What a module does with the shared classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Creates and registers `Point` and `Counter` (module a).
    Defines,
    /// Only casts them (module b).
    Uses,
}

/// Runs the body of a `tp_new`: catches panics, turns errors into exceptions.
fn guarded_new(
    body: impl FnOnce(Python<'_>) -> Result<*mut ffi::PyObject, CastError>,
) -> *mut ffi::PyObject {
    // SAFETY: called from tp_new slots, which CPython calls with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    match catch_unwind(AssertUnwindSafe(|| body(py))) {
        Ok(Ok(obj)) => obj,
        Ok(Err(error)) => {
            error.restore(py);
            ptr::null_mut()
        }
        Err(_) => {
            functions::raise(py, "panic in a constructor");
            ptr::null_mut()
        }
    }
}

/// Allocates an instance of `subtype` (a registered class or a Python subclass of one) and
/// stores `value` in it.
///
/// # Safety
/// `subtype` is a live type whose instances are `ClassObject<T>`.
unsafe fn new_object<T: RegisteredClass>(
    py: Python<'_>,
    subtype: *mut ffi::PyTypeObject,
    value: T,
) -> Result<*mut ffi::PyObject, CastError> {
    // SAFETY: a live type (caller); tp_alloc is inherited by every type.
    let alloc = unsafe { (*subtype).tp_alloc }.unwrap_or(ffi::PyType_GenericAlloc);
    // SAFETY: attached thread state; a zeroed instance or null with MemoryError.
    let obj = unsafe { alloc(subtype, 0) };
    if obj.is_null() {
        return Err(CastError::fetch(py));
    }
    // SAFETY: a fresh instance of a ClassObject<T> type (caller).
    let stored = unsafe { ClassObject::<T>::init(obj, value) };
    debug_assert!(stored.is_ok(), "fresh instances are empty");
    Ok(obj)
}

/// The positional arguments of a constructor, converted; keywords are refused.
fn constructor_args<'py, A>(
    py: Python<'py>,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> Result<A, CastError>
where
    A: for<'a> bindery_cast::FromPython<'a, 'py>,
{
    // SAFETY: CPython passes a live args tuple for the duration of the call, and a dict or
    // null for keywords.
    if !kwargs.is_null() && unsafe { ffi::PyDict_Size(kwargs) } != 0 {
        // SAFETY: reading an exception class static with an attached thread state.
        let class = unsafe { ffi::PyExc_TypeError };
        functions::raise_class(py, class, "constructors take no keyword arguments");
        return Err(CastError::fetch(py));
    }
    // SAFETY: the args tuple lives for the whole call.
    let args = unsafe { Borrowed::from_ptr(py, args) }.expect("CPython passes an args tuple");
    cast::<A>(args)
}

unsafe extern "C" fn point_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded_new(|py| {
        let (x, y) = constructor_args::<(f64, f64)>(py, args, kwargs)?;
        // SAFETY: `subtype` is Point or a subclass: its instances are ClassObject<Point>.
        unsafe { new_object(py, subtype, Point { x, y }) }
    })
}

unsafe extern "C" fn counter_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded_new(|py| {
        let (start,) = constructor_args::<(i64,)>(py, args, kwargs)?;
        let counter = Counter {
            count: start,
            history: vec![format!("created at {start}")],
        };
        // SAFETY: `subtype` is Counter or a subclass: its instances are ClassObject<Counter>.
        unsafe { new_object(py, subtype, counter) }
    })
}

unsafe extern "C" fn secret_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded_new(|py| {
        let (text,) = constructor_args::<(String,)>(py, args, kwargs)?;
        // SAFETY: `subtype` is Secret or a subclass: its instances are ClassObject<Secret>.
        unsafe { new_object(py, subtype, Secret { text }) }
    })
}

unsafe extern "C" fn node_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guarded_new(|py| {
        let (label,) = constructor_args::<(String,)>(py, args, kwargs)?;
        // SAFETY: `subtype` is Node or a subclass: its instances are ClassObject<Node>.
        unsafe { new_object(py, subtype, node::Node::new(label)) }
    })
}

type NewFn = unsafe extern "C" fn(
    *mut ffi::PyTypeObject,
    *mut ffi::PyObject,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// A type spec for a registered class `T` named `<module>.<name>`; leaked (CPython keeps
/// pointers into specs for the life of the types).
fn spec<T: RegisteredClass>(
    module: &CStr,
    name: &str,
    new: NewFn,
    gc: Option<(ffi::traverseproc, ffi::inquiry)>,
) -> usize {
    let qualified = CString::new(format!("{}.{name}", module.to_string_lossy()))
        .expect("names have no NUL byte");
    let mut slots = vec![
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: tp_dealloc::<T> as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_new,
            pfunc: new as *mut c_void,
        },
    ];
    let mut flags = ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_BASETYPE;
    if let Some((traverse, clear)) = gc {
        flags |= ffi::Py_TPFLAGS_HAVE_GC;
        slots.push(ffi::PyType_Slot {
            slot: ffi::Py_tp_traverse,
            pfunc: traverse as *mut c_void,
        });
        slots.push(ffi::PyType_Slot {
            slot: ffi::Py_tp_clear,
            pfunc: clear as *mut c_void,
        });
    }
    slots.push(ffi::PyType_Slot::default());
    let slots = slots.leak();
    let spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: qualified.into_raw(),
        basicsize: ClassObject::<T>::BASIC_SIZE as c_int,
        itemsize: 0,
        flags: flags as _,
        slots: slots.as_mut_ptr(),
    }));
    spec as *mut ffi::PyType_Spec as usize
}

/// The specs of one module binary (made once; they hold no Python object).
struct Specs {
    point: usize,
    counter: usize,
    secret: usize,
    node: usize,
}

/// Creates the type for `spec` bound to `module`, registers it and adds it to the module.
fn add_class<T: RegisteredClass>(
    py: Python<'_>,
    module: *mut ffi::PyObject,
    module_name: &str,
    spec: usize,
    attribute: &CStr,
    visibility: Visibility,
) -> Result<(), String> {
    // SAFETY: attached thread state; a live module; a leaked, valid spec. Returns a new
    // reference to a heap type bound to the module, or null.
    let ty = unsafe {
        ffi::PyType_FromModuleAndSpec(module, spec as *mut ffi::PyType_Spec, ptr::null_mut())
    };
    if ty.is_null() {
        return Err(bindery_capsule::take_error_text(py).unwrap_or_default());
    }
    // SAFETY: the spec makes instances ClassObject<T> (basicsize, tp_alloc by default,
    // values stored by the tp_new above, tp_dealloc::<T>); the module attribute added below
    // keeps the type alive as long as the module.
    let registered = unsafe { register_class::<T>(py, ty.cast(), module_name, visibility) };
    // SAFETY: attached thread state; live module and type; AddObjectRef takes its own
    // reference, so ours is released right after.
    let added = unsafe {
        let rc = ffi::compat::PyModule_AddObjectRef(module, attribute.as_ptr(), ty);
        ffi::Py_DECREF(ty);
        rc
    };
    registered.map_err(|error| error.to_string())?;
    if added != 0 {
        return Err(bindery_capsule::take_error_text(py).unwrap_or_default());
    }
    Ok(())
}

/// What each module binary was initialised with: (module name, role, specs).
static MODULE: OnceLock<(&'static CStr, Role, Specs)> = OnceLock::new();

/// `Py_mod_exec`: prepares internals (first, as every bindery module must), then creates
/// and registers the classes.
unsafe extern "C" fn exec_module(module: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython calls exec slots with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let (name, role, specs) = MODULE.get().expect("init_module ran first");
        let name_text = name.to_string_lossy();
        on_module_exec(py).map_err(|error| error.to_string())?;
        if *role == Role::Defines {
            add_class::<Point>(
                py,
                module,
                &name_text,
                specs.point,
                c"Point",
                Visibility::Shared,
            )?;
            add_class::<Counter>(
                py,
                module,
                &name_text,
                specs.counter,
                c"Counter",
                Visibility::Shared,
            )?;
            add_class::<node::Node>(
                py,
                module,
                &name_text,
                specs.node,
                c"Node",
                Visibility::Shared,
            )?;
        }
        add_class::<Secret>(
            py,
            module,
            &name_text,
            specs.secret,
            c"Secret",
            Visibility::Local,
        )?;
        functions::add_functions(py, module)
    }));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(message)) => {
            functions::raise(py, &message);
            -1
        }
        Err(_) => {
            functions::raise(py, "panic in the exec slot");
            -1
        }
    }
}

static mut SLOTS: [ffi::PyModuleDef_Slot; 3] = [
    ffi::PyModuleDef_Slot {
        slot: ffi::Py_mod_exec,
        value: exec_module as *mut c_void,
    },
    compat::MULTIPLE_INTERPRETERS,
    compat::END,
];

/// Builds the module definition for `name` and hands it to `PyModuleDef_Init`.
///
/// # Safety
/// Called from the module's `PyInit_<name>` with an attached thread state.
pub unsafe fn init_module(name: &'static CStr, role: Role) -> *mut ffi::PyObject {
    MODULE.get_or_init(|| {
        let specs = Specs {
            point: spec::<Point>(name, "Point", point_new, None),
            counter: spec::<Counter>(name, "Counter", counter_new, None),
            secret: spec::<Secret>(name, "Secret", secret_new, None),
            node: spec::<node::Node>(
                name,
                "Node",
                node_new,
                Some((node::node_traverse, node::node_clear)),
            ),
        };
        (name, role, specs)
    });
    static DEF: OnceLock<usize> = OnceLock::new();
    let def = *DEF.get_or_init(|| {
        let def = Box::leak(Box::new(ffi::PyModuleDef {
            m_base: ffi::PyModuleDef_HEAD_INIT,
            m_name: name.as_ptr(),
            m_doc: c"bindery cast example module".as_ptr(),
            m_size: 0,
            m_methods: ptr::null_mut(),
            m_slots: (&raw mut SLOTS).cast(),
            m_traverse: None,
            m_clear: None,
            m_free: None,
        }));
        def as *mut ffi::PyModuleDef as usize
    });
    // SAFETY: `def` is a leaked, valid PyModuleDef; PyModuleDef_Init only initialises its
    // object header (the import lock serialises this) and returns it.
    unsafe { ffi::PyModuleDef_Init(def as *mut ffi::PyModuleDef) }
}
