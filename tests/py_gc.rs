//! Interpreter-level tests of the facade's garbage-collector support, through
//! `examples/gc` (`ContainerOwnsPythonObjects`: `Class::gc_through_cast`,
//! `Class::default_constructor`, `Class::clear_method`): cycles through the Rust value are
//! found and collected, `clear()` releases after giving up its borrow, Python subclasses take
//! part, and an interpreter that exits with live cycles does so cleanly, every time; `Link`
//! (`Class::gc`, traverse reading the value in place) does the same. (The
//! shutdown suite, `gc-support/tests/py_shutdown.rs`, covers the harder moments of an
//! interpreter's end with the same module.)

use bindery_testkit::{Extension, Script};

mod common;

/// What every script here starts with: the modules it uses, `examples/gc` as `g`, and its
/// two classes as `C` and `L`.
const PRELUDE: &str = "
    import gc, sys, weakref
    import bindery_example_gc as g
    C = g.ContainerOwnsPythonObjects
    L = g.Link
";

/// A script with `examples/gc` staged, after [`PRELUDE`].
fn gc_module(code: &str) -> Script {
    Script::new(code)
        .prelude(PRELUDE)
        .extension(Extension::new("bindery-example-gc"))
}

#[test]
fn a_self_cycle_through_the_rust_value_is_collected() {
    gc_module(
        r#"
        base = g.live_containers()
        collected = []
        c = C()
        assert gc.is_tracked(c), "a GC class's instances are tracked"
        item = object()
        c.append(item); c.append(c)
        # tp_traverse reports what the Rust vector holds (and the heap type).
        referents = {id(x) for x in gc.get_referents(c)}
        assert {id(item), id(c), id(C)} <= referents, gc.get_referents(c)
        r = weakref.ref(c, lambda _r: collected.append("self-cycle"))
        del c
        assert r() is not None and collected == [], "a cycle outlives its last name"
        gc.collect()
        assert r() is None and collected == ["self-cycle"], collected
        assert g.live_containers() == base, "the Rust value was dropped exactly once"

        # Longer cycles, through a list and a dict, 100 of them: every weakref callback runs.
        count = [0]
        def seen(_r):
            count[0] += 1
        refs = []
        for i in range(100):
            a, b = C(), C()
            a.append(b); b.append([{"back": a}])
            refs += [weakref.ref(a, seen), weakref.ref(b, seen)]
        del a, b
        assert g.live_containers() == base + 200
        gc.collect()
        assert count[0] == 200, count[0]
        assert g.live_containers() == base
        print("ok")
        "#,
    )
    .check();
}

#[test]
fn clear_empties_releases_after_the_borrow_and_keeps_the_object_usable() {
    gc_module(
        r#"
        c = C()
        payload = object()
        before = sys.getrefcount(payload)
        for _ in range(3):
            c.append(payload)
        assert c.size() == 3 and sys.getrefcount(payload) == before + 3
        assert c.clear() is None
        assert c.size() == 0 and sys.getrefcount(payload) == before, "references released"
        c.append(1)
        assert c.size() == 1, "usable after clear"

        # A finalizer triggered by clear() uses the container: the borrow is already given up
        # (released under the borrow, this __del__ would get "already mutably borrowed").
        seen = []
        class UsesTheBox:
            def __del__(self):
                seen.append(c.size())
                c.append("added by __del__")
        c.append(UsesTheBox())
        c.clear()
        assert seen == [0] and c.size() == 1, (seen, c.size())

        # A cycle broken by clear() is freed without the collector.
        r = C(); r.append(r)
        w = weakref.ref(r)
        r.clear()
        del r
        assert w() is None

        # Errors name the method and the parameter.
        expect(TypeError, "clear() takes no arguments (1 given)", c.clear, 1)
        expect(TypeError, "append() missing required argument 'obj'", c.append)
        assert C.clear.__doc__.endswith("Release every object it holds.")
        print("ok")
        "#,
    )
    .prelude(common::EXPECT)
    .check();
}

#[test]
fn python_subclasses_take_part_in_cycles() {
    gc_module(
        r#"
        base = g.live_containers()
        class Sub(C):
            """A Python subclass: a __dict__ on top of the Rust value."""
        collected = []
        s = Sub()
        assert isinstance(s, C) and gc.is_tracked(s)
        s.append(s)       # through the Rust vector
        s.me = s          # and through the instance dict
        t = Sub(); t.partner = s; s.append(t)
        ws = weakref.ref(s, lambda _r: collected.append("s"))
        wt = weakref.ref(t, lambda _r: collected.append("t"))
        del s, t
        gc.collect()
        assert sorted(collected) == ["s", "t"], collected
        assert g.live_containers() == base

        # The default constructor: no arguments, unless a subclass's own __init__ takes them.
        def refused(call, name):
            try:
                call()
            except TypeError as e:
                assert str(e) == name + "() takes no arguments", str(e)
            else:
                raise AssertionError("arguments accepted")
        refused(lambda: C(1), "ContainerOwnsPythonObjects")
        refused(lambda: C(x=1), "ContainerOwnsPythonObjects")
        refused(lambda: Sub(1), "Sub")
        class WithInit(C):
            def __init__(self, label, *, first=None):
                self.label = label
                if first is not None:
                    self.append(first)
        w = WithInit("w", first=1)
        assert w.label == "w" and w.size() == 1
        w.append(w)
        ref = weakref.ref(w)
        del w
        gc.collect()
        assert ref() is None and g.live_containers() == base
        print("ok")
        "#,
    )
    .check();
}

