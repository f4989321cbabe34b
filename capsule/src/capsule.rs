//! Typed capsules: [`new_capsule`], [`capsule_value`] and the destructor policy [`Dtor`].
//!
//! Memory layout (shared by every module that uses a compatible bindery-capsule, whoever
//! built it): the capsule's pointer targets a `#[repr(C)]` [`Header`] which every module may
//! read, followed by a tail only the creating module touches (its capsule destructor is
//! monomorphized there). The value itself is a separate `Box<T>`, so its address never moves
//! and can outlive the header under [`Dtor::Leak`].

use crate::error::CapsuleError;
use crate::layout::{
    CONTEXT_MARK, Header, LAYOUT_VERSION, MAGIC, TypeIdentity, c_key, check_header_kind,
    check_identity,
};
use crate::python::{Owned, Python, SavedError, take_error_text};
use pyo3_ffi as ffi;
use std::any::type_name;
use std::ffi::{CStr, CString, c_void};
use std::fmt;
use std::io::Write;
use std::mem::size_of;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

/// What happens to a capsule's value when the capsule is destroyed (its last reference
/// goes, typically when the interpreter clears its state dict at finalization).
///
/// The type-safe form of pybind11's capsule destructor argument: `delete` ([`Dtor::Drop`]),
/// `nullptr` ([`Dtor::Leak`]) or a function ([`Dtor::Custom`]). The default is
/// [`Dtor::Drop`].
#[derive(Default)]
pub enum Dtor<T> {
    /// Drop the value (run `T`'s `Drop`, free the box).
    #[default]
    Drop,
    /// Never free the value: pointers to it stay valid until the process exits. Use it for
    /// state that garbage-collector callbacks (`tp_traverse`, `tp_clear`, finalizers) may
    /// still read after the interpreter cleared its state dict.
    Leak,
    /// Hand the box to this function, which owns it from then on (release a foreign
    /// resource, return the value to a pool, log, ...).
    Custom(fn(Box<T>)),
}

impl<T> Clone for Dtor<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Dtor<T> {}

impl<T> fmt::Debug for Dtor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dtor::Drop => f.write_str("Drop"),
            Dtor::Leak => f.write_str("Leak"),
            Dtor::Custom(function) => write!(f, "Custom({:p})", *function as *const ()),
        }
    }
}

impl<T> Dtor<T> {
    /// Applies the policy to a value.
    fn apply(self, value: Box<T>) {
        match self {
            Dtor::Drop => drop(value),
            Dtor::Leak => std::mem::forget(value),
            Dtor::Custom(function) => function(value),
        }
    }

    /// Disposes of a value that was never shared (a lost race, a failed creation): nothing
    /// can point to it, so `Leak` has no reason to leak and drops it instead; `Custom`
    /// still gets it, since it may be the only correct way to release it.
    pub(crate) fn apply_unshared(self, value: Box<T>) {
        match self {
            Dtor::Drop | Dtor::Leak => drop(value),
            Dtor::Custom(function) => function(value),
        }
    }
}

/// What the creating module allocates: the shared header first, then its private tail.
#[repr(C)]
struct Slot<T> {
    header: Header,
    name: CString,
    type_name: Box<str>,
    dtor: Dtor<T>,
}

/// A capsule this module just made and nobody else has seen yet.
pub(crate) struct FreshCapsule<'py, T: Send + 'static> {
    capsule: Owned<'py>,
    slot: NonNull<Slot<T>>,
}

