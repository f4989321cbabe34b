//! Casting through real extension modules, in fresh interpreters, on every Python (CI reruns
//! this file with BINDERY_PYTHON=<each version>): registered classes made by one separately
//! built module and cast by another (as `&T`, `&mut T` and `T`), Python subclasses,
//! conflicting borrows, module-local classes, subinterpreters, and every builtin conversion
//! with its refusals.

use bindery_testkit::{Extension, Script, requires_python};

fn script(code: &str) -> Script {
    Script::new(code)
        .extension(Extension::new("bindery-example-cast-a"))
        .extension(Extension::new("bindery-example-cast-b"))
        .with_subinterpreter_helpers()
}

/// Checks run in the main interpreter and in subinterpreters: a's classes cast by b.
const CROSS_MODULE: &str = r#"
import bindery_example_cast_a as a, bindery_example_cast_b as b
POINT = "bindery_example_cast_common::Point"
COUNTER = "bindery_example_cast_common::Counter"

def raises(exc_class, fn, *args):
    try:
        fn(*args)
    except exc_class as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} did not raise {exc_class.__name__}")

p = a.Point(3.0, 4.0)
assert type(p) is a.Point and type(p).__module__ == "bindery_example_cast_a"
assert b.norm(p) == 5.0                     # &T in another module
b.scale(p, 2)                               # &mut T
assert b.coords(p) == (6.0, 8.0)            # T by clone
assert a.coords(p) == (6.0, 8.0)
# b makes instances of a's class: found in the shared registry by type key.
q = b.make_point(1, 2)
assert type(q) is a.Point, type(q)
assert a.norm(q) == 5 ** 0.5
expected = 0.0
for i in range(4):   # summed in order, as Rust does (3.12+ sum() compensates rounding)
    expected += (2 * i * i) ** 0.5
assert abs(b.sum_norms(a.make_points(4)) - expected) < 1e-12
assert all(type(x) is a.Point for x in b.make_points(2))

c = a.Counter(5)
assert b.increment(c) == 6 and a.increment(c) == 7
assert b.history(c) == ["created at 5", "incremented to 6", "incremented to 7"]
assert type(b.make_counter(1)) is a.Counter

# Wrong types fail cleanly, naming both sides.
for bad, name in [(42, "int"), ("x", "str"), (None, "NoneType"), (c, "bindery_example_cast_a.Counter")]:
    message = raises(TypeError, b.norm, bad)
    assert message == f"cannot convert Python '{name}' to Rust '{POINT}'", message
message = raises(TypeError, b.increment, p)
assert message == f"cannot convert Python 'bindery_example_cast_a.Point' to Rust '{COUNTER}'", message

# A type nobody registered: the message says how to register it.
for fn, args, start in [
    (b.take_unregistered, (p,), "cannot convert Python 'bindery_example_cast_a.Point' to Rust 'bindery_example_cast_common::Unregistered': "),
    (b.make_unregistered, (), "cannot convert Rust 'bindery_example_cast_common::Unregistered' to Python: "),
]:
    message = raises(TypeError, fn, *args)
    assert message.startswith(start), message
    assert message.endswith("the Rust type is not registered in this interpreter; register it with "
                            "bindery_cast::register_class (or the facade's class builder) in the "
                            "module's exec slot"), message

# Module-local classes: same type key, each module its own type, invisible to the other.
sa, sb = a.make_secret("from a"), b.Secret("from b")
assert type(sa) is a.Secret and type(sb) is b.Secret and a.Secret is not b.Secret
assert a.reveal(sa) == "from a" and b.reveal(sb) == "from b"
message = raises(TypeError, b.reveal, sa)
assert message == "cannot convert Python 'bindery_example_cast_a.Secret' to Rust 'bindery_example_cast_common::Secret'", message
raises(TypeError, a.reveal, sb)

# GC-path lookup: no allocation, None for anything that is not a Point.
assert b.gc_peek(p) == (6.0, 8.0) and b.gc_peek(c) is None and b.gc_peek(1.5) is None
"#;

#[test]
fn classes_made_by_one_module_are_cast_by_another() {
    script(&format!("{CROSS_MODULE}\nprint('cross-module ok')")).check();
}

