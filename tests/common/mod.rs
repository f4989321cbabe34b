//! What the interpreter-level tests of the facade share.

/// A Python prelude ([`bindery_testkit::Script::prelude`]) defining
/// `expect(exc, text, call, *args, **kwargs)`: `call(*args, **kwargs)` must raise exactly
/// `exc` (not a subclass: the class is part of the contract) with `text` in its message.
pub const EXPECT: &str = r#"
    def expect(exc, text, call, *args, **kwargs):
        try:
            call(*args, **kwargs)
        except exc as e:
            assert text in str(e), (text, str(e))
            assert type(e) is exc, (type(e), exc)
        else:
            raise AssertionError(f"{call}{args}{kwargs} did not raise {exc.__name__}")
"#;