impl<'py, T: Send + 'static> FreshCapsule<'py, T> {
    /// Boxes `value` and wraps it in a new capsule named `name`. On failure the value is
    /// disposed of as unshared (see [`Dtor`]).
    pub(crate) fn new(
        py: Python<'py>,
        name: &str,
        value: T,
        dtor: Dtor<T>,
    ) -> Result<FreshCapsule<'py, T>, CapsuleError> {
        let c_name = match c_key(name) {
            Ok(c_name) => c_name,
            Err(error) => {
                dtor.apply_unshared(Box::new(value));
                return Err(error);
            }
        };
        let identity = TypeIdentity::of::<T>();
        let type_name: Box<str> = identity.name.into();
        let value = Box::into_raw(Box::new(value));
        let slot = Box::new(Slot {
            header: Header {
                magic: MAGIC,
                layout_version: LAYOUT_VERSION,
                header_size: size_of::<Header>() as u32,
                value: value.cast(),
                value_size: identity.size,
                value_align: identity.align,
                type_name_ptr: type_name.as_ptr(),
                type_name_len: type_name.len(),
            },
            name: c_name,
            type_name,
            dtor,
        });
        let slot = NonNull::from(Box::leak(slot));
        // SAFETY: `slot` is a live allocation we own; its name is a NUL-terminated string
        // that lives as long as the slot, which the destructor frees only after CPython no
        // longer needs the name; attached thread state (token).
        let raw = unsafe {
            ffi::PyCapsule_New(
                slot.as_ptr().cast(),
                (*slot.as_ptr()).name.as_ptr(),
                Some(destroy_capsule::<T>),
            )
        };
        // SAFETY: PyCapsule_New returns a new reference or null.
        let Some(capsule) = (unsafe { Owned::from_owned_ptr(py, raw) }) else {
            let error = take_error_text(py).unwrap_or_else(|| "no exception set".to_owned());
            // SAFETY: the capsule was not created, so we still own the slot exclusively.
            unsafe { Slot::release_unshared(slot) };
            return Err(CapsuleError::Python {
                context: "PyCapsule_New".to_owned(),
                error,
            });
        };
        // SAFETY: `capsule` is a valid capsule; the context is a marker, never dereferenced.
        let rc =
            unsafe { ffi::PyCapsule_SetContext(capsule.as_ptr(), CONTEXT_MARK as *mut c_void) };
        debug_assert_eq!(rc, 0, "PyCapsule_SetContext cannot fail on a valid capsule");
        Ok(FreshCapsule { capsule, slot })
    }

    /// The value's address.
    pub(crate) fn value(&self) -> NonNull<T> {
        // SAFETY: the slot is alive while we hold the capsule; its value pointer came from
        // Box::into_raw, hence non-null.
        unsafe { NonNull::new_unchecked((*self.slot.as_ptr()).header.value.cast::<T>()) }
    }

    /// The capsule object pointer (still owned by `self`).
    pub(crate) fn capsule_ptr(&self) -> *mut ffi::PyObject {
        self.capsule.as_ptr()
    }

    /// The capsule object, from now on shared.
    pub(crate) fn into_capsule(self) -> Owned<'py> {
        self.capsule
    }

    /// Destroys the capsule, which nobody else saw, disposing of its value as unshared
    /// (`Leak` drops it): the loser of a race.
    pub(crate) fn discard(self) {
        // SAFETY: nobody else holds a reference to the capsule (it was never published), so
        // we may change its slot's policy before the last reference goes.
        unsafe {
            let dtor = &mut (*self.slot.as_ptr()).dtor;
            if matches!(dtor, Dtor::Leak) {
                *dtor = Dtor::Drop;
            }
        }
        drop(self.capsule);
    }
}

impl<T: Send + 'static> Slot<T> {
    /// Frees a slot whose capsule was never created, disposing of the value as unshared.
    ///
    /// # Safety
    /// `slot` came from `Box::leak` in [`FreshCapsule::new`] and is owned by the caller.
    unsafe fn release_unshared(slot: NonNull<Slot<T>>) {
        // SAFETY: caller contract: we own the slot allocation.
        let slot = unsafe { Box::from_raw(slot.as_ptr()) };
        // SAFETY: the value pointer came from Box::into_raw and nothing else owns it.
        let value = unsafe { Box::from_raw(slot.header.value.cast::<T>()) };
        slot.dtor.apply_unshared(value);
    }

    /// Frees the slot and applies the policy to the value (the capsule destructor's work).
    fn release(self: Box<Self>) {
        let dtor = self.dtor;
        let value = self.header.value.cast::<T>();
        drop(self);
        // SAFETY: the value pointer came from Box::into_raw and only this capsule owned it;
        // the capsule is being destroyed, so nobody will read it through the capsule again.
        dtor.apply(unsafe { Box::from_raw(value) });
    }
}

