//! Handing out internals: the per-module caches (fast path), the process-wide record of what
//! each interpreter got (keyed by interpreter ID, since interpreter pointers are reused), and
//! the create-once slow path.
//!
//! Every module binary has its own copy of these statics: the caches of one module never
//! point into state another module manages, and the content they point to is leaked, so a
//! cached pointer can never dangle.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, Ordering};

use bindery_capsule::{
    CapsuleError, Dtor, Owned, Python, atomic_get_or_create_in_state_dict, capsule_value,
    get_capsule_from_state_dict,
};
use pyo3_ffi::PyInterpreterState;

use crate::content::{Content, Internals, LocalInternals};
use crate::error::InternalsError;
use crate::key::get_local_internals_key;
use crate::lock::lock;
use crate::policy::content_dtor;

/// What to do when content would be created a second time for an interpreter that had it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecreationPolicy {
    /// `Py_FatalError` with the message of [`InternalsError::Recreated`]: the process stops
    /// with the Python traceback, instead of going on with an empty registry. The default.
    Fatal,
    /// Return [`InternalsError::Recreated`] to the caller.
    ReturnError,
}

/// This module's policy. Written by `set_recreation_policy` (any thread), read on the slow
/// path only.
static POLICY: AtomicU8 = AtomicU8::new(0);

/// Sets what this module does when internals would be re-created (see
/// [`RecreationPolicy`]). Process-wide for this module binary; other modules keep theirs.
pub fn set_recreation_policy(policy: RecreationPolicy) {
    let value = match policy {
        RecreationPolicy::Fatal => 0,
        RecreationPolicy::ReturnError => 1,
    };
    POLICY.store(value, Ordering::Relaxed);
}

/// This module's current [`RecreationPolicy`].
pub fn recreation_policy() -> RecreationPolicy {
    match POLICY.load(Ordering::Relaxed) {
        0 => RecreationPolicy::Fatal,
        _ => RecreationPolicy::ReturnError,
    }
}

/// What this module knows of one interpreter's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The content at this address was found or created for the interpreter. It is leaked,
    /// so it stays valid even after the state dict that held its capsule is cleared.
    Live(usize),
    /// The content was released: asking again would re-create it. Content is leaked, so
    /// only the test hooks and the negative control release it; the guard stays for any
    /// future change of policy, which the tests would then exercise.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    Released,
}

/// A thread's last (interpreter, content) pair, valid while `generation` is current.
#[derive(Clone, Copy)]
pub(crate) struct Cached {
    interp: *mut PyInterpreterState,
    generation: u64,
    content: *const (),
}

impl Cached {
    pub(crate) const EMPTY: Cached = Cached {
        interp: ptr::null_mut(),
        generation: u64::MAX,
        content: ptr::null(),
    };
}

/// Whether this module has seen a non-main interpreter. Written under `TRANSITION` by the
/// slow path or [`on_module_exec`] in a subinterpreter, never reset.
static SUBINTERPRETER_SEEN: AtomicBool = AtomicBool::new(false);

/// Serialises the switch from the one-load fast path to per-interpreter caches against the
/// main interpreter's slow path arming that fast path. Never held across a Python call.
static TRANSITION: Mutex<()> = Mutex::new(());

/// Bumped whenever an interpreter this module served clears its state dict (finalization),
/// which happens before its `PyInterpreterState` can be freed and its address reused: a
/// thread-local cache made in an earlier generation is never trusted.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Lives in each subinterpreter's state dict (one per module binary); its drop, when the
/// interpreter clears the dict, records that the interpreter is finalizing (so later calls
/// there go straight to the recorded content: no dict lookup, no allocation) and bumps this
/// module's [`GENERATION`].
struct GenerationSentinel {
    interpreter_id: i64,
}