#[test]
fn in_place_gc_support_collects_cycles_and_frees_long_chains() {
    // `Link` uses `Class::gc()`: tp_traverse reads the Rust value in place, no cast.
    gc_module(
        r#"
        base = g.live_links()
        a = L()
        assert gc.is_tracked(a) and not a.has_target()
        item = object()
        a.set(item)
        assert a.has_target() and id(item) in {id(x) for x in gc.get_referents(a)}
        a.set(None)
        assert not a.has_target()

        # A self-cycle and a 2-cycle through the Rust values: found and freed.
        collected = []
        b, c = L(), L()
        a.set(a); b.set(c); c.set(b)
        refs = [weakref.ref(x, lambda _r: collected.append(1)) for x in (a, b, c)]
        del a, b, c
        assert len(collected) == 0, "cycles outlive their last names"
        gc.collect()
        assert len(collected) == 3 and all(r() is None for r in refs)
        assert g.live_links() == base, "every Rust value dropped exactly once"

        # A cycle through a Python subclass's __dict__ and the Rust value.
        class Named(L):
            pass
        n = Named(); n.me = n; n.set(n)
        w = weakref.ref(n)
        del n
        gc.collect()
        assert w() is None and g.live_links() == base

        # A chain of 200k links dropped at once frees with a flat stack.
        head = L()
        for _ in range(200_000):
            nxt = L(); nxt.set(head); head = nxt
        assert g.live_links() == base + 200_001
        del head, nxt
        assert g.live_links() == base, g.live_links()
        print("ok")
        "#,
    )
    .forbid_output("Traceback")
    .check();
}

#[test]
fn the_interpreter_exits_cleanly_with_live_cycles() {
    // Left for shutdown: a self-cycle, a subclass cycle, a ring, a cycle through a list, each
    // with GC checkers; weakref callbacks that write to file descriptor 1 even in the last
    // collection (the weak references are kept alive on purpose: a weak reference that dies
    // with its object never calls back).
    let outcome = gc_module(
        r#"
        import ctypes, os
        def announce(obj, label):
            # The callback is made with its own globals: one whose globals were __main__'s
            # would keep __main__'s dict, and every cycle in it, alive for ever.
            line = ("%s collected\n" % label).encode()
            callback = eval("lambda _r: write(1, line)", {"write": os.write, "line": line})
            ref = weakref.ref(obj, callback)
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(ref))

        c = C(); c.append(c)
        class Sub(C):
            pass
        s = Sub(); s.append(s); s.me = s
        ring = [C() for _ in range(5)]
        for a, b in zip(ring, ring[1:] + ring[:1]):
            a.append(b)
        listed = C(); listed.append([listed, {"again": listed}])
        for x in [c, s, listed] + ring:
            g.add_gc_checkers_with_weakrefs(x)
        announce(c, "self-cycle")
        announce(s, "subclass cycle")
        announce(ring[0], "ring")
        announce(listed, "list cycle")
        del ring, a, b, x
        print("exiting with", g.live_containers(), "containers", flush=True)
        "#,
    )
    .env("BINDERY_EXAMPLE_GC_REPORT_AT_EXIT", "1")
    .reruns(8)
    .forbid_output("Traceback")
    .forbid_output("Exception ignored")
    .forbid_output("Fatal Python error")
    .forbid_output("bindery gc checker")
    .check();
    assert_eq!(outcome.all_runs.len(), 8);
    for (run, output) in outcome.all_runs.iter().enumerate() {
        let said = |line: &str| output.stdout.lines().any(|l| l == line);
        for line in [
            "exiting with 8 containers",
            "self-cycle collected",
            "subclass cycle collected",
            "ring collected",
            "list cycle collected",
        ] {
            assert!(
                said(line),
                "run {}: no line {line:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                run + 1,
                output.stdout,
                output.stderr
            );
        }
        assert!(
            output
                .stderr
                .contains("bindery_example_gc: 0 containers alive after finalization"),
            "run {}: finalization did not free every container exactly once\n{}",
            run + 1,
            output.stderr
        );
    }
}