/// The capsule destructor, monomorphized in the module that created the capsule (so `T` and
/// the slot layout are that module's). Applies the [`Dtor`]; a panic cannot unwind into C,
/// so it aborts the process with a message naming the capsule and `T`.
unsafe extern "C" fn destroy_capsule<T: Send + 'static>(capsule: *mut ffi::PyObject) {
    // SAFETY: CPython calls the destructor with the capsule being deallocated and an
    // attached thread state; reading its name and pointer does not raise for a valid capsule.
    let slot = unsafe {
        let name = ffi::PyCapsule_GetName(capsule);
        ffi::PyCapsule_GetPointer(capsule, name)
    };
    let Some(slot) = NonNull::new(slot.cast::<Slot<T>>()) else {
        // Only possible if foreign code broke the capsule (SetPointer cannot set NULL).
        // SAFETY: attached thread state; do not leave an error set in a deallocator.
        unsafe { ffi::PyErr_Clear() };
        return;
    };
    // SAFETY: the capsule was made by FreshCapsule::new::<T> with this destructor, so the
    // pointer is our leaked Box<Slot<T>>; the capsule is dying, so we own it now.
    let slot = unsafe { Box::from_raw(slot.as_ptr()) };
    let key = slot.name.to_string_lossy().into_owned();
    // SAFETY: a capsule destructor runs with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    let saved = SavedError::save(py);
    let outcome = catch_unwind(AssertUnwindSafe(move || slot.release()));
    if let Err(payload) = outcome {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string panic payload>".to_owned());
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "bindery-capsule: fatal: a panic in the destructor of capsule {key:?} (value type \
             `{}`) cannot unwind into CPython; aborting. Panic: {message}",
            type_name::<T>()
        );
        let _ = stderr.flush();
        std::process::abort();
    }
    if let Some(error) = take_error_text(py) {
        // A Drop impl or custom function left a Python error: it must not leak into the
        // deallocation that called us.
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "bindery-capsule: the destructor of capsule {key:?} left a Python error, \
             ignored: {error}"
        );
    }
    drop(saved);
}

/// Creates a capsule owning `value` (boxed: its address never moves), named `name`, whose
/// destruction applies `dtor` to the value.
///
/// The capsule carries bindery's header, so [`capsule_value`] can later check, in this or any
/// other module built with a compatible bindery-capsule, that it really holds a `T`.
///
/// Errors: [`CapsuleError::InvalidKey`] if `name` contains NUL, [`CapsuleError::Python`] if
/// the capsule cannot be allocated. The value is then disposed of at once (dropped, or given
/// to the custom function).
pub fn new_capsule<'py, T: Send + 'static>(
    py: Python<'py>,
    name: &str,
    value: T,
    dtor: Dtor<T>,
) -> Result<Owned<'py>, CapsuleError> {
    FreshCapsule::new(py, name, value, dtor).map(FreshCapsule::into_capsule)
}

/// The value inside a capsule created by [`new_capsule::<T>`](new_capsule) with this name.
///
/// Checks the kind before reading anything behind the capsule's pointer: it is a capsule
/// (else [`CapsuleError::NotACapsule`]), its name is `name` ([`CapsuleError::WrongName`]),
/// it carries bindery's context marker, magic and layout version
/// ([`CapsuleError::NotBindery`]), and its recorded type name, size and alignment are `T`'s
/// ([`CapsuleError::TypeMismatch`]). Foreign memory is never reinterpreted.
///
/// The pointer is valid while the capsule lives (under [`Dtor::Drop`] and
/// [`Dtor::Custom`]) or until the process exits (under [`Dtor::Leak`]). The caller decides
/// how to share it: the value is reachable from every thread of the interpreter that can
/// reach the capsule.
pub fn capsule_value<'py, T: Send + 'static>(
    obj: &Owned<'py>,
    name: &str,
) -> Result<NonNull<T>, CapsuleError> {
    let header = bindery_header(obj, name)?;
    // SAFETY: `bindery_header` verified the header; `obj` keeps the capsule alive.
    let found = unsafe { TypeIdentity::recorded(header) };
    check_identity::<T>(name, &found)?;
    NonNull::new(header.value.cast::<T>()).ok_or_else(|| CapsuleError::NotBindery {
        key: name.to_owned(),
        reason: "its value pointer is null".to_owned(),
    })
}

