"""What is measured: correctness checks, timed calls, garbage collection, memory.

Every module of the comparison must pass check_module() before it is timed, so that a
module cannot win by doing less. Timed statements run through timeit with their names
bound as locals of the timing loop (as `python -m timeit -s` does).
"""

import gc
import json
import subprocess
import time
import timeit
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

FLOATS = [i * 0.5 for i in range(1000)]
N_GC = 100_000  # Nodes per gc.collect() sample (in 2-cycles)
N_MEMORY = 500_000  # instances per memory measurement


class CheckFailed(AssertionError):
    """A module returned a wrong result or accepted bad input."""


@dataclass
class Workload:
    key: str
    label: str  # as shown in tables
    stmt: str  # the timed statement
    env: Callable[[Any], Dict[str, Any]]  # names the statement uses, from the module
    unit: str = "ns"


WORKLOADS: List[Workload] = [
    Workload("add", "add(1, 2)", "f(1, 2)", lambda m: {"f": m.add}),
    Workload("six", "six(1, 2, 3, 4, 5, 6.5)", "f(1, 2, 3, 4, 5, 6.5)", lambda m: {"f": m.six}),
    Workload("sum_list", "sum_list(1000 floats)", "f(xs)",
             lambda m: {"f": m.sum_list, "xs": list(FLOATS)}),
    Workload("make_ints", "make_ints(1000)", "f(1000)", lambda m: {"f": m.make_ints}),
    Workload("construct_call", "Counter(1).incr()", "C(1).incr()", lambda m: {"C": m.Counter}),
    Workload("method", "counter.incr()", "c.incr()", lambda m: {"c": m.Counter(0)}),
    Workload("take_ref", "take_ref(counter)", "f(c)",
             lambda m: {"f": m.take_ref, "c": m.Counter(5)}),
    Workload("make_dict", "make_dict(100)", "f(100)", lambda m: {"f": m.make_dict}),
]
GC_KEY, GC_LABEL = "gc", "gc.collect(), 100k Nodes in cycles"


# ---- correctness --------------------------------------------------------------------------


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def _expect_raises(excs: Tuple[type, ...], fn: Callable, *args: Any) -> None:
    try:
        fn(*args)
    except excs:
        return
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        raise CheckFailed(f"{fn.__name__}{args!r} raised {type(e).__name__}, "
                          f"expected {'/'.join(x.__name__ for x in excs)}") from e
    raise CheckFailed(f"{fn.__name__}{args!r} did not raise")


def check_module(m: Any) -> int:
    """Asserts the shared Python API's behaviour; returns how many checks passed."""
    bad_int = (OverflowError, TypeError)  # C and PyO3 raise OverflowError, the C++ peers TypeError
    checks: List[Callable[[], None]] = [
        lambda: _expect(m.add(1, 2) == 3, "add(1, 2) == 3"),
        lambda: _expect(m.add(-5, 7) == 2, "add(-5, 7) == 2"),
        lambda: _expect(m.add(2**31 - 1, 2**31 - 1) == 2**32 - 2, "add() widens to 64 bits"),
        lambda: _expect_raises(bad_int, m.add, 2**40, 1),
        lambda: _expect_raises((TypeError,), m.add, "1", 2),
        lambda: _expect(m.six(1, 2, 3, 4, 5, 6.5) == 21.5, "six(1, 2, 3, 4, 5, 6.5) == 21.5"),
        lambda: _expect_raises(bad_int, m.six, -1, 2, 3, 4, 5, 6.0),
        lambda: _expect(m.sum_list(list(FLOATS)) == sum(FLOATS), "sum_list(1000 floats)"),
        lambda: _expect(m.sum_list([]) == 0.0, "sum_list([]) == 0.0"),
        lambda: _expect_raises((TypeError,), m.sum_list, ["x"]),
        lambda: _expect(m.make_ints(1000) == list(range(1000)), "make_ints(1000)"),
        lambda: _expect(m.make_ints(0) == [], "make_ints(0) == []"),
        lambda: _expect(m.make_dict(100) == {f"k{i}": i for i in range(100)}, "make_dict(100)"),
        lambda: _expect(m.Counter(41).incr() == 42, "Counter(41).incr() == 42"),
        lambda: _check_counter_state(m),
        lambda: _expect_raises((TypeError,), m.take_ref, object()),
        lambda: _check_node(m),
        lambda: _check_gc_cycles(m, 2000),
    ]
    for check in checks:
        check()
    return len(checks)


def _check_counter_state(m: Any) -> None:
    c = m.Counter(-3)
    for _ in range(5):
        c.incr()
    _expect(c.value == 2 and m.take_ref(c) == 2, "Counter keeps its state; take_ref reads it")


