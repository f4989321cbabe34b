//! The memory layout every module reads: the `#[repr(C)]` [`Header`] at the start of a
//! bindery capsule's target, the markers checked before it is trusted, and the Rust type
//! identity recorded in it.

use crate::error::CapsuleError;
use std::any::type_name;
use std::ffi::{CString, c_void};
use std::fmt;
use std::mem::{align_of, size_of};

/// Bytes at offset 0 of every bindery capsule's target.
pub(crate) const MAGIC: [u8; 8] = *b"bindcap\0";
/// Version of [`Header`]'s layout and of the lifetime rules around it. Bump on any change.
pub(crate) const LAYOUT_VERSION: u32 = 1;
/// The capsule context bindery sets: a marker value, never dereferenced. Checked before the
/// header is read, so a foreign capsule that happens to use our name is not read at all.
pub(crate) const CONTEXT_MARK: usize = 0x6269_6e64;

/// The part of a capsule's target every module may read (`#[repr(C)]`, stable per
/// [`LAYOUT_VERSION`]).
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: [u8; 8],
    pub(crate) layout_version: u32,
    pub(crate) header_size: u32,
    pub(crate) value: *mut c_void,
    pub(crate) value_size: usize,
    pub(crate) value_align: usize,
    pub(crate) type_name_ptr: *const u8,
    pub(crate) type_name_len: usize,
}

/// The Rust identity of a value type as recorded in a header and compared by readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeIdentity<'a> {
    pub(crate) name: &'a str,
    pub(crate) size: usize,
    pub(crate) align: usize,
}

impl<'a> TypeIdentity<'a> {
    pub(crate) fn of<T>() -> TypeIdentity<'static> {
        TypeIdentity {
            name: type_name::<T>(),
            size: size_of::<T>(),
            align: align_of::<T>(),
        }
    }

    /// The identity recorded in a header.
    ///
    /// # Safety
    /// The header is a valid bindery header whose capsule is alive for `'a`.
    pub(crate) unsafe fn recorded(header: &'a Header) -> TypeIdentity<'a> {
        // SAFETY: the creator stored a pointer to its `type_name` (a Box<str> in the slot,
        // alive as long as the capsule) and that string's length (caller: capsule alive).
        let bytes =
            unsafe { std::slice::from_raw_parts(header.type_name_ptr, header.type_name_len) };
        TypeIdentity {
            name: std::str::from_utf8(bytes).unwrap_or("<type name is not UTF-8>"),
            size: header.value_size,
            align: header.value_align,
        }
    }
}

impl fmt::Display for TypeIdentity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (size {}, align {})",
            self.name, self.size, self.align
        )
    }
}

/// Checks the fixed part of a header (magic, layout version, header size).
pub(crate) fn check_header_kind(key: &str, header: &Header) -> Result<(), CapsuleError> {
    let reason = if header.magic != MAGIC {
        "its magic bytes differ".to_owned()
    } else if header.layout_version != LAYOUT_VERSION {
        format!(
            "its header layout version is {}, this build reads version {LAYOUT_VERSION}",
            header.layout_version
        )
    } else if header.header_size as usize != size_of::<Header>() {
        format!(
            "its header size is {}, this build expects {}",
            header.header_size,
            size_of::<Header>()
        )
    } else {
        return Ok(());
    };
    Err(CapsuleError::NotBindery {
        key: key.to_owned(),
        reason,
    })
}

/// Checks that the recorded identity is `T`'s.
pub(crate) fn check_identity<T>(key: &str, found: &TypeIdentity<'_>) -> Result<(), CapsuleError> {
    let expected = TypeIdentity::of::<T>();
    if *found == expected {
        Ok(())
    } else {
        Err(CapsuleError::TypeMismatch {
            key: key.to_owned(),
            expected: expected.to_string(),
            found: found.to_string(),
        })
    }
}

/// `key` as a C string, or [`CapsuleError::InvalidKey`].
pub(crate) fn c_key(key: &str) -> Result<CString, CapsuleError> {
    CString::new(key).map_err(|_| CapsuleError::InvalidKey {
        key: key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe(#[allow(dead_code)] u64);

    fn header_for<T>(type_name: &str) -> Header {
        Header {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            header_size: size_of::<Header>() as u32,
            value: std::ptr::null_mut(),
            value_size: size_of::<T>(),
            value_align: align_of::<T>(),
            type_name_ptr: type_name.as_ptr(),
            type_name_len: type_name.len(),
        }
    }

    #[test]
    fn header_kind_checks() {
        let name = type_name::<Probe>();
        let good = header_for::<Probe>(name);
        assert!(check_header_kind("k", &good).is_ok());

        let mut bad_magic = header_for::<Probe>(name);
        bad_magic.magic = *b"notours\0";
        let err = check_header_kind("k", &bad_magic).unwrap_err();
        assert!(
            matches!(&err, CapsuleError::NotBindery { reason, .. } if reason.contains("magic")),
            "{err}"
        );

        let mut newer = header_for::<Probe>(name);
        newer.layout_version = LAYOUT_VERSION + 1;
        let err = check_header_kind("k", &newer).unwrap_err();
        assert!(err.to_string().contains("layout version is 2"), "{err}");

        let mut resized = header_for::<Probe>(name);
        resized.header_size += 8;
        assert!(check_header_kind("k", &resized).is_err());
    }

    #[test]
    fn identity_checks_name_size_and_align() {
        let name = type_name::<Probe>();
        let good = header_for::<Probe>(name);
        // SAFETY: the header points to `name`, alive for the test.
        let recorded = unsafe { TypeIdentity::recorded(&good) };
        assert!(check_identity::<Probe>("k", &recorded).is_ok());

        let err = check_identity::<u32>("k", &recorded).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("u32 (size 4, align 4)"), "{text}");
        assert!(
            text.contains(&format!("{name} (size 8, align 8)")),
            "{text}"
        );

        // Same name, different layout (another build of the "same" type): refused.
        let mut other_layout = header_for::<Probe>(name);
        other_layout.value_size = 16;
        // SAFETY: as above.
        let recorded = unsafe { TypeIdentity::recorded(&other_layout) };
        assert!(matches!(
            check_identity::<Probe>("k", &recorded),
            Err(CapsuleError::TypeMismatch { .. })
        ));
    }

    #[test]
    fn keys_must_be_nul_free() {
        assert!(c_key("bindery.internals.v1").is_ok());
        let err = c_key("bad\0key").unwrap_err();
        assert_eq!(
            err,
            CapsuleError::InvalidKey {
                key: "bad\0key".into()
            }
        );
    }
}
