//! Breaking reference cycles: the [`Clear`] trait and [`Cleared`], which holds the released
//! references until no borrow of the cleared value is left.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;

use smallvec::SmallVec;

/// A value that can let go of the Python objects it owns, to break reference cycles
/// (`tp_clear`), and stay valid and usable afterwards, only empty.
///
/// `clear_refs` moves every owned reference out of `self` into `cleared` (with
/// [`Cleared::defer`]) instead of dropping it in place. Dropping a reference may run any
/// Python code (`__del__`, weakref callbacks), and that code may use the object being cleared
/// again; the slot [`tp_clear`](crate::tp_clear) therefore drops `cleared` only after it has
/// released its borrow of the value, so such code finds a consistent, empty, unborrowed value
/// instead of a "value already borrowed" error.
///
/// Implemented for `Option` (becomes `None`), `Vec`, `VecDeque`, `SmallVec`, `HashMap`,
/// `BTreeMap` (become empty), `Box`, arrays and tuples of `Clear` values (each element
/// cleared), and as a no-op for plain data (`bool`, `char`, numbers, `String`, `()`). A bare
/// [`Handle`](bindery_capsule::Handle) cannot be emptied, so it does not implement `Clear`:
/// store an `Option<Handle>` where a single object must be clearable.
pub trait Clear {
    /// Moves every Python reference this value owns into `cleared`, leaving `self` empty
    /// and valid.
    fn clear_refs(&mut self, cleared: &mut Cleared);
}

/// Values taken out of objects by [`Clear::clear_refs`], dropped (releasing their Python
/// references) when the `Cleared` drops.
///
/// Drop it while attached to the interpreter (references released without a thread state
/// are leaked, see [`Handle`](bindery_capsule::Handle)), and after every borrow of the
/// cleared object was released.
#[derive(Default)]
pub struct Cleared {
    values: Vec<Box<dyn Deferred>>,
}

/// Anything: the trait object only exists to run the value's `Drop` later.
trait Deferred {}

impl<T> Deferred for T {}

impl Cleared {
    /// An empty collection (allocates nothing until a value is deferred).
    pub fn new() -> Cleared {
        Cleared::default()
    }

    /// Keeps `value` until this `Cleared` drops.
    pub fn defer<V: 'static>(&mut self, value: V) {
        self.values.push(Box::new(value));
    }

    /// How many values were deferred.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was deferred.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl std::fmt::Debug for Cleared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleared")
            .field("values", &self.values.len())
            .finish()
    }
}

impl<T: 'static> Clear for Option<T> {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        if let Some(value) = self.take() {
            cleared.defer(value);
        }
    }
}

impl<T: Clear + ?Sized> Clear for Box<T> {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        (**self).clear_refs(cleared);
    }
}

impl<T: 'static> Clear for Vec<T> {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        if !self.is_empty() {
            cleared.defer(std::mem::take(self));
        }
    }
}

impl<T: 'static> Clear for VecDeque<T> {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        if !self.is_empty() {
            cleared.defer(std::mem::take(self));
        }
    }
}

impl<A: smallvec::Array + 'static> Clear for SmallVec<A> {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        if !self.is_empty() {
            cleared.defer(std::mem::take(self));
        }
    }
}

impl<K: 'static, V: 'static, S: BuildHasher + Default + 'static> Clear for HashMap<K, V, S> {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        if !self.is_empty() {
            cleared.defer(std::mem::take(self));
        }
    }
}

impl<K: 'static, V: 'static> Clear for BTreeMap<K, V> {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        if !self.is_empty() {
            cleared.defer(std::mem::take(self));
        }
    }
}

impl<T: Clear, const N: usize> Clear for [T; N] {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        self.iter_mut().for_each(|item| item.clear_refs(cleared));
    }
}

/// Implements `Clear` for tuples whose elements all implement it.
macro_rules! clear_tuple {
    ($($name:ident),+) => {
        impl<$($name: Clear),+> Clear for ($($name,)+) {
            #[allow(non_snake_case, reason = "the type parameters name the elements")]
            fn clear_refs(&mut self, cleared: &mut Cleared) {
                let ($($name,)+) = self;
                $($name.clear_refs(cleared);)+
            }
        }
    };
}

clear_tuple!(A);
clear_tuple!(A, B);
clear_tuple!(A, B, C);
clear_tuple!(A, B, C, D);
clear_tuple!(A, B, C, D, E);
clear_tuple!(A, B, C, D, E, F);
clear_tuple!(A, B, C, D, E, F, G);
clear_tuple!(A, B, C, D, E, F, G, H);

/// Implements a no-op `Clear` for types that own no Python object.
macro_rules! clear_plain_data {
    ($($ty:ty),+) => {
        $(
            /// Owns no Python object: nothing to release.
            impl Clear for $ty {
                #[inline]
                fn clear_refs(&mut self, _cleared: &mut Cleared) {}
            }
        )+
    };
}

clear_plain_data!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String
);