impl Drop for GenerationSentinel {
    fn drop(&mut self) {
        SHARED.mark_dict_cleared(self.interpreter_id);
        LOCAL.mark_dict_cleared(self.interpreter_id);
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
}

/// Hands out one kind of content for this module binary.
pub(crate) struct Manager<C: Content> {
    /// The one-load fast path: the main interpreter's content while this module has seen
    /// no other interpreter; null otherwise. Written under `TRANSITION`.
    fast: AtomicPtr<C>,
    /// The main interpreter's content, once found (after subinterpreters appeared, the main
    /// interpreter is recognised by `main_interp`). Written by the slow path in the main
    /// interpreter; `main_interp` first, then this with Release.
    main_content: AtomicPtr<C>,
    /// The main interpreter's state. It is never freed nor reused while the process runs.
    main_interp: AtomicPtr<PyInterpreterState>,
    /// Interpreter ID -> entry, for every interpreter this module ever served. Written and
    /// read on the slow path; the lock is never held across a Python call.
    record: Mutex<BTreeMap<i64, Entry>>,
    /// IDs of subinterpreters whose state dict was cleared (written by the sentinel's drop,
    /// read on the slow path). Entries stay: IDs are never reused.
    finalizing: Mutex<std::collections::BTreeSet<i64>>,
}

thread_local! {
    /// Per-thread cache of the shared internals in subinterpreters, checked against
    /// `GENERATION`. Reached through [`Content::cache`], a static the compiler sees through.
    pub(crate) static SHARED_CACHE: Cell<Cached> = const { Cell::new(Cached::EMPTY) };
    /// The same for local internals.
    pub(crate) static LOCAL_CACHE: Cell<Cached> = const { Cell::new(Cached::EMPTY) };
}

pub(crate) static SHARED: Manager<Internals> = Manager::new();
pub(crate) static LOCAL: Manager<LocalInternals> = Manager::new();

/// The internals of the current interpreter, shared by every module with the same
/// [`internals_id`](crate::internals_id); created on first use.
///
/// Fast path: while this module has only run in the main interpreter, one atomic load;
/// after it was imported in a subinterpreter, a comparison with the current interpreter and
/// a thread-local (interpreter, pointer) cache. No lock, no dict lookup, never
/// `PyGILState_*`. Works during finalization too, including the last garbage collection
/// after the state dict was cleared: internals are leaked on purpose.
///
/// The module's `Py_mod_exec` slot must call [`on_module_exec`] first (the facade does):
/// that is how this module learns it runs in a subinterpreter. Debug builds check it.
#[inline]
pub fn get_internals(py: Python<'_>) -> Result<&Internals, InternalsError> {
    SHARED.get(py)
}

/// This module's local internals in the current interpreter; created on first use. Same
/// paths, guarantees and exec-slot rule as [`get_internals`].
#[inline]
pub fn get_local_internals(py: Python<'_>) -> Result<&LocalInternals, InternalsError> {
    LOCAL.get(py)
}

/// The current interpreter's internals if they were created and this module has seen them;
/// `None` otherwise. Never creates, never looks in the state dict, never allocates, never
/// calls Python: for code that must not have side effects, such as `tp_traverse` and
/// `tp_clear` (a registered instance implies its internals exist). Asking for internals that
/// were released is the re-creation case ([`RecreationPolicy`]): fatal by default, `None`
/// under [`RecreationPolicy::ReturnError`].
#[inline]
pub fn get_internals_if_created(py: Python<'_>) -> Option<&Internals> {
    SHARED.peek(py)
}

/// This module's local internals in the current interpreter if they were created; the same
/// guarantees as [`get_internals_if_created`].
#[inline]
pub fn get_local_internals_if_created(py: Python<'_>) -> Option<&LocalInternals> {
    LOCAL.peek(py)
}

/// Prepares internals for the interpreter that is executing this module: call it first in
/// every `Py_mod_exec` slot (the facade does).
///
/// It checks which interpreter runs the module (one extra C call, off the hot path). The
/// first time that is not the main interpreter, this module leaves the one-load fast path
/// for per-interpreter caches, so no subinterpreter is ever handed the main interpreter's
/// registry. Then it gets (creating if needed) the shared and local internals, so an
/// import fails early, with the error, if they cannot be had.
pub fn on_module_exec(py: Python<'_>) -> Result<(), InternalsError> {
    let interp = current_interp(py);
    // SAFETY: the token proves an attached thread state; PyInterpreterState_Main only reads
    // the runtime.
    if interp != unsafe { pyo3_ffi::PyInterpreterState_Main() } {
        leave_fast_path();
    }
    SHARED.get(py)?;
    LOCAL.get(py)?;
    Ok(())
}

/// Switches this module to per-interpreter caches, for good.
fn leave_fast_path() {
    if SUBINTERPRETER_SEEN.load(Ordering::Acquire) {
        return;
    }
    let _transition = lock(&TRANSITION);
    SUBINTERPRETER_SEEN.store(true, Ordering::Release);
    SHARED.fast.store(ptr::null_mut(), Ordering::Release);
    LOCAL.fast.store(ptr::null_mut(), Ordering::Release);
}

/// The capsule object that holds the current interpreter's internals, `None` if absent
/// (not created yet, or the state dict was cleared at shutdown). For lifetime checks.
pub fn get_internals_capsule(py: Python<'_>) -> Result<Option<Owned<'_>>, InternalsError> {
    SHARED.capsule(py)
}

/// The capsule object that holds this module's local internals, `None` if absent.
pub fn get_local_internals_capsule(py: Python<'_>) -> Result<Option<Owned<'_>>, InternalsError> {
    LOCAL.capsule(py)
}

/// The current interpreter.
#[inline]
fn current_interp(_py: Python<'_>) -> *mut PyInterpreterState {
    // SAFETY: the token proves this thread has an attached thread state, which is all
    // PyInterpreterState_Get requires.
    unsafe { pyo3_ffi::PyInterpreterState_Get() }
}

/// The ID of an interpreter that is alive (the current one).
fn interp_id(_py: Python<'_>, interp: *mut PyInterpreterState) -> i64 {
    // SAFETY: `interp` is the current interpreter (from PyInterpreterState_Get on this
    // thread, with an attached thread state), so it is alive.
    unsafe { pyo3_ffi::PyInterpreterState_GetID(interp) }
}

impl<C: Content> Manager<C> {
    const fn new() -> Manager<C> {
        Manager {
            fast: AtomicPtr::new(ptr::null_mut()),
            main_content: AtomicPtr::new(ptr::null_mut()),
            main_interp: AtomicPtr::new(ptr::null_mut()),
            record: Mutex::new(BTreeMap::new()),
            finalizing: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    #[inline]
    pub(crate) fn get<'py>(&'static self, py: Python<'py>) -> Result<&'py C, InternalsError> {
        let content = self.fast.load(Ordering::Acquire);
        if !content.is_null() {
            debug_assert!(
                current_interp(py) == self.main_interp.load(Ordering::Relaxed),
                "bindery: a module ran in a subinterpreter without calling \
                 bindery_internals::on_module_exec in its Py_mod_exec slot"
            );
            // SAFETY: `fast` only holds the main interpreter's content (leaked, never freed
            // while this module may run) while this module has run in no other interpreter.
            return Ok(unsafe { &*content });
        }
        self.get_per_interpreter(py)
    }

    #[inline]
    fn get_per_interpreter<'py>(&'static self, py: Python<'py>) -> Result<&'py C, InternalsError> {
        let interp = current_interp(py);
        match self.cached(interp) {
            Some(content) => Ok(content),
            None => self.get_slow(py, interp),
        }
    }

    /// The content of the current interpreter `interp` from the two caches: the main
    /// interpreter's slot, then this thread's last answer. Creates, allocates and locks
    /// nothing.
    #[inline(always)]
    fn cached<'py>(&'static self, interp: *mut PyInterpreterState) -> Option<&'py C> {
        if interp == self.main_interp.load(Ordering::Relaxed) {
            let content = self.main_content.load(Ordering::Acquire);
            if !content.is_null() {
                // SAFETY: leaked content of the main interpreter, which we are in; the main
                // interpreter's state is never reused while the process runs.
                return Some(unsafe { &*content });
            }
        }
        // try_with: during thread teardown the cache may be gone; the slow path still works.
        if let Ok(cached) = C::cache().try_with(Cell::get)
            && cached.interp == interp
            && cached.generation == GENERATION.load(Ordering::Acquire)
        {
            // SAFETY: the cache holds leaked content of the interpreter at `interp`, made in
            // the current generation: no interpreter this module served has cleared its
            // state since, so `interp` was not freed and reused in between.
            return Some(unsafe { &*cached.content.cast::<C>() });
        }
        None
    }

    /// The content of the current interpreter from the caches or the record, without
    /// creating anything (see [`get_internals_if_created`]).
    #[inline]
    pub(crate) fn peek<'py>(&'static self, py: Python<'py>) -> Option<&'py C> {
        let content = self.fast.load(Ordering::Acquire);
        if !content.is_null() {
            // SAFETY: as on the fast path of `get`.
            return Some(unsafe { &*content });
        }
        let interp = current_interp(py);
        self.cached(interp)
            .or_else(|| self.peek_record(py, interp_id(py, interp)))
    }

    #[cold]
    #[inline(never)]
    fn peek_record<'py>(&self, py: Python<'py>, id: i64) -> Option<&'py C> {
        match self.entry(id) {
            // SAFETY: recorded content is leaked, valid for the process.
            Some(Entry::Live(address)) => Some(unsafe { &*(address as *const C) }),
            // Released content asked for (by a GC callback, typically) is the re-creation
            // case: loud under the default policy, never a silent "not found".
            Some(Entry::Released) => {
                self.recreated(py, id);
                None
            }
            None => None,
        }
    }

    #[cold]
    #[inline(never)]
    fn get_slow<'py>(
        &'static self,
        py: Python<'py>,
        interp: *mut PyInterpreterState,
    ) -> Result<&'py C, InternalsError> {
        let id = interp_id(py, interp);
        // SAFETY: the token proves an attached thread state; PyInterpreterState_Main only
        // reads the runtime.
        let main = unsafe { pyo3_ffi::PyInterpreterState_Main() };
        if interp != main {
            leave_fast_path();
        }
        // Read before looking at the state dict: a clear that happens meanwhile makes the
        // cache stale at once.
        let generation = GENERATION.load(Ordering::Acquire);
        let (content, found) = self.find_or_create(py, id)?;
        if interp == main {
            self.main_interp.store(main, Ordering::Relaxed);
            self.main_content.store(content.as_ptr(), Ordering::Release);
            let _transition = lock(&TRANSITION);
            if !SUBINTERPRETER_SEEN.load(Ordering::Acquire) {
                self.fast.store(content.as_ptr(), Ordering::Release);
            }
        } else if found == Found::InStateDict && install_sentinel(py, id) {
            let cached = Cached {
                interp,
                generation,
                content: content.as_ptr().cast_const().cast(),
            };
            let _ = C::cache().try_with(|cell| cell.set(cached));
        }
        // (Content recovered after the state dict was cleared is not cached: the
        // interpreter is finalizing, and no sentinel would tell when it is gone.)
        // SAFETY: content is leaked (Dtor::Leak) or recorded live: valid for the process.
        Ok(unsafe { &*content.as_ptr() })
    }

    /// Finds the content of interpreter `id` (state dict first, then this module's record)
    /// or creates it once.
    fn find_or_create(
        &'static self,
        py: Python<'_>,
        id: i64,
    ) -> Result<(NonNull<C>, Found), InternalsError> {
        // A subinterpreter that cleared its state dict (its sentinel said so) is finalizing:
        // its content is recorded; a lookup in the new, empty dict would only allocate.
        if let Some(content) = self.finalizing_content(id) {
            return Ok((content, Found::Recovered));
        }
        let key = C::key();
        let capsule_error = |source| InternalsError::Capsule {
            what: C::WHAT,
            interpreter_id: id,
            source,
        };
        match get_capsule_from_state_dict(py, key) {
            Ok(Some(capsule)) => {
                let found = capsule_value::<C>(&capsule, key).map_err(capsule_error)?;
                return Ok((self.note(py, id, found)?, Found::InStateDict));
            }
            Ok(None) | Err(CapsuleError::NoStateDict { .. }) => {}
            Err(other) => return Err(capsule_error(other)),
        }
        // Not in the state dict. If this interpreter had content, the dict was cleared
        // (finalization): the leaked content is still valid and still the registry.
        match self.entry(id) {
            Some(Entry::Live(address)) => {
                let content =
                    NonNull::new(address as *mut C).expect("recorded content is non-null");
                return Ok((content, Found::Recovered));
            }
            Some(Entry::Released) => return Err(self.recreated(py, id)),
            None => {}
        }
        // First time for this interpreter: build outside any Rust lock (the capsule layer
        // calls `make` with no lock held), install with PyDict_SetDefault.
        let (content, _created) =
            atomic_get_or_create_in_state_dict(py, key, || C::new(id), content_dtor::<C>())
                .map_err(capsule_error)?;
        Ok((self.note(py, id, content)?, Found::InStateDict))
    }

    /// Records that interpreter `id` uses `found`, and returns the content to use.
    fn note(
        &self,
        py: Python<'_>,
        id: i64,
        found: NonNull<C>,
    ) -> Result<NonNull<C>, InternalsError> {
        let mut record = lock(&self.record);
        match record.get(&id).copied() {
            None => {
                record.insert(id, Entry::Live(found.as_ptr() as usize));
                Ok(found)
            }
            // Another module re-created content after the state dict was cleared: keep
            // using the original, which holds the registrations.
            Some(Entry::Live(address)) => {
                Ok(NonNull::new(address as *mut C).expect("recorded content is non-null"))
            }
            Some(Entry::Released) => {
                drop(record);
                Err(self.recreated(py, id))
            }
        }
    }

    fn entry(&self, id: i64) -> Option<Entry> {
        lock(&self.record).get(&id).copied()
    }

    /// The recorded content of interpreter `id` if its state dict was cleared.
    fn finalizing_content(&self, id: i64) -> Option<NonNull<C>> {
        let finalizing = lock(&self.finalizing);
        if !finalizing.contains(&id) {
            return None;
        }
        match self.entry(id) {
            Some(Entry::Live(address)) => NonNull::new(address as *mut C),
            _ => None,
        }
    }

    /// Records that interpreter `id` cleared its state dict (it is finalizing).
    fn mark_dict_cleared(&self, id: i64) {
        lock(&self.finalizing).insert(id);
    }

    /// The re-creation case: fatal under the default policy, else the error.
    fn recreated(&self, _py: Python<'_>, id: i64) -> InternalsError {
        let error = InternalsError::Recreated {
            what: C::WHAT,
            interpreter_id: id,
            key: C::key(),
        };
        if recreation_policy() == RecreationPolicy::Fatal {
            crate::fatal::fatal_error(&error.to_string());
        }
        error
    }

    fn capsule<'py>(&self, py: Python<'py>) -> Result<Option<Owned<'py>>, InternalsError> {
        get_capsule_from_state_dict(py, C::key()).or_else(|source| match source {
            CapsuleError::NoStateDict { .. } => Ok(None),
            source => Err(InternalsError::Capsule {
                what: C::WHAT,
                interpreter_id: interp_id(py, current_interp(py)),
                source,
            }),
        })
    }

    /// How many interpreters this module served.
    pub(crate) fn interpreters_seen(&self) -> usize {
        lock(&self.record).len()
    }

    /// Forgets the caches (not the record), so the next call takes the slow path.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn reset_caches(&self) {
        {
            let _transition = lock(&TRANSITION);
            self.fast.store(ptr::null_mut(), Ordering::Release);
        }
        self.main_content.store(ptr::null_mut(), Ordering::Release);
        let _ = C::cache().try_with(|cell| cell.set(Cached::EMPTY));
    }

    /// Marks interpreter `id` as released and forgets the caches, as if the content had
    /// been freed.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub(crate) fn mark_released(&self, id: i64) {
        lock(&self.record).insert(id, Entry::Released);
        self.reset_caches();
    }
}

/// Where the slow path found content.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    /// In the state dict (found or just installed): the interpreter is live.
    InStateDict,
    /// Only in this module's record: the state dict was cleared, the interpreter is
    /// finalizing.
    Recovered,
}

/// Makes sure this module's generation sentinel is in the current interpreter's state
/// dict; false if it cannot be (then nothing may be cached for this interpreter).
fn install_sentinel(py: Python<'_>, interpreter_id: i64) -> bool {
    static KEY: once_cell::sync::OnceCell<String> = once_cell::sync::OnceCell::new();
    let key = KEY.get_or_init(|| format!("{}_generation_sentinel", get_local_internals_key()));
    let make = || GenerationSentinel { interpreter_id };
    atomic_get_or_create_in_state_dict(py, key, make, Dtor::Drop).is_ok()
}

/// How many interpreters this module binary has handed shared internals to (one record
/// entry each; entries are kept for the life of the process).
pub fn interpreters_seen() -> usize {
    SHARED.interpreters_seen()
}
