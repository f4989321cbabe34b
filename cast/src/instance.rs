//! Borrows of registered instances that own their reference: [`InstanceRef<T>`] and
//! [`InstanceMut<T>`]. They are what a bound function takes to see the caller's object
//! itself (`&T` or `&mut T`, no clone): unlike [`Ref<'a, T>`](crate::Ref) they carry no
//! lifetime, so they satisfy the `for<'a, 'py> FromPython<'a, 'py>` bound of function
//! parameters.
//!
//! Each holds one strong reference to the instance (so the value cannot be dropped while
//! it lives) and the instance's run-time borrow, released when it is dropped. Holding one
//! beyond the call is allowed but keeps the object borrowed: an `InstanceMut` kept in a
//! thread-local makes every later borrow of that object a `RuntimeError`. Dropped on a
//! thread without an attached thread state (after the interpreter finished, say), a guard
//! touches nothing: the borrow and the reference are leaked, and the `Handle` warning is
//! written once.

use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use bindery_capsule::{Borrowed, Handle, Python};

use crate::class::RegisteredClass;
use crate::error::CastError;
use crate::object::{Ref, RefMut};
use crate::traits::FromPython;

/// A shared borrow of a registered instance's value that also owns a reference to the
/// instance: derefs to `&T`. From Python: an instance of `T`'s class or a subclass, not
/// mutably borrowed (else `TypeError` / `RuntimeError`, as for [`Ref<T>`](crate::Ref)).
///
/// ```
/// # use bindery_cast::{InstanceRef, RegisteredClass};
/// # struct Point { x: f64 }
/// # impl RegisteredClass for Point { const TYPE_KEY: &'static str = "doc 0::Point"; }
/// // A bound function's parameter: reads the caller's Point in place.
/// fn x_of(p: InstanceRef<Point>) -> f64 {
///     p.x
/// }
/// ```
pub struct InstanceRef<T: RegisteredClass> {
    // Both released by `Drop`, the borrow first, while the reference still keeps the
    // instance alive; neither is touched without an attached thread state.
    borrow: ManuallyDrop<Ref<'static, T>>,
    object: ManuallyDrop<Handle>,
}

impl<T: RegisteredClass> InstanceRef<T> {
    /// The instance itself (to return it, or to keep it after the borrow ends).
    pub fn object(&self) -> &Handle {
        &self.object
    }

    /// The instance, borrowed for `py`.
    pub fn bind<'a, 'py>(&'a self, py: Python<'py>) -> Borrowed<'a, 'py> {
        self.object.bind(py)
    }
}

impl<'a, 'py, T: RegisteredClass> FromPython<'a, 'py> for InstanceRef<T> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let borrow = Ref::<'a, T>::from_python(obj)?;
        // SAFETY: only the lifetime changes. `Ref` points into the instance, which `object`
        // keeps alive for as long as this value (a strong reference); `borrow` is dropped
        // before `object` (`release`) and is never handed out with the 'static lifetime
        // (Deref ties the `&T` to `&self`). The value cannot be dropped meanwhile: dealloc
        // needs the reference count at zero, and clearing needs the exclusive borrow.
        let borrow = unsafe { std::mem::transmute::<Ref<'a, T>, Ref<'static, T>>(borrow) };
        Ok(InstanceRef {
            borrow: ManuallyDrop::new(borrow),
            object: ManuallyDrop::new(Handle::from_borrowed(obj)),
        })
    }
}

/// Releases a guard's borrow, then its reference, if the thread is attached; else leaves
/// both (the instance stays borrowed and alive) and lets the `Handle` warn.
///
/// # Safety
/// Called once, from the guard's `Drop`; `borrow` points into the instance `object` keeps
/// alive.
unsafe fn release<B>(borrow: &mut ManuallyDrop<B>, object: &mut ManuallyDrop<Handle>) {
    let released = Python::with_attached(|py| {
        // SAFETY: each field is dropped or taken exactly once (the caller's contract). The
        // instance is alive (`object` still holds it), so releasing the borrow writes to
        // live memory; then the reference goes, as an `Owned` (a plain decref).
        unsafe {
            ManuallyDrop::drop(borrow);
            drop(ManuallyDrop::take(object).into_owned(py));
        }
    });
    if released.is_none() {
        // Not attached: the interpreter, and the instance with it, may be gone. The borrow
        // is never released; the `Handle`'s own drop sees no thread state, leaks the
        // reference and warns.
        // SAFETY: `object` was not taken (the closure did not run); dropped once.
        unsafe { ManuallyDrop::drop(object) };
    }
}

impl<T: RegisteredClass> Drop for InstanceRef<T> {
    fn drop(&mut self) {
        // SAFETY: `Drop` runs once; the borrow points into the instance `object` holds.
        unsafe { release(&mut self.borrow, &mut self.object) }
    }
}

impl<T: RegisteredClass> Drop for InstanceMut<T> {
    fn drop(&mut self) {
        // SAFETY: as for `InstanceRef`.
        unsafe { release(&mut self.borrow, &mut self.object) }
    }
}

impl<T: RegisteredClass> Deref for InstanceRef<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.borrow
    }
}

impl<T: RegisteredClass + std::fmt::Debug> std::fmt::Debug for InstanceRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// The exclusive borrow of a registered instance's value that also owns a reference to the
/// instance: derefs to `&mut T`, so a bound function can change the caller's object. From
/// Python: an instance of `T`'s class or a subclass that nothing else borrows (else
/// `TypeError` / `RuntimeError`, as for [`RefMut<T>`](crate::RefMut)): passing the same
/// object twice to `f(a: InstanceMut<T>, b: InstanceMut<T>)` is a `RuntimeError`.
pub struct InstanceMut<T: RegisteredClass> {
    // Released by `Drop` as in `InstanceRef`.
    borrow: ManuallyDrop<RefMut<'static, T>>,
    object: ManuallyDrop<Handle>,
}

impl<T: RegisteredClass> InstanceMut<T> {
    /// The instance itself (to return it, or to keep it after the borrow ends).
    pub fn object(&self) -> &Handle {
        &self.object
    }

    /// The instance, borrowed for `py`.
    pub fn bind<'a, 'py>(&'a self, py: Python<'py>) -> Borrowed<'a, 'py> {
        self.object.bind(py)
    }
}

impl<'a, 'py, T: RegisteredClass> FromPython<'a, 'py> for InstanceMut<T> {
    #[inline]
    fn from_python(obj: Borrowed<'a, 'py>) -> Result<Self, CastError> {
        let borrow = RefMut::<'a, T>::from_python(obj)?;
        // SAFETY: as for `InstanceRef`: only the lifetime changes; `object` keeps the
        // instance alive and outlives `borrow`, which is never handed out as 'static.
        let borrow = unsafe { std::mem::transmute::<RefMut<'a, T>, RefMut<'static, T>>(borrow) };
        Ok(InstanceMut {
            borrow: ManuallyDrop::new(borrow),
            object: ManuallyDrop::new(Handle::from_borrowed(obj)),
        })
    }
}

impl<T: RegisteredClass> Deref for InstanceMut<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.borrow
    }
}

impl<T: RegisteredClass> DerefMut for InstanceMut<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.borrow
    }
}

impl<T: RegisteredClass + std::fmt::Debug> std::fmt::Debug for InstanceMut<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}
