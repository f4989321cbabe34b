//! The keys under which internals live in the interpreter state dict.
//!
//! The shared key names everything that must match for two modules to share content safely;
//! modules whose keys differ never see each other's content. The local key is unique to one
//! module binary, so module-local content is never shared.

use once_cell::sync::OnceCell;

use crate::compat;

/// Version of the layout and lifetime policy of [`Internals`](crate::Internals) and
/// [`LocalInternals`](crate::LocalInternals).
///
/// Bumped by any change to their layout or to their lifetime policy (leaked at exit); never by
/// a patch release. A module built by an older release of bindery may share one interpreter
/// with a module built by a newer one: a lifetime fix that only new modules obeyed would be no
/// fix, so a change of policy must also change the key.
pub const INTERNALS_VERSION: u32 = if cfg!(feature = "internals-version-test-bump") {
    // Test-only builds pretend to be a far-future layout.
    1_000_001
} else {
    1
};

/// The rustc that compiled this module: the layout of Rust types (maps, locks) in the shared
/// content is only guaranteed equal for the same compiler.
const RUSTC_ID: &str = env!("BINDERY_RUSTC_ID");
/// The target triple this module was compiled for.
const TARGET: &str = env!("BINDERY_TARGET");

/// The state-dict key of the shared internals.
///
/// It names the internals version, the rustc version, the target triple, the pointer width
/// and whether the interpreter is free-threaded, e.g.
/// `__bindery_internals_v1_rustc-1.95.0-59807616e_x86_64-unknown-linux-gnu_64bit_gil__`.
/// Two modules share internals exactly when their keys are equal.
pub fn internals_id() -> &'static str {
    static ID: OnceCell<String> = OnceCell::new();
    ID.get_or_init(|| {
        format!(
            "__bindery_internals_v{INTERNALS_VERSION}_rustc-{RUSTC_ID}_{TARGET}_{}bit_{}__",
            usize::BITS,
            if compat::FREE_THREADED { "ft" } else { "gil" },
        )
    })
}

/// The state-dict key of this module's local internals.
///
/// It is the prefix `__bindery_local_internals_`, the address of a static that lives in this
/// module binary (unique among the binaries loaded in a process, since CPython never unloads
/// an extension module) and the shared key, so two modules, or two copies of bindery in one
/// binary, never share local content.
pub fn get_local_internals_key() -> &'static str {
    static ANCHOR: u8 = 0;
    static KEY: OnceCell<String> = OnceCell::new();
    KEY.get_or_init(|| {
        format!(
            "__bindery_local_internals_{:x}{}",
            std::ptr::addr_of!(ANCHOR) as usize,
            internals_id().trim_start_matches("__bindery_internals")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_key_names_everything_that_must_match() {
        let id = internals_id();
        assert!(id.starts_with(&format!("__bindery_internals_v{INTERNALS_VERSION}_")));
        assert!(id.contains(RUSTC_ID), "{id}");
        assert!(id.contains(TARGET), "{id}");
        assert!(id.contains(&format!("_{}bit_", usize::BITS)), "{id}");
        assert!(id.ends_with("_gil__") || id.ends_with("_ft__"), "{id}");
        assert!(!id.contains('\0'));
    }

    #[test]
    fn local_key_differs_from_shared_key_and_is_stable() {
        let local = get_local_internals_key();
        assert!(local.starts_with("__bindery_local_internals_"), "{local}");
        assert_ne!(local, internals_id());
        assert!(local.ends_with(internals_id().trim_start_matches("__bindery_internals")));
        assert_eq!(local, get_local_internals_key());
    }
}
