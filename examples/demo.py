"""bindery demo: what the example extension modules show, in one run.

Run by scripts/demo.sh, which builds the modules like maturin does (release, no libpython
link) and puts them on PYTHONPATH. Every claim printed below is also asserted.
"""

import gc
import inspect
import os
import sys
import weakref

import bindery_example_minimal as minimal
import bindery_example_capsule_a as cap_a
import bindery_example_capsule_b as cap_b
import bindery_example_internals_a as int_a
import bindery_example_internals_b as int_b
import bindery_example_gc as gcx

if sys.version_info >= (3, 13):
    import _interpreters as _subinterpreters
else:
    import _xxsubinterpreters as _subinterpreters


def run_in_subinterpreter(code):
    """Create a (shared-GIL) subinterpreter, run code in it, destroy it."""
    code = "import sys\nsys.path[:] = %r\n%s" % (list(sys.path), code)
    if sys.version_info >= (3, 13):
        interp = _subinterpreters.create("legacy")
        try:
            failure = _subinterpreters.exec(interp, code)
        finally:
            _subinterpreters.destroy(interp)
        if failure is not None:
            raise RuntimeError(failure.formatted)
    else:
        interp = _subinterpreters.create(isolated=False) if sys.version_info >= (3, 12) else _subinterpreters.create()
        try:
            _subinterpreters.run_string(interp, code)
        finally:
            _subinterpreters.destroy(interp)


def announce(obj, label):
    """Writes '<label> freed' to file descriptor 1 when obj is collected, even in the
    interpreter's last collection, when sys.stdout is long gone. The weak reference is kept
    alive on purpose (one leaked reference: a weak reference that dies with its object never
    calls back), and its callback gets globals of its own: a function defined here would keep
    __main__'s dict, and every cycle in it, alive for ever."""
    import ctypes

    line = ("  at exit: %s freed\n" % label).encode()
    callback = eval("lambda _ref: write(1, line)", {"write": os.write, "line": line})
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(weakref.ref(obj, callback)))


def section(title):
    print()
    print(title)
    print("-" * len(title))


print("bindery demo on Python %d.%d.%d" % sys.version_info[:3])

section("0. a bindery module: typed functions, keywords, signatures, errors")
print("minimal.add(1, 2) =", minimal.add(1, 2), "  minimal.add(a=40, b=2) =", minimal.add(a=40, b=2))
print("minimal.sum_list([0.5] * 1000) =", minimal.sum_list([0.5] * 1000))
print("inspect.signature(minimal.add) =", inspect.signature(minimal.add))
try:
    minimal.add(1, "2")
except TypeError as error:
    print("minimal.add(1, '2') raises TypeError:", error)

section("1. bindery-capsule: two separately built modules find one capsule by key")
address, created = cap_a.get_or_create("demo.shared", "drop", "made-by-a")
again, created_again = cap_b.get_or_create("demo.shared", "drop", "ignored")
assert created and not created_again and address == again
print("module a created the value at 0x%x; module b found the same address" % address)
print("value read through module b:", cap_b.read("demo.shared"))
cap_a.state_dict()["demo.foreign"] = "not a capsule"
try:
    cap_b.get_or_create("demo.foreign", "drop", "x")
except TypeError as error:
    print("a foreign object under a key is refused, untouched:", str(error)[:90] + "...")

section("2. bindery-internals: one registry per interpreter, shared by compatible modules")
print("key:", int_a.internals_key())
assert int_a.internals_address() == int_b.internals_address()
assert int_a.local_internals_address() != int_b.local_internals_address()
print("shared internals at 0x%x in both modules; local internals differ" % int_a.internals_address())


class Point:
    pass


int_a.register_type("demo::Point", Point)
print("module a registered demo::Point; module b finds it, registered by:", int_b.lookup_type("demo::Point"))

run_in_subinterpreter(
    "import bindery_example_internals_a as a, bindery_example_internals_b as b\n"
    "assert a.internals_address() == b.internals_address()\n"
    "assert b.lookup_type('demo::Point') is None\n"
    "print('  in subinterpreter %d: its own internals at 0x%x, demo::Point not there'\n"
    "      % (a.interpreter_id(), a.internals_address()), flush=True)\n"
)
print("subinterpreters so far: %d interpreters served by module a" % int_a.interpreters_seen())

section("3. bindery-gc-support: Rust values that own Python objects take part in cycles")
Container = gcx.ContainerOwnsPythonObjects
base = gcx.live_containers()
freed = []
c = Container()
c.append(c)  # a cycle through a Rust Vec<Handle>
watch = weakref.ref(c, lambda _ref: freed.append(True))
del c
assert watch() is not None  # unreachable now, but only the cycle collector can free it
gc.collect()
assert freed == [True] and gcx.live_containers() == base
print("c = Container(); c.append(c); del c; gc.collect()  ->  freed (tp_traverse reports what")
print("the Rust vector holds, tp_clear empties it; both reach the value through a cast of self)")


class Node(Container):
    """Subclassable from Python, with a __dict__ on top of the Rust value."""


left_in_main = Node()
left_in_main.append(left_in_main)
left_in_main.me = left_in_main
gcx.add_gc_checkers_with_weakrefs(left_in_main)
announce(left_in_main, "the checked cycle left in __main__")
print("left for the exit: a Node self-cycle in __main__, with GC checkers attached (they end the")
print("process with status 86 if the internals die before it is collected)")

section("4. shutdown safety: internals survive the state dict being cleared")
before = int_a.internals_address()
int_a.clear_state_dict()  # what the interpreter does at exit, before its last GC
assert int_a.internals_address() == before
assert int_b.lookup_type("demo::Point") == "bindery_example_internals_a"
print("the capsule with the Drop policy from part 1 was dropped (line above, on stderr);")
print("the internals (Leak policy) were not: the same registry (0x%x) still answers" % before)
print("(a re-creation would instead be a fatal error naming the interpreter and the cause)")

ring = [Container() for _ in range(3)]
for a, b in zip(ring, ring[1:] + ring[:1]):
    a.append(b)
cap_a.state_dict()["bindery_demo_cycle"] = ring[0]
announce(ring[0], "the cycle in the state dict")
del ring, a, b
print("a 3-container cycle is now reachable from the interpreter state dict only: it is freed in")
print("the interpreter's last collection, after the dict is cleared, where tp_traverse still")
print("casts self through the internals (never freed, never re-created)")
if sys.version_info < (3, 10):
    print("(CPython 3.9's main interpreter runs no collection after clearing its state dict: there")
    print("that cycle is never traversed nor freed, and the report at exit counts its 3 containers)")

print()
print("demo finished; the interpreter now exits cleanly with %d containers in cycles"
      % (gcx.live_containers() - base))
print("(bindery_example_gc then reports on stderr how many containers outlived finalization)")
sys.stdout.flush()  # before the lines written while the interpreter finalizes
