#!/usr/bin/env python3
"""Instructions per operation, counted by valgrind's callgrind: repeatable on a noisy machine
where wall-clock ratios move by 10-20% from run to run.

    python3 benches/peers/callgrind.py                       # every workload, every built module
    python3 benches/peers/callgrind.py --workloads add,method --modules peer_c,peer_bindery
    python3 benches/peers/callgrind.py --annotate peer_bindery --workloads construct_call

Uses the modules the last run built for this interpreter (target/peers/<version>/modules;
run `benches/peers/run.sh` or `--smoke` first) and the timed statements of workloads.py.
For each (module, workload) it runs the statement in a loop of N and of 2N iterations, each
in a fresh interpreter under callgrind, and prints (Ir(2N) - Ir(N)) / N: the instructions of
one iteration, start-up and imports cancelled out. The empty loop (`pass`) is printed too;
subtract it for the operation alone. --annotate prints, per function, the instructions one
iteration spends in it (self cost, from callgrind_annotate: (2N run - N run) / N); self
costs, unlike inclusive ones, are not confused by the interpreter's recursion cycles.
"""

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import workloads as wl  # noqa: E402

_LOOP = r"""
import sys
sys.path.insert(0, sys.argv[1])
import importlib, timeit
import workloads as wl
name, key, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
if key == "pass":
    timer = timeit.Timer("pass")
else:
    m = importlib.import_module(name)
    w = next(w for w in wl.WORKLOADS if w.key == key)
    timer = wl.make_timer(w, m)
    timer.timeit(50)  # first calls: lazy type setup, caches
timer.timeit(n)
"""


def count(modules_dir: Path, module: str, key: str, n: int,
          out: Optional[Path] = None) -> int:
    """Total instructions (Ir) of one interpreter running the loop n times."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = out or Path(tmp) / "callgrind.out"
        # A fixed hash seed: dict and set layouts, hence lookups, are the same in every run.
        env = dict(os.environ, PYTHONPATH=str(HERE), PYTHONHASHSEED="0")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
             sys.executable, "-c", _LOOP, str(modules_dir), module, key, str(n)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind run failed for {module} {key}:\n{proc.stderr[-3000:]}")
        m = re.search(r"Collected : (\d+)", proc.stderr)
        if not m:
            raise RuntimeError(f"no instruction count in callgrind's output:\n{proc.stderr[-2000:]}")
        return int(m.group(1))


def per_iteration(modules_dir: Path, module: str, key: str, n: int) -> float:
    return (count(modules_dir, module, key, 2 * n) - count(modules_dir, module, key, n)) / n


def annotate(modules_dir: Path, module: str, key: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.out", Path(tmp) / "big.out"
        count(modules_dir, module, key, n, small)
        count(modules_dir, module, key, 2 * n, big)
        per_fn: List[Dict[str, int]] = []
        for f in (small, big):
            text = subprocess.run(["callgrind_annotate", "--threshold=100",
                                   str(f)], stdout=subprocess.PIPE, text=True,
                                  check=True).stdout
            costs: Dict[str, int] = {}
            for line in text.splitlines():
                mm = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)$", line)
                if mm:
                    costs[mm.group(2).strip()] = int(mm.group(1).replace(",", ""))
            per_fn.append(costs)
    rows = []
    for name, big_ir in per_fn[1].items():
        diff = (big_ir - per_fn[0].get(name, 0)) / n
        if diff >= 0.5:
            rows.append((diff, name))
    rows.sort(reverse=True)
    print(f"instructions per iteration in each function (self cost), {module} {key}:")
    for diff, name in rows[:60]:
        print(f"{diff:10.1f}  {name[:150]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", help="comma-separated module names (default: every built one)")
    p.add_argument("--workloads", help="comma-separated workload keys (default: the per-call ones)")
    p.add_argument("-n", type=int, default=20000, help="loop length N (the runs do N and 2N)")
    p.add_argument("--annotate", metavar="MODULE", help="per-function counts for one module")
    p.add_argument("--modules-dir", type=Path,
                   help="where the built modules are (default: target/peers/<version>/modules)")
    args = p.parse_args()
    version = ".".join(map(str, sys.version_info[:3]))
    modules_dir = args.modules_dir or ROOT / "target" / "peers" / version / "modules"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    built = sorted(f.name[:-len(suffix)] for f in modules_dir.glob("*" + suffix))
    if not built:
        print(f"no modules in {modules_dir}: run benches/peers/run.sh first", file=sys.stderr)
        return 2
    per_call = [w.key for w in wl.WORKLOADS if w.key not in ("sum_list", "make_ints", "make_dict")]
    keys = args.workloads.split(",") if args.workloads else per_call
    if args.annotate:
        for key in keys:
            annotate(modules_dir, args.annotate, key, args.n)
        return 0
    order = ["peer_c", "peer_pybind11", "peer_nanobind", "peer_pyo3", "peer_bindery"]
    mods = args.modules.split(",") if args.modules else [m for m in order if m in built]
    print(f"CPython {version}; instructions per iteration, (Ir(2N) - Ir(N)) / N, N = {args.n}")
    empty = per_iteration(modules_dir, mods[0], "pass", args.n)
    print(f"{'empty loop (pass)':28} {empty:8.1f}")
    print(f"{'workload':28} " + " ".join(f"{m[5:]:>10}" for m in mods))
    for key in keys:
        cells = [per_iteration(modules_dir, m, key, args.n) for m in mods]
        print(f"{key:28} " + " ".join(f"{c:10.1f}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