#[test]
fn python_subclasses_cast_as_the_rust_type() {
    script(
        r#"
        import gc
        import bindery_example_cast_a as a, bindery_example_cast_b as b

        class Sub(a.Point):
            def describe(self):
                return f"Sub at {b.coords(self)}"

        class SubSub(Sub):
            pass

        s = SubSub(3, 4)
        assert isinstance(s, a.Point) and type(s) is SubSub
        assert b.norm(s) == 5.0
        b.scale(s, 0.5)
        assert s.describe() == "Sub at (1.5, 2.0)"
        s.extra = "instance dict"                   # subclasses get a __dict__
        assert b.sum_norms([s, a.Point(0, 1)]) == 3.5
        assert b.gc_peek(s) == (1.5, 2.0)

        class Mixin:
            def twice(self):
                return 2 * b.increment(self)
        class MultiBase(Mixin, a.Counter):          # the layout comes from Counter
            pass
        m = MultiBase(10)
        assert b.increment(m) == 11

        # Constructor arguments are cast too.
        try:
            SubSub("x", 1)
        except TypeError as e:
            assert str(e) == "item 0 of Python 'tuple' for Rust '(f64, f64)': cannot convert Python 'str' to Rust 'f64'", e
        else:
            raise AssertionError("a str was taken for a float")
        try:
            a.Point(1, 2, 3)
        except ValueError as e:
            assert str(e) == "expected a sequence of length 2 for Rust '(f64, f64)', got 3", e
        else:
            raise AssertionError("three coordinates were accepted")

        # A finalizer that casts self still sees the value; a cycle through a subclass
        # instance is collected and its Rust value dropped.
        seen = []
        class Finalized(a.Point):
            def __del__(self):
                seen.append(b.norm(self))
        f = Finalized(6, 8)
        f.me = f
        del f
        gc.collect()
        assert seen == [10.0], seen

        # Left for the interpreter's last collection.
        keep = Sub(1, 1)
        keep.cycle = keep
        print("subclasses ok")
        "#,
    )
    .reruns(2)
    .check();
}

#[test]
fn a_conflicting_borrow_is_a_runtime_error_not_an_alias() {
    script(
        r#"
        import bindery_example_cast_a as a, bindery_example_cast_b as b
        COUNTER = "bindery_example_cast_common::Counter"
        POINT = "bindery_example_cast_common::Point"
        c = a.Counter(0)

        # &mut held by b.with_counter_mut while the callback asks for &mut and & again.
        for again, wanted, held in [
            (lambda: b.increment(c), "&mut ", "borrowed"),
            (lambda: a.history(c), "&", "mutably borrowed"),
        ]:
            try:
                b.with_counter_mut(c, again)
            except RuntimeError as e:
                expected = (f"cannot borrow Python 'bindery_example_cast_a.Counter' as Rust "
                            f"'{wanted}{COUNTER}': it is already {held} (by a call that is "
                            f"still running, e.g. one that called back into Python)")
                assert str(e) == expected, (str(e), expected)
            else:
                raise AssertionError("a conflicting borrow was granted")
        # Nothing was changed by the refused calls; the borrow is released afterwards.
        assert a.history(c) == ["created at 0", "lent mutably", "lent mutably"], a.history(c)
        assert b.increment(c) == 1

        # Shared borrows coexist; a mutable one is refused while they last.
        p = a.Point(3, 4)
        assert b.with_point_ref(p, lambda: b.norm(p) + a.norm(p)) == 10.0
        assert b.with_point_ref(p, lambda: b.coords(p)) == (3.0, 4.0)
        try:
            b.with_point_ref(p, lambda: b.scale(p, 2))
        except RuntimeError as e:
            assert f"as Rust '&mut {POINT}': it is already borrowed" in str(e), e
        else:
            raise AssertionError("&mut granted while & was held")
        b.scale(p, 2)
        assert b.coords(p) == (6.0, 8.0)
        print("borrows ok")
        "#,
    )
    .check();
}

fn subinterpreter_script(own_gil: bool) -> String {
    format!(
        r#"
import bindery_example_cast_a as a, bindery_example_cast_b as b
main_point_type = id(a.Point)
body = {body:?} + "\nassert a.interpreter_id() != 0\nprint('sub ok')\n"
run_in_subinterpreter(body, own_gil={own_gil})
run_in_subinterpreter(body, own_gil={own_gil})
# The main interpreter's registry is untouched by the subinterpreters.
exec({body:?})
assert id(a.Point) == main_point_type
print("subinterpreters ok")
"#,
        body = CROSS_MODULE,
        own_gil = if own_gil { "True" } else { "False" },
    )
}

