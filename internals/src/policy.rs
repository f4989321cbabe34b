//! The lifetime policy of internals: leaked at exit.
//!
//! Content is installed with [`Dtor::Leak`]: when the interpreter clears its state dict at
//! shutdown, the capsule goes away but the content stays, so `tp_traverse`, `tp_clear` and
//! finalizers that cast during the interpreter's last garbage collection still find every
//! registered type. Changing this policy changes what older modules sharing the same key
//! rely on, so it bumps [`INTERNALS_VERSION`](crate::INTERNALS_VERSION).
//!
//! With the `test-hooks` feature, the environment variable
//! `BINDERY_TEST_FREE_INTERNALS_AT_EXIT=1` (read when content is created) switches to the
//! design pybind11 reverted: free the content when the state dict is cleared. It exists only
//! as a negative control, so the shutdown suite can prove it catches that design (a crash,
//! or the re-creation diagnostic).

use bindery_capsule::Dtor;

use crate::content::Content;

/// The destructor policy for new content of kind `C`.
pub(crate) fn content_dtor<C: Content>() -> Dtor<C> {
    #[cfg(feature = "test-hooks")]
    if free_at_exit() {
        return Dtor::Custom(free_and_forget::<C>);
    }
    Dtor::Leak
}

/// Whether the negative control is switched on for this process.
#[cfg(feature = "test-hooks")]
fn free_at_exit() -> bool {
    std::env::var_os("BINDERY_TEST_FREE_INTERNALS_AT_EXIT").is_some_and(|v| v == "1")
}

/// Frees content when its capsule dies, after marking it released in this module's record
/// (other modules' caches are left dangling, as in the reverted design).
#[cfg(feature = "test-hooks")]
fn free_and_forget<C: Content>(content: Box<C>) {
    C::manager().mark_released(content.interpreter());
    drop(content);
}
