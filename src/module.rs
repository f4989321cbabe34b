//! Modules: PEP 489 multi-phase initialisation, one module object per interpreter, no
//! Python object in a Rust static (PEP 630). The definition is built once per process from
//! the user's build function; each interpreter that imports the module runs the exec slot,
//! which prepares internals, creates the function objects, the module's exception classes
//! and `PanicException`, then runs the user's exec hooks.

use std::ffi::{CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Mutex, OnceLock};

use bindery_capsule::{Borrowed, Dtor, Owned, Python, atomic_get_or_create_in_state_dict};
use bindery_cast::{CastError, IntoPython};
use pyo3_ffi as ffi;

use crate::class::{Class, ClassDef};
use crate::error::{Error, ExceptionClass};
use crate::function::{Function, FunctionData};

/// What a module is made of; filled in by the module's build function.
pub struct ModuleBuilder {
    doc: String,
    functions: Vec<Function>,
    classes: Vec<&'static dyn ClassDef>,
    exceptions: Vec<ExceptionSpec>,
    hooks: Vec<ExecHook>,
}

/// An exec hook: runs in each interpreter that imports the module, after bindery's setup.
pub type ExecHook = fn(&ModuleRef<'_>) -> Result<(), Error>;

struct ExceptionSpec {
    name: String,
    doc: String,
    base: ExceptionClass,
}

impl ModuleBuilder {
    fn new() -> ModuleBuilder {
        ModuleBuilder {
            doc: String::new(),
            functions: Vec::new(),
            classes: Vec::new(),
            exceptions: Vec::new(),
            hooks: Vec::new(),
        }
    }

    /// Adds a class (see [`Class`]); its type is made in every interpreter that imports
    /// the module, before the exec hooks run.
    pub fn class<T: bindery_cast::RegisteredClass>(
        &mut self,
        class: Class<T>,
    ) -> &mut ModuleBuilder {
        self.classes.push(Box::leak(Box::new(class)));
        self
    }

    /// The module's docstring.
    pub fn doc(&mut self, doc: &str) -> &mut ModuleBuilder {
        self.doc = doc.to_owned();
        self
    }

    /// Adds a function (see [`Function`]).
    pub fn function(&mut self, function: Function) -> &mut ModuleBuilder {
        self.functions.push(function.finish());
        self
    }

    /// Adds an exception class `name` deriving from `base`, created in every interpreter
    /// that imports the module (`module.name`). Raise it with
    /// [`Error::custom`](crate::Error::custom).
    pub fn exception(&mut self, name: &str, base: ExceptionClass, doc: &str) -> &mut ModuleBuilder {
        self.exceptions.push(ExceptionSpec {
            name: name.to_owned(),
            doc: doc.to_owned(),
            base,
        });
        self
    }

    /// Adds an exec hook (constants, sub-objects...), run after bindery's own setup.
    pub fn on_exec(&mut self, hook: ExecHook) -> &mut ModuleBuilder {
        self.hooks.push(hook);
        self
    }
}

/// The module object of one interpreter, handed to exec hooks.
pub struct ModuleRef<'py> {
    py: Python<'py>,
    module: *mut ffi::PyObject,
}

impl<'py> ModuleRef<'py> {
    /// The token.
    pub fn py(&self) -> Python<'py> {
        self.py
    }

    /// The module object.
    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.module
    }

    /// Sets the module attribute `name` to `value`.
    pub fn add<T: IntoPython<'py>>(&self, name: &str, value: T) -> Result<(), Error> {
        let value = value.into_python(self.py)?;
        add_object(self.py, self.module, name, value.as_borrowed())
    }
}

fn add_object(
    py: Python<'_>,
    module: *mut ffi::PyObject,
    name: &str,
    value: Borrowed<'_, '_>,
) -> Result<(), Error> {
    let name = CString::new(name).map_err(|_| Error::value_error("attribute names have no NUL"))?;
    // SAFETY: attached thread state; `module` and `value` are live; PyModule_AddObjectRef
    // takes its own reference.
    let status =
        unsafe { ffi::compat::PyModule_AddObjectRef(module, name.as_ptr(), value.as_ptr()) };
    if status < 0 {
        Err(CastError::fetch(py).into())
    } else {
        Ok(())
    }
}

/// A module definition, leaked once per process. `def` comes first so the pointer CPython
/// hands back (`PyModule_GetDef`) is the pointer to the whole `Spec`.
#[repr(C)]
pub(crate) struct Spec {
    def: ffi::PyModuleDef,
    name: CString,
    doc: CString,
    /// The functions, until the first exec turns them into leaked function data.
    pending: Mutex<Vec<Function>>,
    /// Function data, made by the first exec (it needs Python for the defaults' reprs).
    functions: OnceLock<Vec<&'static FunctionData>>,
    exceptions: Vec<ExceptionSpec>,
    classes: Vec<&'static dyn ClassDef>,
    hooks: Vec<ExecHook>,
    /// State-dict key of this module's per-interpreter exception table.
    exceptions_key: String,
}

