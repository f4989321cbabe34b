#!/usr/bin/env python3
"""Side-by-side comparison of extension modules written with C, pybind11, nanobind, PyO3 and
bindery.

    benches/peers/run.sh                  # default python3: build all, measure, write results
    benches/peers/run.sh --python 3.12    # one chosen CPython (pyenv version or a path)
    benches/peers/run.sh --all            # every installed CPython 3.9-3.13, one after another
    benches/peers/run.sh --smoke          # fast self-check: C and bindery modules, checked, run once
    benches/peers/run.sh --only c,pyo3 --repeats 3    # a quick look; writes nothing

What a full run does, per interpreter:
  1. makes a venv under target/peers-venv/<version> and pip-installs what is missing there
     (pybind11, nanobind, maturin, matplotlib); the user's environment is untouched;
  2. in a worker process running that venv's Python: builds every module of
     toolkits.TOOLKITS from a clean state, one after the other (build time, stripped size);
  3. imports them all into that one process, checks each one's answers (workloads.check_module),
     then times each workload on each module, interleaved, the module order rotated on every
     repeat; times gc.collect() over 100k Nodes in cycles; measures memory per instance in
     fresh interpreters;
  4. prints the table and stores the run in benches/peers/results/cpython-<X.Y>.json.
Then the BENCHMARKS.md section between <!-- peers:begin --> and <!-- peers:end --> and the
chart benches/peers/peers.png are regenerated from every stored run.

Adding a module (bindery's is benches/peers/bindery, built by toolkits.build_bindery):
  - write the shared Python API (benches/peers/README.md) with it;
  - add a builder to toolkits.py: a function (env, module) -> Built that builds from a clean
    state into env.clean_work_dir(module), timing each command with run_step() -- for a
    cargo cdylib: maturin, or `cargo build --release` with CARGO_TARGET_DIR in that folder
    and PYO3_BUILD_EXTENSION_MODULE=1, then lib<name>.so copied to <module><EXT_SUFFIX>;
  - append a Toolkit(label, module, builder) line to TOOLKITS (with smoke_build= a builder
    that needs no PyPI package, if it should run in --smoke).
Every workload, check, table column and chart bar follows from that one line.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE / "results"
CHART = HERE / "peers.png"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
PIP_PACKAGES = ["pybind11", "nanobind", "maturin", "matplotlib"]
SUPPORTED = [(3, 9), (3, 10), (3, 11), (3, 12), (3, 13)]


def die(msg: str) -> "None":
    print(f"compare.py: {msg}", file=sys.stderr)
    sys.exit(2)


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- choosing interpreters ------------------------------------------------------------------


def pyenv_root() -> Path:
    try:
        out = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, check=True).stdout.strip()
        return Path(out)
    except (OSError, subprocess.CalledProcessError):
        return Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def interpreter_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return out.strip()


def installed_pythons() -> Dict[str, str]:
    """minor version -> interpreter, the newest patch release of each supported minor."""
    found: Dict[str, str] = {}
    for exe in sorted(glob.glob(str(pyenv_root() / "versions" / "3.*" / "bin" / "python3"))):
        ver = Path(exe).parent.parent.name
        parts = ver.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            continue  # skips free-threaded, dev and virtualenv folders
        minor = tuple(int(p) for p in parts[:2])
        if minor in SUPPORTED:
            key = ".".join(parts[:2])
            if key not in found or tuple(map(int, Path(found[key]).parent.parent.name.split("."))) \
                    < tuple(map(int, parts)):
                found[key] = exe
    return found


def default_python() -> str:
    exe = shutil.which("python3")
    if exe is None:
        die("no python3 on PATH; pass --python")
    # Resolve pyenv shims and venvs to the real interpreter.
    out = subprocess.run([exe, "-c", "import sys; print(getattr(sys, '_base_executable', '') "
                          "if sys.prefix != sys.base_prefix else sys.executable)"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    return out or exe


def choose_pythons(args: argparse.Namespace) -> List[str]:
    if args.all:
        found = installed_pythons()
        if not found:
            die(f"no CPython 3.9-3.13 under {pyenv_root()}/versions")
        return [found[k] for k in sorted(found, key=lambda v: tuple(map(int, v.split("."))))]
    if args.python:
        if os.sep in args.python:
            return [args.python]
        found = installed_pythons()
        wanted = ".".join(args.python.split(".")[:2])
        if wanted not in {f"{a}.{b}" for a, b in SUPPORTED}:
            die(f"--python {args.python}: bindery supports CPython 3.9 to 3.13")
        if wanted in found and (args.python.count(".") == 1
                                or Path(found[wanted]).parent.parent.name == args.python):
            return [found[wanted]]
        exe = shutil.which("python" + wanted) if args.python.count(".") == 1 else None
        if exe and subprocess.run([exe, "-c", ""], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode == 0:
            return [exe]
        die(f"CPython {args.python} not found under {pyenv_root()}/versions nor on PATH "
            f"(installed: {', '.join(sorted(found, key=lambda v: tuple(map(int, v.split('.'))))) or 'none'})")
    return [default_python()]


# ---- the venv -------------------------------------------------------------------------------


def ensure_venv(python: str) -> str:
    """target/peers-venv/<version> with the PyPI packages the builds and the chart need."""
    version = interpreter_version(python)
    venv = ROOT / "target" / "peers-venv" / version
    vpy = venv / "bin" / "python"
    if not vpy.exists():
        log(f"== creating {venv.relative_to(ROOT)}")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    probe = ("import importlib.util, sys; "
             f"sys.exit(0 if all(importlib.util.find_spec(m) for m in {PIP_PACKAGES!r}) else 1)")
    if subprocess.run([str(vpy), "-c", probe]).returncode != 0:
        log(f"== pip install {' '.join(PIP_PACKAGES)} into {venv.relative_to(ROOT)}")
        subprocess.run([str(vpy), "-m", "pip", "install", "--quiet", *PIP_PACKAGES], check=True)
    return str(vpy)


# ---- the worker: runs inside the measured interpreter ---------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tool_version(cmd: List[str]) -> str:
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return out.stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "?"


def worker(args: argparse.Namespace) -> int:
    import importlib

    import toolkits
    import workloads as wl

    started = time.perf_counter()
    version = ".".join(map(str, sys.version_info[:3]))
    root = ROOT / "target" / "peers" / version
    env = toolkits.BuildEnv.for_this_interpreter(root)
    chosen = [t for t in toolkits.TOOLKITS if not args.only or t.key in args.only]
    if args.smoke:  # the modules that build without PyPI packages: C and bindery's
        chosen = [t for t in chosen if t.smoke_build is not None]
        if not chosen:
            die("--smoke: none of the chosen toolkits builds without PyPI packages")
    log(f"== CPython {version} ({sys.executable}); {cpu_model()}, {os.cpu_count()} cores")

    shutil.rmtree(env.modules_dir, ignore_errors=True)
    built: Dict[str, Any] = {}
    for tk in chosen:
        log(f"-- building {tk.label} ({tk.module})")
        try:
            b = toolkits.build(tk, env, smoke=args.smoke)
        except (toolkits.BuildError, ImportError) as e:
            die(f"building {tk.label} failed: {e}")
        built[tk.label] = b
        log(f"   {b.version}: {b.wall_s:.1f} s wall, {b.cpu_s:.1f} s CPU, "
            f"{b.stripped_bytes / 1000:.0f} kB stripped")

    sys.path.insert(0, str(env.modules_dir))
    mods = {tk.label: importlib.import_module(tk.module) for tk in chosen}
    for label, m in mods.items():
        try:
            n = wl.check_module(m)
        except wl.CheckFailed as e:
            die(f"{label} gives a wrong answer, so it is not timed: {e}")
        log(f"-- {label}: {n} checks passed")
    labels = [tk.label for tk in chosen]

    if args.smoke:
        for tk in chosen:
            log(f"-- smoke: {tk.label}")
            smoke(mods[tk.label], tk.module, env, wl)
        log(f"peers smoke: {len(chosen)} modules checked and run ({', '.join(labels)})")
        return 0

    # Same iteration count for every module: calibrated on the baseline.
    base = mods[labels[0]]
    numbers = {w.key: wl.calibrate(wl.make_timer(w, base), args.target) for w in wl.WORKLOADS}
    timers = {(w.key, label): wl.make_timer(w, mods[label]) for w in wl.WORKLOADS
              for label in labels}
    for (key, _), t in timers.items():  # warm-up: first calls, caches, lazy type setup
        t.timeit(max(1, numbers[key] // 20))
    for label in labels:
        wl.gc_sample_ms(mods[label], wl.N_GC // 10)

    load_before = os.getloadavg()[0]
    samples: Dict[str, Dict[str, List[float]]] = {w.key: {x: [] for x in labels}
                                                  for w in wl.WORKLOADS}
    samples[wl.GC_KEY] = {x: [] for x in labels}
    for rep in range(args.repeats):
        order = labels[rep % len(labels):] + labels[:rep % len(labels)]
        log(f"-- repeat {rep + 1}/{args.repeats}, order {', '.join(order)}")
        for w in wl.WORKLOADS:
            for label in order:
                samples[w.key][label].append(wl.sample_ns(timers[(w.key, label)], numbers[w.key]))
        for label in order:
            samples[wl.GC_KEY][label].append(wl.gc_sample_ms(mods[label]))

    load_after = os.getloadavg()[0]
    log("-- memory per instance (fresh interpreters)")
    memory: Dict[str, Dict[str, Dict[str, float]]] = {"Counter": {}, "Node": {}}
    for kind in memory:
        for tk in chosen:
            runs = [wl.memory_per_instance(sys.executable, env.modules_dir, tk.module, kind)
                    for _ in range(3)]
            memory[kind][tk.label] = {k: sorted(r[k] for r in runs)[1] for k in runs[0]}

    timings: Dict[str, Any] = {
        w.key: {"label": w.label, "unit": w.unit, "number": numbers[w.key],
                "samples": samples[w.key]} for w in wl.WORKLOADS}
    timings[wl.GC_KEY] = {"label": wl.GC_LABEL, "unit": "ms", "number": 1,
                          "samples": samples[wl.GC_KEY]}
    result = {
        "python": version,
        "python_full": sys.version,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "compilers": {"g++": tool_version(["g++", "--version"]),
                      "rustc": tool_version(["rustc", "--version"])},
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": load_after,
        "target_s": args.target,
        "loop_ns": wl.loop_overhead_ns(numbers["add"]),
        "gc_baseline_ms": wl.gc_baseline_ms(),
        "toolkits": [{"label": tk.label, "module": tk.module,
                      "version": built[tk.label].version,
                      "build": toolkits.built_to_json(built[tk.label])} for tk in chosen],
        "timings": timings,
        "memory": memory,
        "elapsed_s": time.perf_counter() - started,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    import report

    report.print_table(result)
    log(f"\n== {version}: done in {result['elapsed_s']:.0f} s; results in {args.out}")
    return 0


def smoke(m: Any, module: str, env: Any, wl: Any) -> int:
    """Every workload once on one (already checked) module, each measurement checked: the
    harness works and the module runs every workload."""
    passed = 0
    for w in wl.WORKLOADS:
        ns = wl.sample_ns(wl.make_timer(w, m), 3)
        if not ns > 0:
            raise wl.CheckFailed(f"{w.label}: no time measured")
        log(f"   {w.label}: {ns:.0f} ns")
        passed += 1
    ms = wl.gc_sample_ms(m, 2000)
    log(f"   gc.collect() over 2000 Nodes in cycles: {ms:.2f} ms")
    passed += 1
    for kind in ("Counter", "Node"):
        mem = wl.memory_per_instance(sys.executable, env.modules_dir, module, kind, 20_000)
        if not (mem["rss"] > 0 and mem["sizeof"] > 0):
            raise wl.CheckFailed(f"memory per {kind} not measured: {mem}")
        log(f"   {kind}: {mem['rss']:.0f} B per instance (RSS), sizeof {mem['sizeof']}")
        passed += 1
    log(f"   {passed} passed, 0 failed")
    return passed


# ---- the report step: runs in a venv that has matplotlib ------------------------------------


def write_report() -> int:
    import report

    runs = report.load_results(RESULTS)
    if not runs:
        die(f"no results in {RESULTS}")
    chart: Optional[str] = None
    try:
        report.draw_chart(runs, CHART)
        chart = str(CHART.relative_to(ROOT))
        log(f"== chart: {chart}")
    except ImportError as e:
        log(f"== no chart ({e}); the table is written without it")
    report.replace_section(BENCHMARKS_MD, report.markdown_section(runs, chart))
    log(f"== {BENCHMARKS_MD.relative_to(ROOT)}: peers section rewritten from "
        f"{', '.join('CPython ' + r['python'] for r in runs)}")
    return 0


# ---- the orchestrator -----------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", help="a CPython version (3.12 or 3.12.1) or an interpreter path")
    p.add_argument("--all", action="store_true", help="every installed CPython 3.9-3.13")
    p.add_argument("--smoke", action="store_true",
                   help="the C and bindery modules (cargo, no venv), checked, each workload once")
    p.add_argument("--only", help="comma-separated toolkit keys (c, pybind11, nanobind, pyo3, bindery); "
                   "implies --no-write")
    p.add_argument("--repeats", type=int, default=12, help="samples per workload and module")
    p.add_argument("--target", type=float, default=0.08,
                   help="seconds per sample of the baseline module (sets the iteration counts)")
    p.add_argument("--no-write", action="store_true",
                   help="print only: no results file, BENCHMARKS.md or chart")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        args.only = [x.strip().lower() for x in args.only.split(",") if x.strip()]
        args.no_write = True
    sys.path.insert(0, str(HERE))
    if args.worker:
        return worker(args)
    if args.report:
        return write_report()
    if args.all and args.python:
        die("--all and --python exclude each other")
    if args.repeats < 1:
        die("--repeats must be at least 1")

    started = time.perf_counter()
    pythons = choose_pythons(args)
    me = [str(Path(__file__).resolve())]
    passthrough = ["--repeats", str(args.repeats), "--target", str(args.target)]
    if args.only:
        passthrough += ["--only", ",".join(args.only)]
    if args.smoke:
        for py in pythons:  # the C and bindery modules need no PyPI package: no venv
            out = ROOT / "target" / "peers" / "smoke.json"
            rc = subprocess.run([py, *me, "--worker", "--smoke", "--out", str(out)]).returncode
            if rc != 0:
                return rc
        return 0

    venv_python = ""
    for py in pythons:
        venv_python = ensure_venv(py)
        version = interpreter_version(py)
        out = ROOT / "target" / "peers" / version / "results.json"
        rc = subprocess.run([venv_python, *me, "--worker", "--out", str(out), *passthrough]
                            ).returncode
        if rc != 0:
            log(f"== CPython {version}: the worker failed (exit {rc})")
            return rc
        if not args.no_write:
            RESULTS.mkdir(exist_ok=True)
            minor = ".".join(version.split(".")[:2])
            shutil.copyfile(out, RESULTS / f"cpython-{minor}.json")
    if not args.no_write:
        rc = subprocess.run([venv_python, *me, "--report"]).returncode
        if rc != 0:
            return rc
    log(f"== all done in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
