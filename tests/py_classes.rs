//! Interpreter-level tests of the facade's classes: construction, methods, properties,
//! protocols, subclassing, weak references, errors and panics, and instances shared by two
//! separately built modules, in the main interpreter and in subinterpreters.

use bindery_testkit::{Extension, Script, requires_python};

mod common;

/// A script with both class modules staged and the shared `expect` helper defined.
fn classes(code: &str) -> Script {
    Script::new(code)
        .prelude(common::EXPECT)
        .extension(Extension::new("bindery-example-classes"))
        .extension(Extension::new("bindery-example-classes-user"))
        .with_subinterpreter_helpers()
}

#[test]
fn construct_call_methods_and_properties() {
    classes(
        r#"
        import inspect
        from bindery_example_classes import Point, Counter
        p = Point(3.0, 4.0)
        assert (p.x, p.y) == (3.0, 4.0) and p.norm() == 5.0
        assert Point(1.0).y == 0.0 and Point(x=1.0, y=2.0).y == 2.0
        p.x = 6.0
        assert p.x == 6.0 and repr(p) == "Point(6, 4)"
        p.scale(0.5)
        assert (p.x, p.y) == (3.0, 2.0)
        q = p.moved(1.0)
        assert (q.x, q.y) == (4.0, 2.0) and q is not p and (p.x, p.y) == (3.0, 2.0)
        assert p.moved(dx=0.0, dy=1.0) == Point(3.0, 3.0)
        assert Point.origin() == Point(0.0, 0.0) and Point(0.0, 0.0).origin() == Point(0.0, 0.0)
        assert Point(1.0, 2.0) == Point(1.0, 2.0) and Point(1.0, 2.0) != Point(2.0, 1.0)
        assert (Point(1.0) == "x") is False
        assert hash(Point(1.0, 2.0)) == hash(Point(1.0, 2.0))
        assert len({Point(1.0, 2.0), Point(1.0, 2.0), Point(0.0)}) == 2
        assert Point.__doc__ == "A point in the plane."
        assert Point.__module__ == "bindery_example_classes" and Point.__name__ == "Point"
        assert str(inspect.signature(Point.moved)) == "(self, /, dx, dy=0.0)" or "dx" in str(inspect.signature(Point.moved))
        assert Point.norm.__doc__ == "Distance from the origin."
        assert str(inspect.signature(Point.norm)) == "(self, /)"

        c = Counter("clicks")
        assert c.label == "clicks" and c.value == 0 and len(c) == 0
        assert c.increment() == 1 and c.increment(by=5) == 6 and c.value == 6
        assert len(c) == 2 and c[0] == 1 and c[1] == 6
        assert repr(c) == "Counter(\"clicks\", value=6)"
        assert Counter().label == "counter"
        "#,
    )
    .check();
}

#[test]
fn errors_and_panics_in_methods_are_exceptions() {
    classes(
        r#"
        from bindery_example_classes import Point, Counter
        c = Counter()
        expect(ValueError, "increment() by must be >= 0", c.increment, -1)
        expect(TypeError, "increment() argument 'by'", c.increment, "x")
        expect(TypeError, "increment() got an unexpected keyword argument 'step'", c.increment, step=1)
        expect(TypeError, "explode() takes no arguments (1 given)", c.explode, 1)
        expect(TypeError, "explode() takes no keyword arguments", c.explode, now=True)
        expect(TypeError, "norm() takes no arguments (1 given)", Point(1.0).norm, 2.0)
        expect(IndexError, "history index out of range", lambda: c[5])
        expect(TypeError, "Point() argument 'x'" if False else "argument 'x'", Point, "a")
        expect(TypeError, "missing required argument 'x'", Point)
        expect(AttributeError, "", setattr, c, "value", 3)  # read-only property
        expect(TypeError, "property value", setattr, Point(1.0), "x", "no")
        try:
            c.explode()
        except Exception:
            raise AssertionError("a panic was swallowed by except Exception")
        except BaseException as e:
            assert type(e).__name__ == "PanicException" and "counter exploded" in str(e)
        assert c.increment() == 1  # the object and the interpreter go on
        "#,
    )
    .check();
}

