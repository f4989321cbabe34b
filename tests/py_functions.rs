//! Interpreter-level tests of the facade's modules and functions: calls, keywords, defaults,
//! errors, panics, custom exceptions, signatures, subinterpreters. Each runs a script in a
//! fresh interpreter through bindery-testkit; CI reruns this file on every Python.

use bindery_testkit::{Extension, Script, requires_python};

mod common;

/// A script with the two modules staged and the shared `expect` helper defined.
fn features(code: &str) -> Script {
    Script::new(code)
        .prelude(common::EXPECT)
        .extension(Extension::new("bindery-example-features"))
        .extension(Extension::new("bindery-example-minimal"))
        .with_subinterpreter_helpers()
}

#[test]
fn minimal_module_adds_and_sums() {
    features(
        r#"
        import bindery_example_minimal as m
        assert m.add(1, 2) == 3
        assert m.add(-5, 2) == -3
        assert m.add(a=1, b=2) == 3
        assert m.add(1, b=2) == 3
        assert m.sum_list([0.5, 1.5, 2]) == 4.0
        assert m.sum_list((1.0,) * 1000) == 1000.0
        assert m.sum_list([]) == 0.0
        try:
            m.add(2**63 - 1, 1)
        except OverflowError as e:
            assert "add() result does not fit" in str(e), e
        else:
            raise AssertionError("overflow not reported")
        assert m.__doc__ == "The smallest bindery module."
        "#,
    )
    .check();
}

#[test]
fn keywords_defaults_and_optional_arguments() {
    features(
        r#"
        import bindery_example_features as f
        assert f.greet("Ada") == "Hello, Ada"
        assert f.greet("Ada", "Hi") == "Hi, Ada"
        assert f.greet("Ada", punctuation="!") == "Hello, Ada!"
        assert f.greet(name="Ada", greeting="Hey", punctuation="?") == "Hey, Ada?"
        assert f.greet("Ada", None if False else "Yo", None) == "Yo, Ada"
        assert f.scale([1.0, 2.0]) == [2.0, 4.0]
        assert f.scale([1.0], factor=0.5) == [0.5]
        assert f.nothing() is None
        assert f.six(1, 2, 3, 4, 5, 6) == 21
        assert f.add_offset(1) == 101 and f.add_offset(x=-100) == 0
        assert f.ANSWER == 42
        "#,
    )
    .check();
}

#[test]
fn argument_errors_name_the_function_and_the_parameter() {
    features(
        r#"
        import bindery_example_features as f, bindery_example_minimal as m
        expect(TypeError, "add() takes 2 positional arguments but 3 were given", m.add, 1, 2, 3)
        expect(TypeError, "add() missing required argument 'b' (pos 2)", m.add, 1)
        expect(TypeError, "add() missing required argument 'a' (pos 1)", m.add)
        expect(TypeError, "add() got an unexpected keyword argument 'c'", m.add, 1, 2, c=3)
        expect(TypeError, "add() got multiple values for argument 'a'", m.add, 1, a=2)
        expect(TypeError, "add() argument 'b': cannot convert Python 'str' to Rust 'i64'", m.add, 1, "2")
        expect(OverflowError, "add() argument 'a': Python int", m.add, 2**64, 1)
        expect(TypeError, "sum_list() argument 'xs'", m.sum_list, "not a list")
        expect(TypeError, "greet() argument 'punctuation'", f.greet, "x", "y", 3)
        "#,
    )
    .check();
}

#[test]
fn errors_become_exceptions_of_their_class() {
    features(
        r#"
        import bindery_example_features as f
        assert f.parse_port("8080") == 8080
        try:
            f.parse_port("http")
        except f.ParseError as e:
            assert isinstance(e, ValueError)
            assert "not a port: \"http\"" in str(e), e
        else:
            raise AssertionError("no ParseError")
        assert f.ParseError.__module__ == "bindery_example_features"
        try:
            f.parse_port("0")
        except ValueError as e:
            assert type(e) is ValueError and "port 0 is reserved" in str(e)
        else:
            raise AssertionError("no ValueError")
        "#,
    )
    .check();
}

#[test]
fn a_panic_is_an_exception_that_except_exception_does_not_swallow() {
    features(
        r#"
        import bindery_example_features as f, bindery_example_minimal as m
        try:
            try:
                f.explode("boom")
            except Exception:
                raise AssertionError("a panic was swallowed by `except Exception`")
        except BaseException as e:
            assert type(e).__name__ == "PanicException", type(e)
            assert "Rust panic: boom" in str(e), e
            assert isinstance(e, f.PanicException)
            assert f.PanicException is m.PanicException  # one class per interpreter
        # the interpreter goes on
        assert f.greet("again") == "Hello, again"
        for _ in range(3):
            try:
                f.explode("again")
            except f.PanicException:
                pass
        "#,
    )
    .check();
}

#[test]
fn help_and_inspect_see_docstrings_and_signatures() {
    features(
        r#"
        import inspect
        import bindery_example_features as f, bindery_example_minimal as m
        assert str(inspect.signature(m.add)) == "(a, b)", inspect.signature(m.add)
        assert str(inspect.signature(f.greet)) == "(name, greeting='Hello', punctuation=None)", inspect.signature(f.greet)
        assert str(inspect.signature(f.scale)) == "(xs, factor=2.0)"
        assert m.add.__doc__ == "Return a + b for two ints.", repr(m.add.__doc__)
        assert m.add.__name__ == "add" and m.add.__module__ == "bindery_example_minimal"
        assert "Return the float sum" in m.sum_list.__doc__
        "#,
    )
    .check();
}

const IN_SUBINTERPRETER: &str = r#"
import bindery_example_features as f, bindery_example_minimal as m
assert m.add(2, 3) == 5
assert f.interpreter_id() != 0
assert f.greet("sub", punctuation="!") == "Hello, sub!"
try:
    f.parse_port("x")
except f.ParseError:
    pass
try:
    f.explode("in a subinterpreter")
except f.PanicException:
    pass
"#;

#[test]
fn modules_work_in_shared_gil_subinterpreters() {
    features(&format!(
        "import bindery_example_features as f\nrun_in_subinterpreter({IN_SUBINTERPRETER:?})\nrun_in_subinterpreter({IN_SUBINTERPRETER:?})\nassert f.interpreter_id() == 0\n"
    ))
    .check();
}

#[test]
fn modules_work_in_own_gil_subinterpreters() {
    if !requires_python(3, 12, "own-GIL subinterpreters") {
        return;
    }
    features(&format!(
        "import bindery_example_features as f\nrun_in_subinterpreter({IN_SUBINTERPRETER:?}, own_gil=True)\nrun_in_subinterpreter({IN_SUBINTERPRETER:?}, own_gil=True)\nassert f.interpreter_id() == 0\n"
    ))
    .check();
}