#[test]
fn cross_module_casts_work_in_shared_gil_subinterpreters() {
    script(&subinterpreter_script(false)).check();
}

#[test]
fn cross_module_casts_work_in_own_gil_subinterpreters() {
    if !requires_python(3, 12, "own-GIL subinterpreters") {
        return;
    }
    script(&subinterpreter_script(true)).check();
}

#[test]
fn builtin_conversions_round_trip_on_this_python() {
    script(
        r#"
        import math, os, pathlib, collections
        import bindery_example_cast_b as b
        echo = b.echo
        cases = [
            ("i8", [-128, 127, 0]), ("i16", [-2**15, 2**15 - 1]), ("i32", [-2**31, 2**31 - 1]),
            ("i64", [-2**63, 2**63 - 1, 0, -1, 2**30 - 1, 2**30, -(2**30 - 1), -2**30, 2**60]),
            ("u16", [0, 1, 2**15]), ("isize", [-2**63, 2**63 - 1]),
            ("i128", [-2**127, 2**127 - 1, 2**64, -2**64 - 1]),
            ("u8", [0, 255]), ("u16", [2**16 - 1]), ("u32", [2**32 - 1]), ("u64", [2**64 - 1, 2**63]),
            ("usize", [2**64 - 1]), ("u128", [2**128 - 1, 2**64]),
            ("f64", [0.5, -0.0, 1e308, 5e-324, math.inf, -math.inf]), ("f32", [0.5, 2.0 ** 100, -0.25]),
            ("bool", [True, False]),
            ("String", ["", "ascii", "héllo", "日本語", "🦀", "a\0b"]),
            ("&str", ["", "borrowed", "ünï"]), ("char", ["x", "é", "🦀"]),
            ("Vec<u8>", [b"", b"\x00\xff"]), ("&[u8]", [b"bytes"]),
            ("()", [None]), ("Option<i64>", [None, 5]),
            ("Vec<f64>", [[], [1.5, -2.0]]), ("Vec<i64>", [[1, 2, 3]]),
            ("Vec<String>", [["a", "b"]]), ("Vec<Vec<i64>>", [[[1], [], [2, 3]]]),
            ("SmallVec<[i64; 4]>", [[1, 2, 3, 4, 5, 6]]), ("[f64; 3]", [[1.0, 2.0, 3.0]]),
            ("(i64, String, f64)", [(1, "a", 2.5)]),
            ("tuple12", [(1, 2, 3, 4, 5, 6, 7, 8, 9.0, 10.0, "k", "l")]),
            ("HashMap<String, i64>", [{}, {"a": 1, "b": -2}]),
            ("BTreeMap<i64, Vec<String>>", [{1: ["x"], 2: []}]),
            ("HashSet<i64>", [set(), {1, 2, 3}]), ("BTreeSet<String>", [{"a", "b"}]),
        ]
        for kind, values in cases:
            for value in values:
                back = echo(kind, value)
                assert back == value and type(back) is type(value), (kind, value, back)
        assert math.isnan(echo("f64", math.nan))
        assert math.copysign(1, echo("f64", -0.0)) == -1
        # Accepted conversions, as CPython's own parameters accept them.
        assert echo("i64", True) == 1 and echo("f64", 3) == 3.0
        class Index:
            def __index__(self): return 7
        assert echo("u8", Index()) == 7
        assert echo("Vec<f64>", (1, 2.5)) == [1.0, 2.5] and echo("Vec<i64>", range(3)) == [0, 1, 2]
        assert echo("Vec<u8>", bytearray(b"ab")) == b"ab" and echo("Vec<u8>", [1, 2]) == b"\x01\x02"
        assert echo("(i64, String, f64)", [1, "x", 2]) == (1, "x", 2.0)
        assert echo("HashSet<i64>", frozenset([4])) == {4}
        assert echo("BTreeMap<i64, Vec<String>>", collections.OrderedDict([(2, []), (1, ["a"])])) == {1: ["a"], 2: []}
        assert echo("PathBuf", pathlib.Path("/usr") / "lib") == "/usr/lib"
        assert echo("PathBuf", b"/raw/\xff") == os.fsdecode(b"/raw/\xff")
        print("round trips ok")
        "#,
    )
    .check();
}