#[test]
fn python_subclasses_and_weak_references() {
    classes(
        r#"
        import weakref, gc
        from bindery_example_classes import Point
        class Named(Point):
            # As for int or tuple, the constructor's arguments go to __new__.
            def __new__(cls, x, y, name):
                self = super().__new__(cls, x, y)
                self.name = name
                return self
            def describe(self):
                return f"{self.name} at {self.norm()}"
        n = Named(3.0, 4.0, "p")
        assert isinstance(n, Point) and n.describe() == "p at 5.0" and n.x == 3.0
        n.scale(2.0)
        assert n.norm() == 10.0
        r = weakref.ref(n)
        assert r() is n
        del n
        gc.collect()
        assert r() is None
        p = Point(1.0)
        w = weakref.ref(p)
        del p
        assert w() is None
        "#,
    )
    .check();
}

#[test]
fn calling_a_class_keeps_type_call_rules() {
    // `Point(x, y)` takes the class's own tp_vectorcall; keywords, subclasses and a
    // replaced __init__ or __new__ must behave exactly as through type.__call__.
    classes(
        r#"
        from bindery_example_classes import Point
        assert type(Point(1.0, 2.0)) is Point and Point(1.0, 2.0).y == 2.0
        assert Point(1.0, y=2.0).y == 2.0 and Point(*[1.0], **{"y": 5.0}).y == 5.0
        expect(TypeError, "argument 'x'", Point, "a", 1.0)
        expect(TypeError, "argument 'y'", Point, 1.0, "b")
        expect(TypeError, "takes 2 positional arguments but 3 were given", Point, 1.0, 2.0, 3.0)
        expect(TypeError, "got an unexpected keyword argument 'z'", Point, 1.0, z=2.0)

        class Tagged(Point):  # no tp_vectorcall of its own: type.__call__, then __init__
            def __init__(self, x, y=0.0, tag="t"):
                self.tag = tag
        t = Tagged(1.0, 2.0)
        assert type(t) is Tagged and (t.x, t.y, t.tag) == (1.0, 2.0, "t")

        seen = []
        def init(self, *args, **kwargs):
            seen.append(args)
        Point.__init__ = init  # a replaced __init__ runs on every call
        assert Point(1.0, 2.0).x == 1.0 and seen == [(1.0, 2.0)]
        del Point.__init__  # back to object.__init__
        assert Point(3.0, 4.0).norm() == 5.0 and seen == [(1.0, 2.0)]

        Point.__new__ = staticmethod(lambda cls, *args: ("made", args))
        assert Point(1.0, 2.0) == ("made", (1.0, 2.0))
        "#,
    )
    .check();
}

#[test]
fn c_callers_may_pass_no_argument_array() {
    // CPython calls a callable without arguments with a NULL argument array
    // (PyObject_CallNoArgs: defaultdict's factory, copy, pickle): functions, static methods
    // and classes must accept it.
    classes(
        r#"
        import collections
        from bindery_example_classes import Point, Counter
        d = collections.defaultdict(Point.origin)  # a static method without parameters
        assert d["a"] == Point(0.0, 0.0)
        c = collections.defaultdict(Counter)  # a constructor with a default
        assert c["b"].label == "counter"
        "#,
    )
    .check();
}

#[test]
fn another_module_takes_and_returns_instances() {
    classes(
        r#"
        import bindery_example_classes as a, bindery_example_classes_user as b
        p = a.Point(3.0, 4.0)
        assert b.norm(p) == 5.0
        m = b.mirror(p)
        assert type(m) is a.Point and (m.x, m.y) == (-3.0, -4.0)
        assert a.midpoint(p, m) == a.Point(0.0, 0.0)
        try:
            b.norm(a.Counter())
        except TypeError as e:
            assert "norm() argument 'p'" in str(e), e
        else:
            raise AssertionError("a Counter passed as a Point")
        "#,
    )
    .check();
}

