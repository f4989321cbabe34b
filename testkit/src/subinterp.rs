//! A Python helper for running code in subinterpreters, the same way on CPython 3.9-3.13.

/// Python source defining, for a script to use (prepend it with
/// [`Script::with_subinterpreter_helpers`](crate::Script::with_subinterpreter_helpers), or
/// by hand: `format!("{SUBINTERPRETER_HELPERS}\n{body}")`):
///
/// - `run_in_subinterpreter(code: str, own_gil: bool = False) -> None`: creates a
///   subinterpreter, runs `code` in it, destroys it. `sys.path` in the subinterpreter is set
///   to the calling interpreter's `sys.path` first, so staged extensions import there too.
///   Raises `RuntimeError` with the subinterpreter's exception text if `code` raised.
///   - 3.9-3.11 (`_xxsubinterpreters`): shared GIL only; `own_gil=True` raises
///     `RuntimeError`.
///   - 3.12 (`_xxsubinterpreters`): `own_gil=True` creates an isolated interpreter with its
///     own GIL, `False` a legacy one sharing the main GIL.
///   - 3.13 (`_interpreters`): config `'isolated'` (own GIL) or `'legacy'` (shared GIL).
/// - `SUBINTERPRETERS_OWN_GIL: bool`: whether `own_gil=True` is available (3.12+).
///
/// Both modules are CPython's private test-support modules; the helper hides their
/// differences between versions. The names it defines besides these two start with
/// `_bindery`.
///
/// ```no_run
/// use bindery_testkit::Script;
///
/// Script::new("
///     run_in_subinterpreter('import json; assert json.loads(\"[1]\") == [1]')
///     if SUBINTERPRETERS_OWN_GIL:
///         run_in_subinterpreter('import json', own_gil=True)
/// ")
/// .with_subinterpreter_helpers()
/// .check();
/// ```
pub const SUBINTERPRETER_HELPERS: &str = r#"import sys as _bindery_sys

SUBINTERPRETERS_OWN_GIL = _bindery_sys.version_info >= (3, 12)


def run_in_subinterpreter(code, own_gil=False):
    """Run `code` in a new subinterpreter (own GIL if `own_gil`, 3.12+), then destroy it."""
    if own_gil and not SUBINTERPRETERS_OWN_GIL:
        raise RuntimeError(
            "own-GIL subinterpreters need Python 3.12+, this is %d.%d"
            % _bindery_sys.version_info[:2]
        )
    source = "import sys\nsys.path[:] = %r\n%s" % (list(_bindery_sys.path), code)
    if _bindery_sys.version_info >= (3, 13):
        import _interpreters as _bindery_interpreters

        interp = _bindery_interpreters.create("isolated" if own_gil else "legacy")
        try:
            excinfo = _bindery_interpreters.exec(interp, source)
        finally:
            _bindery_interpreters.destroy(interp)
        if excinfo is not None:
            text = getattr(excinfo, "formatted", None) or "%s: %s" % (
                getattr(excinfo, "type", "exception"),
                getattr(excinfo, "msg", ""),
            )
            raise RuntimeError("subinterpreter raised: %s" % (text,))
    else:
        import _xxsubinterpreters as _bindery_interpreters

        if _bindery_sys.version_info >= (3, 12):
            interp = _bindery_interpreters.create(isolated=bool(own_gil))
        else:
            interp = _bindery_interpreters.create()
        try:
            _bindery_interpreters.run_string(interp, source)
        except _bindery_interpreters.RunFailedError as exc:
            raise RuntimeError("subinterpreter raised: %s" % (exc,)) from None
        finally:
            _bindery_interpreters.destroy(interp)
"#;