/// Holds a module's leaked definition: one static per module, made by [`crate::module!`].
pub struct ModuleCell {
    spec: OnceLock<usize>,
}

impl ModuleCell {
    /// An empty cell, for a `static`.
    pub const fn new() -> ModuleCell {
        ModuleCell {
            spec: OnceLock::new(),
        }
    }

    /// `PyInit_<name>`: builds the definition on first use and hands it to
    /// `PyModuleDef_Init` (PEP 489: the interpreter creates the module and runs the exec
    /// slot).
    ///
    /// # Safety
    /// Called from the module's `PyInit_` function (attached thread state).
    pub unsafe fn init(&self, name: &str, build: fn(&mut ModuleBuilder)) -> *mut ffi::PyObject {
        let spec = *self.spec.get_or_init(|| {
            let mut builder = ModuleBuilder::new();
            build(&mut builder);
            Spec::leak(name, builder) as *mut Spec as usize
        });
        // SAFETY: `spec` is leaked and starts with a valid PyModuleDef; the import lock
        // serialises module initialisation.
        unsafe { ffi::PyModuleDef_Init(ptr::addr_of_mut!((*(spec as *mut Spec)).def)) }
    }
}

impl Default for ModuleCell {
    fn default() -> Self {
        ModuleCell::new()
    }
}

impl Spec {
    fn leak(name: &str, builder: ModuleBuilder) -> &'static mut Spec {
        let name_c = CString::new(name).expect("module names have no NUL");
        let doc = CString::new(builder.doc.replace('\0', "")).expect("NUL removed");
        let slots: &'static mut [ffi::PyModuleDef_Slot] = Box::leak(Box::new([
            ffi::PyModuleDef_Slot {
                slot: ffi::Py_mod_exec,
                value: exec_slot as *mut c_void,
            },
            crate::compat::MULTIPLE_INTERPRETERS,
            crate::compat::GIL,
            crate::compat::END,
        ]));
        let methods: &'static mut [ffi::PyMethodDef] =
            Box::leak(Box::new([ffi::PyMethodDef::zeroed()]));
        let spec = Box::leak(Box::new(Spec {
            def: ffi::PyModuleDef {
                m_base: ffi::PyModuleDef_HEAD_INIT,
                m_name: ptr::null(),
                m_doc: ptr::null(),
                m_size: 0,
                m_methods: methods.as_mut_ptr(),
                m_slots: slots.as_mut_ptr(),
                m_traverse: None,
                m_clear: None,
                m_free: None,
            },
            exceptions_key: format!(
                "__bindery_exceptions_{name}_{}",
                bindery_internals::get_local_internals_key()
            ),
            name: name_c,
            doc,
            pending: Mutex::new(builder.functions),
            functions: OnceLock::new(),
            exceptions: builder.exceptions,
            classes: builder.classes,
            hooks: builder.hooks,
        }));
        spec.def.m_name = spec.name.as_ptr();
        spec.def.m_doc = if spec.doc.is_empty() {
            ptr::null()
        } else {
            spec.doc.as_ptr()
        };
        spec
    }

    /// The module's name.
    pub(crate) fn name(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    /// This interpreter's class object for the module's exception `name` (borrowed).
    pub(crate) fn exception(&self, py: Python<'_>, name: &str) -> Option<*mut ffi::PyObject> {
        let table = exception_table(py, &self.exceptions_key)?;
        // SAFETY: the capsule keeps the table alive while it is in the state dict; it is
        // only read or written with this interpreter's GIL, held for this whole call.
        let table = unsafe { table.as_ref() };
        table
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, class)| *class)
    }

    fn function_data(&'static self, py: Python<'_>) -> &'static [&'static FunctionData] {
        self.functions.get_or_init(|| {
            let pending = std::mem::take(&mut *crate::lock(&self.pending));
            pending
                .into_iter()
                .map(|function| {
                    let params: Vec<(String, Option<String>)> = function
                        .params
                        .iter()
                        .map(|p| {
                            (
                                p.name.clone(),
                                p.default
                                    .as_ref()
                                    .map(|make| default_repr(py, make.as_ref())),
                            )
                        })
                        .collect();
                    let signature = crate::args::signature(&function.name, &params);
                    FunctionData::leak(function, signature, self)
                })
                .collect()
        })
    }
}

/// The signature line of a function: `name($module, a, b=0)`.
pub(crate) fn signature_of(py: Python<'_>, function: &Function) -> String {
    let params: Vec<(String, Option<String>)> = function
        .params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.default
                    .as_ref()
                    .map(|make| default_repr(py, make.as_ref())),
            )
        })
        .collect();
    crate::args::signature(&function.name, &params)
}