def _check_node(m: Any) -> None:
    a, b = m.Node(), m.Node()
    _expect(a.other is None, "Node().other is None")
    a.other = b
    _expect(a.other is b, "Node.other keeps the object it was given")
    marker = object()
    a.other = marker
    _expect(a.other is marker, "Node.other holds any Python object")


def _check_gc_cycles(m: Any, n: int) -> None:
    """n Nodes in 2-cycles, dropped: gc.collect() must free every one (weakref callbacks)."""
    freed = [0]

    def on_free(_ref: Any) -> None:
        freed[0] += 1

    gc.collect()
    gc.disable()
    try:
        refs = []
        for _ in range(n // 2):
            a, b = m.Node(), m.Node()
            a.other, b.other = b, a
            refs += [weakref.ref(a, on_free), weakref.ref(b, on_free)]
        del a, b
        _expect(freed[0] == 0, "Nodes in cycles must survive until the collector runs")
        gc.collect()
    finally:
        gc.enable()
    _expect(freed[0] == n, f"gc.collect() freed {freed[0]} of {n} Nodes in cycles")


# ---- timing -------------------------------------------------------------------------------


def make_timer(w: Workload, m: Any) -> timeit.Timer:
    env = w.env(m)
    setup = "; ".join(f"{name} = _env[{name!r}]" for name in env) or "pass"
    return timeit.Timer(w.stmt, setup=setup, globals={"_env": env})


def calibrate(timer: timeit.Timer, target_s: float) -> int:
    """Iterations so that one sample of `timer` lasts about target_s."""
    number = 1
    while True:
        t = timer.timeit(number)
        if t >= 0.02:
            return max(1, round(number * target_s / t))
        number *= 4


def sample_ns(timer: timeit.Timer, number: int) -> float:
    return timer.timeit(number) / number * 1e9


def loop_overhead_ns(number: int) -> float:
    """What timeit's own loop costs per iteration (included in every figure)."""
    return min(sample_ns(timeit.Timer("pass"), number) for _ in range(5))


def gc_sample_ms(m: Any, n: int = N_GC) -> float:
    """Builds n Nodes in 2-cycles, drops them, and times the gc.collect() that frees them."""
    node = m.Node
    gc.collect()
    gc.disable()
    try:
        probes = []
        for i in range(n // 2):
            a, b = node(), node()
            a.other, b.other = b, a
            if i % 500 == 0:
                probes.append(weakref.ref(a))
        a = b = None
        t0 = time.perf_counter_ns()
        found = gc.collect()
        elapsed = time.perf_counter_ns() - t0
    finally:
        gc.enable()
    _expect(found >= n, f"gc.collect() found {found} unreachable objects, expected >= {n}")
    _expect(all(p() is None for p in probes), "every sampled Node is freed by gc.collect()")
    return elapsed / 1e6


def gc_baseline_ms() -> float:
    """gc.collect() with nothing to free: the rest of the heap's share of every GC sample."""
    gc.collect()
    samples = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        gc.collect()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return min(samples)


# ---- memory -------------------------------------------------------------------------------

_MEMORY_SCRIPT = r"""
import gc, importlib, json, os, sys, tracemalloc
modules_dir, name, kind, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, modules_dir)
m = importlib.import_module(name)
make, args = (m.Counter, (7,)) if kind == "Counter" else (m.Node, ())
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

warm = [make(*args) for _ in range(1000)]  # first-use allocations happen before measuring
del warm
holder = [None] * n
gc.collect()
gc.disable()
r0 = rss()
for i in range(n):
    holder[i] = make(*args)
r1 = rss()
sizeof = sys.getsizeof(holder[0])
for i in range(n):
    holder[i] = None
gc.collect()
tracemalloc.start()
t0 = tracemalloc.get_traced_memory()[0]
for i in range(n):
    holder[i] = make(*args)
t1 = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
print(json.dumps({"rss": (r1 - r0) / n, "traced": (t1 - t0) / n, "sizeof": sizeof}))
"""


def memory_per_instance(python: str, modules_dir: Path, module: str, kind: str,
                        n: int = N_MEMORY) -> Dict[str, float]:
    """Bytes per instance of `kind`, measured in a fresh interpreter.

    rss: growth of the resident set over n live instances (everything: Python's allocator,
    malloc/new, rounding). traced: what tracemalloc sees (Python's allocators only, so a
    C++ object allocated with `new` does not show). sizeof: sys.getsizeof().
    """
    proc = subprocess.run([python, "-c", _MEMORY_SCRIPT, str(modules_dir), module, kind, str(n)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise CheckFailed(f"memory measurement of {module}.{kind} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)