#[test]
fn builtin_refusals_have_the_right_class_and_message_on_this_python() {
    script(
        r#"
        import bindery_example_cast_b as b
        refusals = [
            ("i64", "1", TypeError, "cannot convert Python 'str' to Rust 'i64'"),
            ("i64", 1.0, TypeError, "cannot convert Python 'float' to Rust 'i64'"),
            ("u8", 256, OverflowError, "Python int 256 does not fit in Rust 'u8' (range 0..=255)"),
            ("u8", -1, OverflowError, "Python int -1 does not fit in Rust 'u8' (range 0..=255)"),
            ("i8", -129, OverflowError, "Python int -129 does not fit in Rust 'i8' (range -128..=127)"),
            ("u64", 2**64, OverflowError, "Python int 18446744073709551616 does not fit in Rust 'u64' (range 0..=18446744073709551615)"),
            ("i128", 2**127, OverflowError, f"Python int {2**127} does not fit in Rust 'i128' (range {-2**127}..={2**127 - 1})"),
            ("u128", -1, OverflowError, f"Python int -1 does not fit in Rust 'u128' (range 0..={2**128 - 1})"),
            ("f32", 1e300, OverflowError, "Python float 1e300 does not fit in Rust 'f32' (range -3.4028235e38..=3.4028235e38)"),
            ("f64", "1.0", TypeError, "cannot convert Python 'str' to Rust 'f64'"),
            ("bool", 1, TypeError, "cannot convert Python 'int' to Rust 'bool'"),
            ("String", b"x", TypeError, "cannot convert Python 'bytes' to Rust 'String'"),
            ("String", "ab\ud800", UnicodeError, "cannot convert Python 'str' to Rust 'String': it holds the lone surrogate U+D800 at index 2, which UTF-8 cannot encode (Rust text is always valid UTF-8)"),
            ("&str", "\udfff", UnicodeError, "cannot convert Python 'str' to Rust '&str': it holds the lone surrogate U+DFFF at index 0, which UTF-8 cannot encode (Rust text is always valid UTF-8)"),
            ("char", "ab", ValueError, "expected a str of length 1 for Rust 'char', got a str of length 2"),
            ("&[u8]", bytearray(b"x"), TypeError, "cannot convert Python 'bytearray' to Rust '&[u8]'"),
            ("()", 0, TypeError, "cannot convert Python 'int' to Rust '()'"),
            ("PathBuf", 42, TypeError, "cannot convert Python 'int' to Rust 'PathBuf'"),
            ("Vec<String>", "abc", TypeError, "cannot convert Python 'str' to Rust 'Vec<String>'"),
            ("Vec<i64>", {1, 2}, TypeError, "cannot convert Python 'set' to Rust 'Vec<i64>'"),
            ("Vec<f64>", [1.0, "x"], TypeError, "item 1 of Python 'list' for Rust 'Vec<f64>': cannot convert Python 'str' to Rust 'f64'"),
            ("Vec<u8>", [1, 300], OverflowError, "item 1 of Python 'list' for Rust 'Vec<u8>': Python int 300 does not fit in Rust 'u8' (range 0..=255)"),
            ("[f64; 3]", [1, 2, 3, 4, 5], ValueError, "expected a sequence of length 3 for Rust '[f64; 3]', got 5"),
            ("(i64, String, f64)", (1, "a"), ValueError, "expected a sequence of length 3 for Rust '(i64, String, f64)', got 2"),
            ("HashMap<String, i64>", {1: 2}, TypeError, "dict keys must be 'str' for Rust 'HashMap<String, i64>', got 'int'"),
            ("HashMap<String, i64>", {"a": "x"}, TypeError, "value for key 'a' of Python 'dict' for Rust 'HashMap<String, i64>': cannot convert Python 'str' to Rust 'i64'"),
            ("HashSet<i64>", [1], TypeError, "cannot convert Python 'list' to Rust 'HashSet<i64>'"),
        ]
        for kind, value, exc_class, message in refusals:
            try:
                b.echo(kind, value)
            except Exception as e:
                assert type(e) is exc_class, (kind, value, type(e), e)
                assert str(e) == message, (kind, value, str(e), message)
            else:
                raise AssertionError(f"{value!r} was accepted as {kind}")
        # An exception raised by Python code during the conversion passes through unchanged.
        class Bad:
            def __index__(self):
                raise KeyError("from __index__")
        try:
            b.echo("Vec<i64>", [1, Bad()])
        except KeyError as e:
            assert e.args == ("from __index__",), e.args
        else:
            raise AssertionError("the KeyError was lost")
        print("refusals ok")
        "#,
    )
    .check();
}