/// `repr()` of a parameter's default, for the signature line; `...` if it cannot be made.
fn default_repr(
    py: Python<'_>,
    make: &(dyn Fn(Python<'_>) -> Result<*mut ffi::PyObject, CastError> + Send + Sync),
) -> String {
    let Ok(object) = make(py) else {
        // SAFETY: attached thread state; the failed conversion left an error pending.
        unsafe { ffi::PyErr_Clear() };
        return "...".into();
    };
    // SAFETY: `make` returned a new reference.
    let Some(object) = (unsafe { Owned::from_owned_ptr(py, object) }) else {
        return "...".into();
    };
    // SAFETY: attached thread state; `object` is live.
    let repr = unsafe { Owned::from_owned_ptr(py, ffi::PyObject_Repr(object.as_ptr())) };
    match repr.and_then(|r| bindery_cast::cast::<String>(r.as_borrowed()).ok()) {
        Some(text) => text,
        None => {
            // SAFETY: attached thread state.
            unsafe { ffi::PyErr_Clear() };
            "...".into()
        }
    }
}

/// The exception classes of one module in one interpreter (strong references), released
/// when the interpreter clears its state dict.
struct ExceptionTable(Vec<(String, *mut ffi::PyObject)>);

// SAFETY: the pointers are only used with the GIL of the interpreter whose state dict holds
// the table; the table is dropped when that interpreter clears the dict, GIL held.
unsafe impl Send for ExceptionTable {}

impl Drop for ExceptionTable {
    fn drop(&mut self) {
        for (_, class) in self.0.drain(..) {
            // SAFETY: capsule destructor, the interpreter's GIL held; one owned reference.
            unsafe { ffi::Py_DECREF(class) };
        }
    }
}

/// This interpreter's exception table of a module (found or created in the state dict).
fn exception_table(py: Python<'_>, key: &str) -> Option<std::ptr::NonNull<ExceptionTable>> {
    atomic_get_or_create_in_state_dict(py, key, || ExceptionTable(Vec::new()), Dtor::Drop)
        .ok()
        .map(|(table, _)| table)
}

/// The spec of a module object made from a bindery definition.
fn spec_of(module: *mut ffi::PyObject) -> Option<&'static Spec> {
    // SAFETY: `module` is a live module object (exec slot); PyModule_GetDef only reads it.
    let def = unsafe { ffi::PyModule_GetDef(module) };
    // SAFETY: bindery's exec slot only runs for modules made from a leaked `Spec`, whose
    // first field is the PyModuleDef.
    (!def.is_null()).then(|| unsafe { &*def.cast::<Spec>() })
}

/// `Py_mod_exec`: runs in every interpreter that imports the module.
unsafe extern "C" fn exec_slot(module: *mut ffi::PyObject) -> c_int {
    // SAFETY: CPython runs exec slots with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| exec(py, module)));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(error)) => {
            error.restore_in(py, spec_of(module));
            -1
        }
        Err(panic) => {
            crate::panic::raise_panic(py, panic);
            -1
        }
    }
}

fn exec(py: Python<'_>, module: *mut ffi::PyObject) -> Result<(), Error> {
    let spec = spec_of(module)
        .ok_or_else(|| Error::runtime_error("bindery: module without its definition"))?;
    bindery_internals::on_module_exec(py)
        .map_err(|e| Error::new(ExceptionClass::ImportError, e.to_string()))?;
    for data in spec.function_data(py) {
        let object = data.new_object(py, module)?;
        add_object(py, module, &data.function.name, object.as_borrowed())?;
    }
    if !spec.exceptions.is_empty() {
        let mut table = exception_table(py, &spec.exceptions_key).ok_or_else(|| {
            Error::runtime_error("bindery: cannot keep the module's exception classes")
        })?;
        // SAFETY: the table lives in this interpreter's state dict and is only touched with
        // its GIL, which we hold; no other reference to it exists during this loop.
        let table = unsafe { table.as_mut() };
        for exception in &spec.exceptions {
            let qualified = CString::new(format!("{}.{}", spec.name(), exception.name))
                .map_err(|_| Error::value_error("exception names have no NUL"))?;
            let doc = CString::new(exception.doc.replace('\0', "")).expect("NUL removed");
            // SAFETY: attached thread state; valid C strings; the base is a static class.
            let class = unsafe {
                ffi::PyErr_NewExceptionWithDoc(
                    qualified.as_ptr(),
                    doc.as_ptr(),
                    exception.base.as_ptr(py),
                    ptr::null_mut(),
                )
            };
            // SAFETY: a new reference or null with an exception set.
            let class = unsafe { Owned::from_owned_ptr(py, class) }
                .ok_or_else(|| Error::from(CastError::fetch(py)))?;
            add_object(py, module, &exception.name, class.as_borrowed())?;
            table.0.retain(|(n, _)| *n != exception.name);
            table.0.push((exception.name.clone(), class.into_ptr()));
        }
    }
    if let Some(class) = crate::panic::panic_class(py) {
        // SAFETY: `class` is a live class kept by the state dict.
        let class = unsafe { Borrowed::from_ptr(py, class) }.expect("non-null");
        add_object(py, module, "PanicException", class)?;
    }
    let handle = ModuleRef { py, module };
    for class in &spec.classes {
        class.create(&handle, spec)?;
    }
    for hook in &spec.hooks {
        hook(&handle)?;
    }
    Ok(())
}
