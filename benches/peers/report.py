"""Turns results (one JSON file per Python version) into a terminal table, the peers
section of BENCHMARKS.md and a PNG chart."""

import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"


def stats(samples: List[float]) -> Dict[str, float]:
    return {"best": min(samples), "median": statistics.median(samples), "max": max(samples)}


def load_results(folder: Path) -> List[Dict[str, Any]]:
    """Every stored run, oldest Python first."""
    runs = [json.loads(p.read_text()) for p in folder.glob("cpython-*.json")]
    return sorted(runs, key=lambda r: tuple(int(x) for x in r["python"].split(".")))


def _labels(run: Dict[str, Any]) -> List[str]:
    return [t["label"] for t in run["toolkits"]]


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if value >= 1000:
        return _three_digits(value / 1000) + " µs"
    return _three_digits(value) + " ns"


def _three_digits(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _fmt_spread(s: Dict[str, float], unit: str) -> str:
    """best / median / max in one unit, the one the median is shown in."""
    scale, shown = (1000.0, "µs") if unit == "ns" and s["median"] >= 1000 else (1.0, unit)
    m = s["median"] / scale
    digits = 2 if m < 10 else 1 if m < 100 else 0
    return " / ".join(f"{s[k] / scale:.{digits}f}" for k in ("best", "median", "max")) + " " + shown


def _rows(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per workload: its label, unit and, per toolkit, the stats and ratios to the baseline."""
    labels = _labels(run)
    base = labels[0]
    rows = []
    for key, w in run["timings"].items():
        per = {label: stats(w["samples"][label]) for label in labels if label in w["samples"]}
        for label, s in per.items():
            s["ratio_median"] = s["median"] / per[base]["median"]
            s["ratio_best"] = s["best"] / per[base]["best"]
        rows.append({"key": key, "label": w["label"], "unit": w["unit"], "per": per})
    return rows


def _load(run: Dict[str, Any]) -> str:
    """The 1-minute load average before and after the timing: how busy the machine was."""
    before, after = run.get("load_before"), run.get("load_after")
    return "unknown" if before is None else f"{before:.1f} before, {after:.1f} after"


def _header(run: Dict[str, Any]) -> str:
    return (f"CPython {run['python']} · {run['cpu']} ({run['cores']} cores) · {run['date']} · "
            f"{run['repeats']} repeats · load average {_load(run)}")


# ---- terminal -------------------------------------------------------------------------------


def print_table(run: Dict[str, Any]) -> None:
    labels = _labels(run)
    print()
    print(_header(run))
    print(f"timeit's empty loop costs {run['loop_ns']:.1f} ns per iteration (included below); "
          f"gc.collect() with nothing to free {run['gc_baseline_ms']:.1f} ms")
    print(f"{'workload':38} {'module':9} {'best':>10} {'median':>10} {'max':>10} "
          f"{'/C best':>7} {'/C med':>7}")
    for row in _rows(run):
        for i, label in enumerate(labels):
            s = row["per"].get(label)
            if s is None:
                continue
            name = row["label"] if i == 0 else ""
            print(f"{name:38} {label:9} {_fmt(s['best'], row['unit']):>10} "
                  f"{_fmt(s['median'], row['unit']):>10} {_fmt(s['max'], row['unit']):>10} "
                  f"{s['ratio_best']:6.2f}x {s['ratio_median']:6.2f}x")
    print(f"{'per module':38} {'module':9} {'Counter B':>10} {'Node B':>10} {'.so kB':>10} "
          f"{'build s':>7} {'cpu s':>7}")
    for label in labels:
        tk = next(t for t in run["toolkits"] if t["label"] == label)
        mem = run["memory"]
        print(f"{tk['version']:38} {label:9} {mem['Counter'][label]['rss']:10.1f} "
              f"{mem['Node'][label]['rss']:10.1f} {tk['build']['stripped_bytes'] / 1000:10.0f} "
              f"{tk['build']['wall_s']:7.1f} {tk['build']['cpu_s']:7.1f}")


# ---- markdown -------------------------------------------------------------------------------


def _run_markdown(run: Dict[str, Any]) -> List[str]:
    labels = _labels(run)
    base = labels[0]
    out = [f"### CPython {run['python']} ({run['cpu']}, {run['cores']} cores, {run['date']}; "
           f"{run['repeats']} repeats, {run['elapsed_s'] / 60:.0f} min)", ""]
    out += [f"{base}: time per operation, best sample (median in brackets). The others: ratio "
            f"to {base} of the best samples (of the medians in brackets); above 1 is slower. "
            f"Load average during the timing: {_load(run)}.", ""]
    out += ["| workload | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(labels)]
    rows = _rows(run)
    for row in rows:
        cells = []
        for label in labels:
            s = row["per"].get(label)
            if s is None:
                cells.append("—")
            elif label == base:
                cells.append(f"{_fmt(s['best'], row['unit'])} ({_fmt(s['median'], row['unit'])})")
            else:
                cells.append(f"**{s['ratio_best']:.2f}x** ({s['ratio_median']:.2f}x)")
        out.append(f"| `{row['label']}` | " + " | ".join(cells) + " |")
    mem = run["memory"]
    tks = {t["label"]: t for t in run["toolkits"]}

    def line(title: str, cell) -> str:
        return f"| {title} | " + " | ".join(cell(label) for label in labels) + " |"

    out.append(line("bytes per `Counter` (RSS; tracemalloc)",
                    lambda x: f"{mem['Counter'][x]['rss']:.0f}; {mem['Counter'][x]['traced']:.0f}"))
    out.append(line("bytes per `Node` (RSS; tracemalloc)",
                    lambda x: f"{mem['Node'][x]['rss']:.0f}; {mem['Node'][x]['traced']:.0f}"))
    out.append(line("stripped .so",
                    lambda x: f"{tks[x]['build']['stripped_bytes'] / 1000:.0f} kB"))
    out.append(line("clean build, wall (CPU)",
                    lambda x: f"{tks[x]['build']['wall_s']:.1f} s ({tks[x]['build']['cpu_s']:.1f} s)"))
    out.append(line("version", lambda x: tks[x]["version"]))
    out += ["", "<details><summary>Spread of the repeats: best / median / max</summary>", "",
            "| workload | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in rows:
        cells = []
        for label in labels:
            s = row["per"].get(label)
            cells.append("—" if s is None else _fmt_spread(s, row["unit"]))
        out.append(f"| `{row['label']}` | " + " | ".join(cells) + " |")
    out += ["", f"timeit's empty loop: {run['loop_ns']:.1f} ns per iteration, included in every "
            f"per-call figure; `gc.collect()` with nothing to free: "
            f"{run['gc_baseline_ms']:.1f} ms, included in the GC row.", "", "</details>", ""]
    return out


# The goals of issue 7 that a run can answer, as (title, workload or memory kind, peer, limit):
# bindery's figure divided by the peer's must be at most `limit`.
GOALS = [
    ("`add(1, 2)` within 5% of C", "add", "C", 1.05),
    ("sum of 1000 floats at least as fast as nanobind", "sum_list", "nanobind", 1.0),
    ("construct + method call at least as fast as nanobind", "construct_call", "nanobind", 1.0),
    ("memory per `Counter` at most nanobind's", "mem:Counter", "nanobind", 1.0),
    ("memory per `Node` (GC) at most nanobind's", "mem:Node", "nanobind", 1.0),
]
SUBJECT = "bindery"
# Hand-written: why bindery loses where it does and what would fix it (measured separately).
STANDING_NOTES = Path(__file__).resolve().parent / "bindery-standing.md"


def standing_run(runs: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The run the goals are read from: the default interpreter's (3.11) if it has bindery,
    else the newest run that has it."""
    with_subject = [r for r in runs if SUBJECT in _labels(r)]
    for r in with_subject:
        if r["python"].startswith("3.11."):
            return r
    return with_subject[-1] if with_subject else None


def _goal_ratio(run: Dict[str, Any], key: str, peer: str) -> Optional[Tuple[float, float]]:
    """bindery's ratio to `peer` for one goal in one run: (best, median); memory has one
    figure (both the same). None if the run lacks either module."""
    if SUBJECT not in _labels(run) or peer not in _labels(run):
        return None
    if key.startswith("mem:"):
        kind = run["memory"].get(key[4:], {})
        if SUBJECT not in kind or peer not in kind:
            return None
        ratio = kind[SUBJECT]["rss"] / kind[peer]["rss"]
        return ratio, ratio
    row = {r["key"]: r for r in _rows(run)}.get(key)
    if row is None:
        return None
    a, b = row["per"][SUBJECT], row["per"][peer]
    return a["best"] / b["best"], a["median"] / b["median"]


def goals_by_version(runs: List[Dict[str, Any]]) -> List[str]:
    """One row per run: each goal's ratio (best sample) and whether it is met."""
    rows = []
    for run in runs:
        cells = []
        for _title, key, peer, limit in GOALS:
            got = _goal_ratio(run, key, peer)
            cells.append("-" if got is None else
                         f"{got[0]:.2f}x " + ("yes" if got[0] <= limit else "**no**"))
        if any(c != "-" for c in cells):
            rows.append(f"| {run['python']} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    head = ["add vs C", "sum vs nanobind", "construct+call vs nanobind",
            "`Counter` memory vs nanobind", "`Node` memory vs nanobind"]
    return (["The same goals in every run kept (ratio of the best samples; each run is "
             "its own side-by-side measurement):", "",
             "| CPython | " + " | ".join(head[:len(GOALS)]) + " |",
             "|---|" + "---:|" * len(GOALS)] + rows + [""])


def standing_markdown(runs: List[Dict[str, Any]]) -> List[str]:
    """The "Where bindery stands" part: each goal's ratio from one run, every run's
    ratios, then the notes."""
    run = standing_run(runs)
    if run is None:
        return []
    out = ["### Where bindery stands", "",
           f"Against the goals of issue 7, from the CPython {run['python']} run below (ratios "
           f"of the best samples, of the medians in brackets; memory: RSS growth per "
           f"instance).", "",
           "| goal | bindery | the peer | ratio | met |", "|---|---:|---:|---:|---|"]
    rows = {row["key"]: row for row in _rows(run)}
    for title, key, peer, limit in GOALS:
        if key.startswith("mem:"):
            kind = key[4:]
            mine, theirs = (run["memory"][kind][x]["rss"] for x in (SUBJECT, peer))
            ratio = mine / theirs
            cells = [f"{mine:.0f} B", f"{theirs:.0f} B ({peer})", f"{ratio:.2f}x"]
        else:
            row = rows[key]
            a, b = row["per"][SUBJECT], row["per"][peer]
            ratio = a["best"] / b["best"]
            med = a["median"] / b["median"]
            cells = [_fmt(a["best"], row["unit"]), f"{_fmt(b['best'], row['unit'])} ({peer})",
                     f"{ratio:.2f}x ({med:.2f}x)"]
        verdict = "yes" if ratio <= limit else f"no (goal: at most {limit:g}x)"
        out.append(f"| {title} | " + " | ".join(cells) + f" | {verdict} |")
    out.append("")
    out += goals_by_version(runs)
    if STANDING_NOTES.exists():
        out += [STANDING_NOTES.read_text().rstrip("\n"), ""]
    return out


def markdown_section(runs: List[Dict[str, Any]], chart: Optional[str]) -> str:
    labels = _labels(runs[-1]) if runs else []
    out = [BEGIN, f"## Side by side with the peers: {', '.join(labels)}", ""]
    out += [
        "`benches/peers/run.sh` (default `python3`; `--python 3.12` for one interpreter, "
        "`--all` for every installed CPython 3.9-3.13) installs pybind11, nanobind, maturin "
        "and matplotlib into a venv under `target/peers-venv/`, builds one module per toolkit "
        "from a clean state, checks that each gives the same answers, imports them all into "
        "one Python process and times each workload interleaved across the modules, in an "
        "order rotated on every repeat. The modules expose one Python API "
        "([benches/peers/README.md](benches/peers/README.md)); each is written the way its "
        "toolkit's users write it. Ratios are to hand-written C (METH_FASTCALL, static types, "
        "`PyFloat_AsDouble` per list item); above 1 is slower. The machines are shared and "
        "noisy: compare ratios within one run; the best sample is the one least disturbed by "
        "other work, the median and the spread show how disturbed the run was.",
        "",
    ]
    if chart:
        out += [f"![Time per operation relative to C, and memory per instance]({chart})", ""]
    out += standing_markdown(runs)
    for run in runs:
        out += _run_markdown(run)
    out += [
        "Notes on method:",
        "",
        "- `six` is nanobind's benchmark shape: `(u16, i64, i32, u64, u32, f32) -> float`; "
        "`Counter(1).incr()` is its construct-and-call shape.",
        "- Conversions are each toolkit's own: the C++ modules build `std::vector` / "
        "`std::unordered_map<std::string, int64_t>` and return it through the STL casters, "
        "the PyO3 and bindery modules `Vec` / `HashMap<String, i64>` (a heap `String` per "
        "key); C builds the Python objects directly. nanobind and bindery can beat C on "
        "`sum_list` because they read exact floats inline where the C baseline calls "
        "`PyFloat_AsDouble` per item. `take_ref` borrows the caller's `Counter` in every "
        "module (`const Counter &`, `PyRef<Counter>`, bindery's `InstanceRef<Counter>`).",
        "- The GC row builds 100,000 `Node`s in 2-cycles (`a.other = b; b.other = a`), drops "
        "them and times the one `gc.collect()` that frees them; each sample checks that the "
        "collector found them all and that sampled weak references died.",
        "- Memory is measured in a fresh interpreter over 500,000 live instances. RSS growth "
        "counts everything; tracemalloc sees only Python's allocators. The difference is what "
        "C++ allocates with `new`/`malloc`: pybind11's object itself, and, for pybind11 and "
        "nanobind, the entry that registers each instance in a C++-pointer-to-Python-object "
        "hash map (its share per instance moves with the table's fill, i.e. with the count).",
        "- Builds run one after the other on this 2-core machine; g++ compiles one file at a "
        "time (nanobind's build includes compiling its library, `nb_combined.cpp`), cargo uses "
        "both cores, hence wall and CPU seconds. PyO3's clean build compiles pyo3 and its "
        "proc-macro dependencies, bindery's compiles the facade's five crates, pyo3-ffi and "
        "thiserror's proc macro; sources were already downloaded. The version row names "
        "what pip and cargo resolved for that Python (bindery: the commit, `+edits` if the "
        "working tree's crates differed from it).",
        "",
        END,
    ]
    return "\n".join(out) + "\n"


def replace_section(path: Path, section: str) -> None:
    """Replaces the text between the peers markers, or appends it; the rest is untouched."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = text.find(BEGIN), text.find(END)
    if start != -1 and end != -1 and end > start:
        text = text[:start] + section.rstrip("\n") + text[end + len(END):]
        if not text.endswith("\n"):
            text += "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# ---- chart ----------------------------------------------------------------------------------


def draw_chart(runs: List[Dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs)
    # Room for one labelled bar per compared module and workload.
    bars = max(len(_rows(r)) * (len(_labels(r)) - 1) for r in runs)
    fig, axes = plt.subplots(n, 2, figsize=(13, max(5.2, 1.6 + 0.17 * bars) * n), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1.3]})
    colors = ["#555555", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"]
    for (ax_t, ax_m), run in zip(axes, runs):
        labels = _labels(run)
        others = labels[1:]
        rows = _rows(run)
        height = 0.8 / len(others)
        ratios = [row["per"][x][k] for row in rows for x in others if x in row["per"]
                  for k in ("ratio_best", "ratio_median")]
        lo, hi = min(ratios + [1.0]) / 1.4, max(ratios + [1.0]) * 1.6
        for j, label in enumerate(others):
            ys = [i + (j - (len(others) - 1) / 2) * height for i in range(len(rows))]
            xs = [row["per"][label]["ratio_best"] if label in row["per"] else 1.0 for row in rows]
            meds = [row["per"][label]["ratio_median"] if label in row["per"] else 1.0
                    for row in rows]
            ax_t.barh(ys, [x - 1.0 for x in xs], left=1.0, height=height,
                      color=colors[(j + 1) % len(colors)], label=label)
            ax_t.plot(meds, ys, linestyle="none", marker="|", markersize=7, color="black",
                      label="median" if j == len(others) - 1 else None)
            for y, x, med in zip(ys, xs, meds):  # the label goes past the bar and the tick
                ax_t.text(max(x, med) * 1.03 if x >= 1 else min(x, med) / 1.03, y, f"{x:.2f}x",
                          va="center", ha="left" if x >= 1 else "right", fontsize=7)
        ax_t.set_xscale("log")
        ax_t.set_xlim(lo, hi)
        ax_t.axvline(1.0, color="black", linewidth=1.2)
        ticks = [t for t in (0.25, 0.5, 1, 2, 3, 5, 10, 20, 50) if lo <= t <= hi]
        ax_t.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax_t.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
        ax_t.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax_t.set_yticks(range(len(rows)))
        ax_t.set_yticklabels([r["label"] for r in rows])
        ax_t.invert_yaxis()
        ax_t.set_xlabel(f"time relative to {labels[0]} = 1x: bars best of {run['repeats']} "
                        "repeats, | median; log scale; left of the line is faster")
        ax_t.set_title(f"CPython {run['python']} · {run['cpu']} · {run['date']}", loc="left")
        ax_t.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(others) + 1,
                    fontsize=8, frameon=False)
        ax_t.grid(axis="x", which="major", alpha=0.3)

        kinds = ["Counter", "Node"]
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            xs = [k + (j - (len(labels) - 1) / 2) * width for k in range(len(kinds))]
            vals = [run["memory"][kind][label]["rss"] for kind in kinds]
            ax_m.bar(xs, vals, width=width, color=colors[j % len(colors)], label=label)
            for x, v in zip(xs, vals):
                ax_m.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=7)
        ax_m.set_xticks(range(len(kinds)))
        ax_m.set_xticklabels(kinds)
        ax_m.set_ylabel("bytes per instance: RSS growth over 500k live ones")
        ax_m.set_title("memory (lower is better)", loc="left")
        ax_m.set_ylim(0, max(run["memory"][k][x]["rss"] for k in kinds for x in labels) * 1.12)
        ax_m.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8,
                    frameon=False)
        ax_m.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