/// A cycle through a GC-tracked registered class (`Node`, whose value holds one Python
/// object): its `tp_traverse` and `tp_clear` find the value with `try_borrow_in_gc`, which
/// must work and allocate nothing, in an ordinary collection and in the interpreter's last
/// one, after the state dict (where one cycle is stored) was cleared.
#[test]
fn gc_lookups_find_values_without_allocating_also_in_the_last_collection() {
    let outcome = script(
        r#"
        import ctypes, gc
        import bindery_example_cast_a as a

        n = a.Node("collected by gc.collect")
        a.set_child(n, n)
        del n
        assert gc.collect() >= 1
        ok, failed, allocations = a.node_stats()
        assert ok > 0 and failed == 0 and allocations == 0, a.node_stats()

        # A subclass instance in a cycle through its __dict__ and the Rust value.
        class Sub(a.Node):
            pass
        s = Sub("subclass")
        s.me = s
        a.set_child(s, [s])
        del s
        gc.collect()
        assert a.node_stats()[1:] == (0, 0), a.node_stats()

        # A cycle only the interpreter's last collection can free: held by the state dict,
        # which is cleared before that collection.
        get = ctypes.pythonapi.PyInterpreterState_Get
        get.restype = ctypes.c_void_p
        get_dict = ctypes.pythonapi.PyInterpreterState_GetDict
        get_dict.restype = ctypes.py_object
        get_dict.argtypes = [ctypes.c_void_p]
        last = a.Node("in the state dict")
        a.set_child(last, last)
        get_dict(get())["bindery-cast-test-node"] = last
        del last
        # And one left in __main__.
        main = a.Node("in __main__")
        a.set_child(main, main)
        print("exiting")
        "#,
    )
    .reruns(2)
    .check();
    let stderr = &outcome.stderr;
    assert!(!stderr.contains("GC lookup failed"), "{stderr}");
    assert!(!stderr.contains("a GC lookup allocated"), "{stderr}");
    // Collected in the interpreter's last collection (the state dict was cleared before).
    assert!(
        stderr.contains("dropped node 'in the state dict'"),
        "{stderr}"
    );
    assert!(stderr.contains("dropped node 'in __main__'"), "{stderr}");
    assert!(
        stderr.contains("dropped node 'collected by gc.collect'"),
        "{stderr}"
    );
    assert!(stderr.contains("dropped node 'subclass'"), "{stderr}");
    println!("{stderr}");
}

/// Run in a subinterpreter by the next test.
const NODES_IN_SUBINTERPRETER: &str = r#"
import ctypes, gc
import bindery_example_cast_a as a
n = a.Node("sub: collected by gc.collect")
a.set_child(n, n)
del n
gc.collect()
assert a.node_stats()[1:] == (0, 0), a.node_stats()
get = ctypes.pythonapi.PyInterpreterState_Get
get.restype = ctypes.c_void_p
get_dict = ctypes.pythonapi.PyInterpreterState_GetDict
get_dict.restype = ctypes.py_object
get_dict.argtypes = [ctypes.c_void_p]
last = a.Node("sub: in the state dict")
a.set_child(last, last)
get_dict(get())["bindery-cast-test-node"] = last
del last
"#;

/// The same in a (shared-GIL) subinterpreter: its last collection, after its state dict was
/// cleared, still finds every value without allocating.
#[test]
fn gc_lookups_work_in_a_subinterpreters_last_collection() {
    let outcome = script(&format!(
        "run_in_subinterpreter({NODES_IN_SUBINTERPRETER:?})\nprint('subinterpreter destroyed')\n"
    ))
    .check();
    let stderr = &outcome.stderr;
    assert!(
        outcome.stdout.contains("subinterpreter destroyed"),
        "{}",
        outcome.stdout
    );
    assert!(!stderr.contains("GC lookup failed"), "{stderr}");
    assert!(!stderr.contains("a GC lookup allocated"), "{stderr}");
    assert!(
        stderr.contains("dropped node 'sub: collected by gc.collect'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dropped node 'sub: in the state dict'"),
        "{stderr}"
    );
}