/// The verified bindery header of `obj`, a capsule named `name`; borrowed from `obj`.
pub(crate) fn bindery_header<'a>(
    obj: &'a Owned<'_>,
    name: &str,
) -> Result<&'a Header, CapsuleError> {
    let p = obj.as_ptr();
    // SAFETY: `obj` is a live object.
    if unsafe { ffi::PyCapsule_CheckExact(p) } == 0 {
        return Err(CapsuleError::NotACapsule {
            key: name.to_owned(),
            found: obj.type_name(),
        });
    }
    // SAFETY: `p` is a capsule; GetName does not raise for a valid capsule and returns its
    // (possibly null) NUL-terminated name, alive while the capsule is.
    let found_name = unsafe { ffi::PyCapsule_GetName(p) };
    // SAFETY: non-null names are NUL-terminated and alive (see above).
    let found_name = (!found_name.is_null()).then(|| unsafe { CStr::from_ptr(found_name) });
    if found_name.map(CStr::to_bytes) != Some(name.as_bytes()) {
        return Err(CapsuleError::WrongName {
            key: name.to_owned(),
            expected: name.to_owned(),
            found: found_name.map(|n| n.to_string_lossy().into_owned()),
        });
    }
    // SAFETY: `p` is a valid capsule; GetContext does not raise for one.
    let context = unsafe { ffi::PyCapsule_GetContext(p) };
    if context as usize != CONTEXT_MARK {
        return Err(CapsuleError::NotBindery {
            key: name.to_owned(),
            reason: "its context pointer is not bindery's marker".to_owned(),
        });
    }
    // SAFETY: a valid capsule named `name` (checked): GetPointer with its own name returns its
    // non-null pointer without raising.
    let target =
        unsafe { ffi::PyCapsule_GetPointer(p, found_name.map_or(std::ptr::null(), CStr::as_ptr)) };
    if target.is_null() {
        // SAFETY: attached thread state (obj's token); clear the ValueError GetPointer set.
        unsafe { ffi::PyErr_Clear() };
        return Err(CapsuleError::NotBindery {
            key: name.to_owned(),
            reason: "its pointer is null".to_owned(),
        });
    }
    // SAFETY: name and context marker match bindery's, so the creator was bindery-capsule and
    // the target starts with a Header (every layout version starts with magic and version,
    // which `check_header_kind` verifies before any other field is trusted); it lives as long
    // as the capsule, which `obj` keeps alive for 'a.
    let header = unsafe { &*target.cast::<Header>() };
    check_header_kind(name, header)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe(#[allow(dead_code)] u64);

    #[test]
    fn default_policy_is_drop() {
        assert!(matches!(Dtor::<Probe>::default(), Dtor::Drop));
        let custom: Dtor<Probe> = Dtor::Custom(drop);
        let copy = custom;
        assert!(matches!(copy, Dtor::Custom(_)));
        assert!(format!("{custom:?}").starts_with("Custom(0x"));
        assert_eq!(format!("{:?}", Dtor::<Probe>::Leak), "Leak");
    }

    #[test]
    fn unshared_disposal_drops_under_leak_and_calls_custom() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        static CUSTOMS: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn custom(value: Box<Counted>) {
            CUSTOMS.fetch_add(1, Ordering::SeqCst);
            std::mem::forget(value);
        }
        Dtor::Leak.apply_unshared(Box::new(Counted));
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            1,
            "an unshared value is never leaked"
        );
        Dtor::Leak.apply(Box::new(Counted));
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            1,
            "a shared value under Leak is leaked"
        );
        Dtor::Drop.apply(Box::new(Counted));
        assert_eq!(DROPS.load(Ordering::SeqCst), 2);
        Dtor::Custom(custom).apply_unshared(Box::new(Counted));
        Dtor::Custom(custom).apply(Box::new(Counted));
        assert_eq!(CUSTOMS.load(Ordering::SeqCst), 2);
        assert_eq!(DROPS.load(Ordering::SeqCst), 2, "custom took ownership");
    }

    #[test]
    fn header_layout_is_stable() {
        // Other modules read this layout: any change must bump LAYOUT_VERSION.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(size_of::<Header>(), 56);
        assert_eq!(std::mem::offset_of!(Header, magic), 0);
        assert_eq!(std::mem::offset_of!(Header, layout_version), 8);
        assert_eq!(std::mem::offset_of!(Slot<Probe>, header), 0);
        assert_eq!(LAYOUT_VERSION, 1);
    }
}
