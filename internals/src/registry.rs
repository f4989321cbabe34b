//! The type registry: what casting needs to know about every registered Rust type, found by
//! a stable type key or by the Python type object.
//!
//! Entries are never removed and are leaked on purpose, like the internals that hold them: a
//! lookup hands out `&'static TypeInfo`, allocates nothing and stays valid in the
//! interpreter's last garbage collection.

use std::collections::HashMap;
use std::sync::RwLock;

use bindery_capsule::Python;
use pyo3_ffi::PyTypeObject;

use crate::error::InternalsError;
use crate::lock::{read, write};

/// What casting needs to know about one registered Rust type.
///
/// Written once by the module that registers the type (in its exec slot, holding the GIL of
/// the interpreter the registry belongs to) and never changed afterwards.
#[derive(Debug)]
pub struct TypeInfo {
    /// Stable type key: the same string in separately built modules compiled from the same
    /// source (for example `"my_crate::Point"`; the facade derives it from the crate name,
    /// the crate version and the type path). `TypeId` is not stable across separately built
    /// binaries, so it cannot serve.
    pub type_key: String,
    /// `std::any::type_name` of the Rust type, for error messages.
    pub rust_name: &'static str,
    /// The Python type object of this interpreter that wraps the Rust type.
    pub type_object: *mut PyTypeObject,
    /// Size of the Rust value in bytes.
    pub size: usize,
    /// Alignment of the Rust value in bytes.
    pub align: usize,
    /// Drops a Rust value of this type in place; the function lives in the registering
    /// module, which CPython never unloads.
    pub drop_in_place: unsafe fn(*mut u8),
    /// Name of the Python module that registered the type.
    pub module: String,
}

// SAFETY: `type_object` is only dereferenced by code that holds the GIL of the interpreter
// whose registry holds this entry (every registry method takes a `Python` token); the other
// fields are plain data and a function pointer.
unsafe impl Send for TypeInfo {}
// SAFETY: as for `Send`: shared access never dereferences `type_object` without the GIL.
unsafe impl Sync for TypeInfo {}

/// Registered types of one interpreter (shared internals) or one module (local internals).
///
/// Readers and writers hold the GIL of the interpreter the registry belongs to; the lock
/// makes it sound on free-threaded builds too and is never held across a Python call.
#[derive(Debug, Default)]
pub struct TypeRegistry {
    /// Stable type key -> entry. Written by `register`, read by casts.
    by_key: RwLock<HashMap<Box<str>, &'static TypeInfo>>,
    /// Address of the Python type object -> entry. Written by `register`, read by casts
    /// from Python to Rust.
    by_type: RwLock<HashMap<usize, &'static TypeInfo>>,
}

impl TypeRegistry {
    /// Registers a type; returns the leaked entry every later lookup hands out.
    ///
    /// Registering the same type key twice with the same type object returns the existing
    /// entry (a module imported twice); with another type object it is
    /// [`InternalsError::AlreadyRegistered`].
    pub fn register(
        &self,
        _py: Python<'_>,
        info: TypeInfo,
    ) -> Result<&'static TypeInfo, InternalsError> {
        let mut by_key = write(&self.by_key);
        if let Some(existing) = by_key.get(info.type_key.as_str()) {
            if existing.type_object == info.type_object {
                return Ok(existing);
            }
            return Err(InternalsError::AlreadyRegistered {
                type_key: info.type_key,
                rust_name: info.rust_name,
                module: existing.module.clone(),
            });
        }
        let entry: &'static TypeInfo = Box::leak(Box::new(info));
        by_key.insert(entry.type_key.clone().into_boxed_str(), entry);
        write(&self.by_type).insert(entry.type_object as usize, entry);
        Ok(entry)
    }

    /// The entry registered under a stable type key.
    pub fn by_key(&self, _py: Python<'_>, type_key: &str) -> Option<&'static TypeInfo> {
        read(&self.by_key).get(type_key).copied()
    }

    /// The entry whose Python type object is exactly `type_object` (no subclass walk: the
    /// caster walks the MRO).
    pub fn by_type(
        &self,
        _py: Python<'_>,
        type_object: *mut PyTypeObject,
    ) -> Option<&'static TypeInfo> {
        read(&self.by_type).get(&(type_object as usize)).copied()
    }

    /// How many types are registered.
    pub fn len(&self) -> usize {
        read(&self.by_key).len()
    }

    /// Whether no type is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this registry keeps allocated (tables and leaked entries), an estimate from
    /// capacities; used to report what stays behind per interpreter.
    pub fn allocated_bytes(&self) -> usize {
        let by_key = read(&self.by_key);
        let by_type = read(&self.by_type);
        let slot = std::mem::size_of::<(Box<str>, &TypeInfo)>() + 1;
        let entries: usize = by_key
            .values()
            .map(|e| {
                std::mem::size_of::<TypeInfo>() + e.type_key.capacity() * 2 + e.module.capacity()
            })
            .sum();
        by_key.capacity() * slot
            + by_type.capacity() * (std::mem::size_of::<(usize, &TypeInfo)>() + 1)
            + entries
    }
}

/// A shared exception translator: given a Rust error, sets a Python exception and returns
/// true, or returns false to let the next translator try. Translators run newest first.
pub type ExceptionTranslator = fn(Python<'_>, &(dyn std::error::Error + 'static)) -> bool;

/// The exception translators of one registry, newest last.
#[derive(Debug, Default)]
pub struct Translators {
    /// Written by `push` (module exec, GIL held); read when a Rust error becomes a Python
    /// exception.
    list: RwLock<Vec<ExceptionTranslator>>,
}

impl Translators {
    /// Adds a translator; it will be tried before every translator added earlier.
    pub fn push(&self, _py: Python<'_>, translator: ExceptionTranslator) {
        write(&self.list).push(translator);
    }

    /// Tries the translators, newest first; true if one of them set a Python exception.
    pub fn translate(&self, py: Python<'_>, error: &(dyn std::error::Error + 'static)) -> bool {
        // Copy the list out so no lock is held while a translator calls Python.
        let list: Vec<ExceptionTranslator> = read(&self.list).clone();
        list.iter().rev().any(|t| t(py, error))
    }

    /// How many translators are registered.
    pub fn len(&self) -> usize {
        read(&self.list).len()
    }

    /// Whether no translator is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
