//! [`CapsuleError`]: everything that can go wrong finding or creating a capsule.

/// Why a capsule could not be found, checked or created.
///
/// Every message states the rule that was broken, where (the key, the interpreter, the
/// types involved) and the way out. [`CapsuleError::is_wrong_kind`] tells "the key holds
/// something else" (a `TypeError` in Python terms) from the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapsuleError {
    /// `PyInterpreterState_GetDict` returned NULL for the current interpreter.
    #[error(
        "interpreter {interpreter_id} has no state dict (PyInterpreterState_GetDict returned \
         NULL: out of memory, or the interpreter is being torn down); capsules can only be \
         shared through a live interpreter, so call this before finalization"
    )]
    NoStateDict {
        /// `PyInterpreterState_GetID` of the interpreter.
        interpreter_id: i64,
    },

    /// The key (which also names the capsule, a C string) contains a NUL byte.
    #[error(
        "capsule key {key:?} contains a NUL byte; keys name C-level capsules and must be \
         NUL-free: remove the NUL from the key"
    )]
    InvalidKey {
        /// The offending key.
        key: String,
    },

    /// The object under the key is not a capsule at all.
    #[error(
        "the object under key {key:?} is a `{found}`, not a capsule made by bindery-capsule; \
         it was left untouched and was not reinterpreted: another library uses the same key, \
         so remove that object or choose a different key"
    )]
    NotACapsule {
        /// The state dict key (or the expected capsule name).
        key: String,
        /// The Python type found, e.g. `dict`.
        found: String,
    },

    /// The object is a capsule, but its name is not the expected one.
    #[error(
        "the capsule under key {key:?} is named {found:?}, expected {expected:?}; it belongs \
         to another library and was not reinterpreted: choose a different key"
    )]
    WrongName {
        /// The state dict key (or the expected capsule name).
        key: String,
        /// The name bindery expected (the key, for state dict capsules).
        expected: String,
        /// The capsule's actual name (`None` for an unnamed capsule).
        found: Option<String>,
    },

    /// The object is a capsule with the expected name, but it was not made by
    /// bindery-capsule (or by an incompatible release of it).
    #[error(
        "the capsule under key {key:?} has the expected name but was not made by a compatible \
         bindery-capsule ({reason}); it was not reinterpreted: another library or an \
         incompatible bindery release uses the same key, so choose a different key"
    )]
    NotBindery {
        /// The state dict key (or the expected capsule name).
        key: String,
        /// What did not match: the context marker, the magic bytes or the layout version.
        reason: String,
    },

    /// A bindery capsule holding a value of another Rust type.
    #[error(
        "the capsule under key {key:?} holds a `{found}`, but `{expected}` was requested; a key \
         must always be used with one value type (include the type, and whatever decides its \
         layout, in the key)"
    )]
    TypeMismatch {
        /// The state dict key (or the expected capsule name).
        key: String,
        /// The requested Rust type, with size and alignment.
        expected: String,
        /// The Rust type the capsule's creator stored, with size and alignment.
        found: String,
    },

    /// A Python C-API call failed.
    #[error("{context} failed: {error}")]
    Python {
        /// What was being done, e.g. `PyDict_SetDefault on the interpreter state dict`.
        context: String,
        /// The Python exception as `"ExcType: message"`.
        error: String,
    },
}

impl CapsuleError {
    /// True if the key holds something other than the requested capsule (foreign object,
    /// foreign capsule, other value type): the Python analogue is `TypeError`. False for
    /// failures of the machinery (no state dict, invalid key, a Python error), which map to
    /// `RuntimeError` (or `ValueError` for an invalid key).
    pub fn is_wrong_kind(&self) -> bool {
        matches!(
            self,
            CapsuleError::NotACapsule { .. }
                | CapsuleError::WrongName { .. }
                | CapsuleError::NotBindery { .. }
                | CapsuleError::TypeMismatch { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::CapsuleError;

    #[test]
    fn wrong_kind_classification() {
        let foreign = CapsuleError::NotACapsule {
            key: "k".into(),
            found: "dict".into(),
        };
        assert!(foreign.is_wrong_kind());
        let mismatch = CapsuleError::TypeMismatch {
            key: "k".into(),
            expected: "a::A (size 8, align 8)".into(),
            found: "b::B (size 4, align 4)".into(),
        };
        assert!(mismatch.is_wrong_kind());
        assert!(!CapsuleError::NoStateDict { interpreter_id: 3 }.is_wrong_kind());
        assert!(!CapsuleError::InvalidKey { key: "a\0b".into() }.is_wrong_kind());
        let python = CapsuleError::Python {
            context: "PyCapsule_New".into(),
            error: "MemoryError".into(),
        };
        assert!(!python.is_wrong_kind());
    }

    #[test]
    fn messages_name_key_origin_and_way_out() {
        let foreign = CapsuleError::NotACapsule {
            key: "my.key".into(),
            found: "collections.OrderedDict".into(),
        };
        let text = foreign.to_string();
        assert!(text.contains("\"my.key\""), "{text}");
        assert!(text.contains("`collections.OrderedDict`"), "{text}");
        assert!(text.contains("left untouched"), "{text}");
        assert!(text.contains("choose a different key"), "{text}");

        let mismatch = CapsuleError::TypeMismatch {
            key: "k".into(),
            expected: "a::A (size 8, align 8)".into(),
            found: "b::B (size 4, align 4)".into(),
        };
        let text = mismatch.to_string();
        assert!(text.contains("`a::A (size 8, align 8)`"), "{text}");
        assert!(text.contains("`b::B (size 4, align 4)`"), "{text}");

        let unnamed = CapsuleError::WrongName {
            key: "k".into(),
            expected: "k".into(),
            found: None,
        };
        assert!(unnamed.to_string().contains("named None"), "{unnamed}");

        let python = CapsuleError::Python {
            context: "PyCapsule_New".into(),
            error: "MemoryError".into(),
        };
        assert_eq!(python.to_string(), "PyCapsule_New failed: MemoryError");
        let no_dict = CapsuleError::NoStateDict { interpreter_id: 7 };
        assert!(
            no_dict
                .to_string()
                .starts_with("interpreter 7 has no state dict")
        );
    }
}