#[test]
fn functions_borrow_the_callers_instances() {
    // InstanceRef<T> / InstanceMut<T> parameters: the caller's object itself, no clone,
    // under the run-time borrow rules; also from a separately built module.
    classes(
        r#"
        import sys, gc
        import bindery_example_classes as a, bindery_example_classes_user as b
        p, q = a.Point(1.0, 2.0), a.Point(3.0, 4.0)
        a.swap(p, q)
        assert (p.x, p.y, q.x, q.y) == (3.0, 4.0, 1.0, 2.0)
        b.nudge(p, 0.5)
        assert p.x == 3.5, "the other module changed the caller's Point"
        class Sub(a.Point):
            pass
        s = Sub(0.0, 0.0)
        b.nudge(s, 1.0)
        assert s.x == 1.0 and b.norm(s) == 1.0
        try:
            a.swap(p, p)  # two exclusive borrows of one object
        except RuntimeError as e:
            assert "borrowed" in str(e), e
        else:
            raise AssertionError("the same Point was borrowed mutably twice")
        a.swap(p, q)  # the failed call released its first borrow
        assert (p.x, q.x) == (1.0, 3.5)
        try:
            b.nudge(p, "far")  # the borrow is taken, then the second argument fails
        except TypeError as e:
            assert "nudge() argument 'dx'" in str(e), e
        else:
            raise AssertionError("a str accepted as a float")
        b.nudge(p, 1.0)
        assert p.x == 2.0
        # No reference is leaked or lost: the count is back after many calls.
        before = sys.getrefcount(p)
        for _ in range(1000):
            b.norm(p); b.nudge(p, 0.0); a.swap(p, q); a.swap(p, q)
        assert sys.getrefcount(p) == before and p.x == 2.0
        "#,
    )
    .check();
}

const IN_SUBINTERPRETER: &str = r#"
import bindery_example_classes as a, bindery_example_classes_user as b
p = a.Point(3.0, 4.0)
assert b.norm(p) == 5.0 and type(b.mirror(p)) is a.Point
c = a.Counter("sub")
c.increment(by=2)
assert c.value == 2 and len(c) == 1
"#;

#[test]
fn classes_work_in_subinterpreters() {
    let own = if requires_python(3, 12, "own-GIL subinterpreters") {
        "True"
    } else {
        "False"
    };
    classes(&format!(
        "import bindery_example_classes as a\nrun_in_subinterpreter({IN_SUBINTERPRETER:?})\nrun_in_subinterpreter({IN_SUBINTERPRETER:?}, own_gil={own})\nassert a.Point(1.0).x == 1.0\n"
    ))
    .reruns(2)
    .check();
}

#[test]
fn a_method_refuses_an_instance_of_another_class() {
    // Methods, slots and properties read their instance without a registry lookup: CPython
    // must have checked its type first, whichever way they are reached.
    classes(
        r#"
        from bindery_example_classes import Point, Counter
        x = Point.__dict__["x"]
        calls = (
            lambda: Point.norm(Counter()),
            lambda: Counter.increment(Point(1.0)),
            lambda: Point.__repr__(Counter()),
            lambda: Point.__hash__(Counter()),
            lambda: Point.__eq__(Counter(), Point(1.0)),
            lambda: Counter.__len__(Point(1.0)),
            lambda: Counter.__getitem__(Point(1.0), 0),
            lambda: x.__get__(Counter()),
            lambda: x.__set__(Counter(), 2.0),
            lambda: Counter.__dict__["value"].__get__(Point(1.0)),
        )
        for call in calls:
            try:
                call()
            except TypeError as e:
                assert "doesn't apply" in str(e) or "descriptor" in str(e), e
            else:
                raise AssertionError("a method accepted an instance of another class")
        "#,
    )
    .check();
}
