//! What lives in the capsules: the shared [`Internals`] of an interpreter and the
//! [`LocalInternals`] of one module in one interpreter.

use std::cell::Cell;
use std::ops::Deref;
use std::thread::LocalKey;

use crate::key::{get_local_internals_key, internals_id};
use crate::manager::{Cached, LOCAL, LOCAL_CACHE, Manager, SHARED, SHARED_CACHE};
use crate::registry::{Translators, TypeRegistry};

/// The registries every internals value carries.
///
/// Created by the first module that asks for internals in an interpreter (outside any Rust
/// lock, before the capsule is installed), then only mutated through its own locks. Never
/// freed: it must stay valid for garbage-collector callbacks in the interpreter's last
/// collection.
#[derive(Debug)]
pub struct Registries {
    /// ID of the interpreter this content belongs to. Written once at creation.
    interpreter_id: i64,
    /// Registered types. Written by modules' exec slots, read by casts (GIL held).
    types: TypeRegistry,
    /// Exception translators. Written by modules' exec slots, read when a Rust error
    /// becomes a Python exception (GIL held).
    translators: Translators,
}

impl Registries {
    fn new(interpreter_id: i64) -> Registries {
        Registries {
            interpreter_id,
            types: TypeRegistry::default(),
            translators: Translators::default(),
        }
    }

    /// ID of the interpreter (`PyInterpreterState_GetID`) this content belongs to.
    pub fn interpreter_id(&self) -> i64 {
        self.interpreter_id
    }

    /// The registered types.
    pub fn types(&self) -> &TypeRegistry {
        &self.types
    }

    /// The exception translators.
    pub fn translators(&self) -> &Translators {
        &self.translators
    }

    /// Bytes this content keeps allocated on the Rust heap: the value itself, its tables and
    /// registered entries. What stays behind per interpreter after it exits is this plus
    /// the capsule object and one record entry per module (see the crate docs).
    pub fn allocated_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.types.allocated_bytes()
            + self.translators.len() * std::mem::size_of::<crate::ExceptionTranslator>()
    }
}

/// The shared internals of one interpreter: one per interpreter and key, shared by every
/// module whose [`internals_id`] is equal.
#[derive(Debug)]
pub struct Internals {
    registries: Registries,
}

/// The module-local internals of one module in one interpreter: types registered with
/// module-local visibility, found before the shared ones.
#[derive(Debug)]
pub struct LocalInternals {
    registries: Registries,
}

impl Deref for Internals {
    type Target = Registries;
    fn deref(&self) -> &Registries {
        &self.registries
    }
}

impl Deref for LocalInternals {
    type Target = Registries;
    fn deref(&self) -> &Registries {
        &self.registries
    }
}

/// What the manager needs to know of a kind of content.
pub(crate) trait Content: Send + Sync + Sized + 'static {
    /// For messages: "internals" or "local internals".
    const WHAT: &'static str;
    /// The state-dict key.
    fn key() -> &'static str;
    /// Fresh, empty content for an interpreter.
    fn new(interpreter_id: i64) -> Self;
    /// The per-thread cache for subinterpreters (a static, so the access inlines).
    fn cache() -> &'static LocalKey<Cell<Cached>>;
    /// This module's manager of this kind of content (used by the negative control).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    fn manager() -> &'static Manager<Self>;
    /// ID of the interpreter the content belongs to (used by the negative control).
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    fn interpreter(&self) -> i64;
}

impl Content for Internals {
    const WHAT: &'static str = "internals";
    fn key() -> &'static str {
        internals_id()
    }
    fn new(interpreter_id: i64) -> Self {
        Internals {
            registries: Registries::new(interpreter_id),
        }
    }
    #[inline(always)]
    fn cache() -> &'static LocalKey<Cell<Cached>> {
        &SHARED_CACHE
    }
    fn manager() -> &'static Manager<Self> {
        &SHARED
    }
    fn interpreter(&self) -> i64 {
        self.interpreter_id
    }
}

impl Content for LocalInternals {
    const WHAT: &'static str = "local internals";
    fn key() -> &'static str {
        get_local_internals_key()
    }
    fn new(interpreter_id: i64) -> Self {
        LocalInternals {
            registries: Registries::new(interpreter_id),
        }
    }
    #[inline(always)]
    fn cache() -> &'static LocalKey<Cell<Cached>> {
        &LOCAL_CACHE
    }
    fn manager() -> &'static Manager<Self> {
        &LOCAL
    }
    fn interpreter(&self) -> i64 {
        self.interpreter_id
    }
}
