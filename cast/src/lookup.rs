//! Finding registered types: the two registries of the current interpreter (this module's
//! local one first, then the shared one), and a small per-thread cache in front of them.
//!
//! The cache is exact, not a heuristic. Its entries are keyed by the addresses of the two
//! registries' internals (leaked per interpreter, never freed, so never reused by another
//! interpreter) and by this module binary's registration epoch. Registry entries are never
//! removed or changed, so a hit stays true; the only answers a later registration could
//! change (a key found in the shared registry, later registered module-locally by this
//! module binary) are invalidated by the epoch, which every registration through this
//! binary bumps. Only exact results are cached: a type that is itself registered, or a key.
//! A subclass's lookup walks its `tp_base` chain every time (subclasses come and go, and
//! their addresses are reused).
//!
//! The garbage-collector path ([`Registries::nearest_registered_uncached`]) skips the cache:
//! thread-locals of a `dlopen`ed library may allocate on first use in a thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use bindery_capsule::Python;
use bindery_internals::{
    InternalsError, TypeInfo, TypeRegistry, get_internals, get_local_internals,
};
use pyo3_ffi as ffi;

/// Bumped by every registration made through this module binary.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Invalidates every thread's cached answers (after a registration).
pub(crate) fn bump_epoch() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// One cached answer.
#[derive(Clone, Copy)]
struct Slot {
    local: usize,
    shared: usize,
    epoch: u64,
    /// A type object's address, or a type key's address (tagged by `by_key`).
    what: usize,
    by_key: bool,
    info: *const TypeInfo,
}

const EMPTY: Slot = Slot {
    local: 0,
    shared: 0,
    epoch: u64::MAX,
    what: 0,
    by_key: false,
    info: std::ptr::null(),
};

const WAYS: usize = 8;

thread_local! {
    /// Direct-mapped by address. No destructor, no lazy initialisation.
    static CACHE: [Cell<Slot>; WAYS] = const { [const { Cell::new(EMPTY) }; WAYS] };
}

fn way(what: usize) -> usize {
    (what >> 4) % WAYS
}

/// The registries of the current interpreter, as this module binary sees them.
pub(crate) struct Registries<'py> {
    py: Python<'py>,
    local: &'py TypeRegistry,
    shared: &'py TypeRegistry,
    local_id: usize,
    shared_id: usize,
}

impl<'py> Registries<'py> {
    /// Gets (creating if needed) this interpreter's internals: the fast path is two atomic
    /// loads (see `bindery_internals::get_internals`).
    #[inline(always)]
    pub(crate) fn get(py: Python<'py>) -> Result<Registries<'py>, InternalsError> {
        // `.ok()` keeps the large error values out of the hot path (they would be built and
        // copied on the stack); the rare failure is asked for again on the cold path.
        match (get_local_internals(py).ok(), get_internals(py).ok()) {
            (Some(local), Some(shared)) => Ok(Registries::new(py, local, shared)),
            _ => Registries::get_cold(py),
        }
    }

    /// This interpreter's registries if its internals exist, without creating them, looking
    /// in the state dict, allocating or calling Python: the path of GC callbacks.
    #[inline]
    pub(crate) fn get_existing(py: Python<'py>) -> Option<Registries<'py>> {
        let local = bindery_internals::get_local_internals_if_created(py)?;
        let shared = bindery_internals::get_internals_if_created(py)?;
        Some(Registries::new(py, local, shared))
    }

    #[cold]
    #[inline(never)]
    fn get_cold(py: Python<'py>) -> Result<Registries<'py>, InternalsError> {
        let local = get_local_internals(py)?;
        let shared = get_internals(py)?;
        Ok(Registries::new(py, local, shared))
    }

    #[inline(always)]
    fn new(
        py: Python<'py>,
        local: &'py bindery_internals::LocalInternals,
        shared: &'py bindery_internals::Internals,
    ) -> Registries<'py> {
        Registries {
            py,
            local: local.types(),
            shared: shared.types(),
            local_id: local as *const _ as usize,
            shared_id: shared as *const _ as usize,
        }
    }

    /// The local registry, then the shared one.
    pub(crate) fn local(&self) -> &'py TypeRegistry {
        self.local
    }

    /// The shared registry.
    pub(crate) fn shared(&self) -> &'py TypeRegistry {
        self.shared
    }

    #[inline]
    fn cached(&self, what: usize, by_key: bool) -> Option<&'static TypeInfo> {
        let epoch = EPOCH.load(Ordering::Acquire);
        CACHE
            .try_with(|cache| {
                let slot = cache[way(what)].get();
                (slot.what == what
                    && slot.by_key == by_key
                    && slot.local == self.local_id
                    && slot.shared == self.shared_id
                    && slot.epoch == epoch)
                    .then(|| {
                        // SAFETY: cached infos are registry entries, leaked for the process.
                        unsafe { &*slot.info }
                    })
            })
            .ok()
            .flatten()
    }

    fn remember(&self, what: usize, by_key: bool, epoch: u64, info: &'static TypeInfo) {
        let slot = Slot {
            local: self.local_id,
            shared: self.shared_id,
            epoch,
            what,
            by_key,
            info,
        };
        let _ = CACHE.try_with(|cache| cache[way(what)].set(slot));
    }

    /// The entry for exactly this type object (local registry first).
    fn exact(&self, ty: *mut ffi::PyTypeObject) -> Option<&'static TypeInfo> {
        self.local
            .by_type(self.py, ty)
            .or_else(|| self.shared.by_type(self.py, ty))
    }

    /// The nearest registered type on `ty`'s `tp_base` chain: it decides the layout of
    /// `ty`'s instances. Cached when `ty` itself is registered.
    #[inline]
    pub(crate) fn nearest_registered(
        &self,
        ty: *mut ffi::PyTypeObject,
    ) -> Option<&'static TypeInfo> {
        if let Some(info) = self.cached(ty as usize, false) {
            return Some(info);
        }
        let epoch = EPOCH.load(Ordering::Acquire);
        if let Some(info) = self.exact(ty) {
            self.remember(ty as usize, false, epoch, info);
            return Some(info);
        }
        // SAFETY: `ty` is a live type (the type of a live object); its base is alive too.
        self.walk(unsafe { (*ty).tp_base })
    }

    /// As [`Registries::nearest_registered`], without the cache: registry lookups and type
    /// reads only, no allocation, no Python call.
    pub(crate) fn nearest_registered_uncached(
        &self,
        ty: *mut ffi::PyTypeObject,
    ) -> Option<&'static TypeInfo> {
        self.walk(ty)
    }

    fn walk(&self, mut ty: *mut ffi::PyTypeObject) -> Option<&'static TypeInfo> {
        while !ty.is_null() {
            if let Some(info) = self.exact(ty) {
                return Some(info);
            }
            // SAFETY: `ty` is a live type (a base of a live object's type, kept alive by
            // it).
            ty = unsafe { (*ty).tp_base };
        }
        None
    }

    /// The entry registered under `key` (local registry first). Cached.
    #[inline]
    pub(crate) fn by_key(&self, key: &'static str) -> Option<&'static TypeInfo> {
        let what = key.as_ptr() as usize;
        if let Some(info) = self.cached(what, true).filter(|info| info.type_key == key) {
            return Some(info);
        }
        let epoch = EPOCH.load(Ordering::Acquire);
        let info = self
            .local
            .by_key(self.py, key)
            .or_else(|| self.shared.by_key(self.py, key))?;
        self.remember(what, true, epoch, info);
        Some(info)
    }
}
