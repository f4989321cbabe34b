"""The table of compared modules and how each one is built, from a clean state.

Every entry builds one extension module that implements the Python API described in
benches/peers/README.md and drops it, named `<module><EXT_SUFFIX>`, into a folder that the
measuring process puts on sys.path. A build returns what the report needs: the path of
the module, the wall and CPU seconds of each build step, the size of a stripped copy, the
toolkit's version and the commands that ran.

Adding a module is one function and one line in TOOLKITS below; see the header of
compare.py.
"""

import os
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent

# Flags, as the peers' own build systems use them in release builds (see README.md here):
# - C: what CPython's own extension builds use, minus debug info.
C_FLAGS = ["-O2", "-fPIC", "-shared", "-fno-strict-aliasing"]
# - pybind11: its CMake helper in a Release build (-O3 -DNDEBUG, hidden visibility).
PYBIND11_FLAGS = ["-O3", "-DNDEBUG", "-fPIC", "-shared", "-std=c++17", "-fvisibility=hidden"]
# - nanobind: the flags of nanobind's CMake helper for libnanobind (NB_COMPACT_ASSERTIONS,
#   sections for --gc-sections), at -O3 for both the library and the module.
NANOBIND_FLAGS = [
    "-std=c++17", "-fvisibility=hidden", "-DNDEBUG", "-DNB_COMPACT_ASSERTIONS", "-fPIC",
    "-O3", "-fno-strict-aliasing", "-ffunction-sections", "-fdata-sections",
]


class BuildError(RuntimeError):
    """A build step failed; the message holds the command and its output."""


@dataclass
class BuildEnv:
    """What every builder needs to know about the target interpreter and the folders."""

    python: str  # the interpreter the module is built for (the measuring one)
    include: str  # its C headers
    ext_suffix: str  # e.g. .cpython-311-x86_64-linux-gnu.so
    modules_dir: Path  # where built modules go; on sys.path of the measuring process
    work_root: Path  # per-interpreter scratch folder; each toolkit gets a clean subfolder

    @classmethod
    def for_this_interpreter(cls, root: Path) -> "BuildEnv":
        return cls(
            python=sys.executable,
            include=sysconfig.get_paths()["include"],
            ext_suffix=sysconfig.get_config_var("EXT_SUFFIX"),
            modules_dir=root / "modules",
            work_root=root / "build",
        )

    def clean_work_dir(self, name: str) -> Path:
        work = self.work_root / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return work

    def bin(self, tool: str) -> str:
        """A console script installed beside the interpreter (the venv's maturin)."""
        return str(Path(self.python).parent / tool)


@dataclass
class Step:
    name: str
    wall_s: float
    cpu_s: float
    command: str


@dataclass
class Built:
    module_path: Path
    version: str
    steps: List[Step] = field(default_factory=list)
    stripped_bytes: int = 0

    @property
    def wall_s(self) -> float:
        return sum(s.wall_s for s in self.steps)

    @property
    def cpu_s(self) -> float:
        return sum(s.cpu_s for s in self.steps)


def run_step(name: str, cmd: List[str], cwd: Optional[Path] = None,
             env: Optional[Dict[str, str]] = None) -> Step:
    """Runs one build command; its wall time and its children's CPU time make the Step."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BuildError(f"{name} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stdout[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Step(name, wall, cpu, " ".join(str(c) for c in cmd))


def stripped_size(path: Path, work: Path) -> int:
    """Size of a copy with the symbol tables stripped (`strip --strip-all`)."""
    copy = work / ("stripped-" + path.name)
    shutil.copyfile(path, copy)
    subprocess.run(["strip", "--strip-all", str(copy)], check=True)
    return copy.stat().st_size


def need_tool(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise BuildError(f"`{tool}` is not on PATH; {hint}")
    return found


# ---- the builders -----------------------------------------------------------------------


def build_c(env: BuildEnv, module: str) -> Built:
    need_tool("gcc", "install it with `apt-get install gcc`")
    work = env.clean_work_dir(module)
    out = work / (module + env.ext_suffix)
    src = HERE / "c" / "peer_c.c"
    step = run_step("gcc", ["gcc", *C_FLAGS, "-I" + env.include, str(src), "-o", str(out)])
    return Built(out, "CPython C API", [step])


def build_pybind11(env: BuildEnv, module: str) -> Built:
    import pybind11

    need_tool("g++", "install it with `apt-get install g++`")
    work = env.clean_work_dir(module)
    out = work / (module + env.ext_suffix)
    src = HERE / "pybind11" / "peer_pybind11.cpp"
    cmd = ["g++", *PYBIND11_FLAGS, "-I" + pybind11.get_include(), "-I" + env.include,
           str(src), "-o", str(out)]
    return Built(out, "pybind11 " + pybind11.__version__, [run_step("g++ module", cmd)])


def build_nanobind(env: BuildEnv, module: str) -> Built:
    import nanobind

    need_tool("g++", "install it with `apt-get install g++`")
    work = env.clean_work_dir(module)
    nb = Path(nanobind.__file__).resolve().parent
    includes = ["-I" + str(nb / "include"), "-I" + str(nb / "ext" / "robin_map" / "include"),
                "-I" + env.include]
    lib_obj, mod_obj = work / "nb_combined.o", work / (module + ".o")
    out = work / (module + env.ext_suffix)
    src = HERE / "nanobind" / "peer_nanobind.cpp"
    steps = [
        run_step("g++ libnanobind", ["g++", *NANOBIND_FLAGS, *includes, "-c",
                                     str(nb / "src" / "nb_combined.cpp"), "-o", str(lib_obj)]),
        run_step("g++ module", ["g++", *NANOBIND_FLAGS, *includes, "-c", str(src),
                                "-o", str(mod_obj)]),
        run_step("link", ["g++", "-shared", "-Wl,--gc-sections", str(lib_obj), str(mod_obj),
                          "-o", str(out)]),
    ]
    return Built(out, "nanobind " + nanobind.__version__, steps)


def _maturin_module(env: BuildEnv, crate: Path, module: str, locked: bool
                    ) -> Tuple[Path, Step]:
    """`maturin build --release` of `crate` from a deleted target folder (every crate
    compiles anew), the extension module taken out of the wheel: its path and the timed
    build step. Downloads (if any) happen first, outside the timed step."""
    need_tool("cargo", "install Rust (rustup) first")
    work = env.clean_work_dir(module)
    cargo_env = dict(os.environ, CARGO_TARGET_DIR=str(work / "cargo-target"))
    lock_flag = ["--locked"] if locked else []
    run_step("cargo fetch", ["cargo", "fetch", *lock_flag, "--manifest-path",
                             str(crate / "Cargo.toml")], env=cargo_env)
    wheels = work / "wheels"
    step = run_step("maturin build", [env.bin("maturin"), "build", "--release", *lock_flag,
                                      "-i", env.python, "-o", str(wheels), "-m",
                                      str(crate / "Cargo.toml")], env=cargo_env)
    (wheel,) = wheels.glob("*.whl")
    out = work / (module + env.ext_suffix)
    with zipfile.ZipFile(wheel) as zf:
        (member,) = [n for n in zf.namelist() if n.endswith(env.ext_suffix)]
        out.write_bytes(zf.read(member))
    return out, step


def build_pyo3(env: BuildEnv, module: str) -> Built:
    """PyO3 from crates.io, with its own Cargo.lock (`--locked`)."""
    crate = HERE / "pyo3"
    out, step = _maturin_module(env, crate, module, locked=True)
    lock = (crate / "Cargo.lock").read_text()
    version = re.search(r'name = "pyo3"\nversion = "([^"]+)"', lock)
    return Built(out, "PyO3 " + (version.group(1) if version else "?"), [step])


def _bindery_crate() -> Path:
    """benches/peers/bindery, its Cargo.lock started from the repository's: the crate is its
    own workspace, and builds with the dependency versions bindery's own tests use (cargo
    drops what it does not need). That Cargo.lock is generated, hence ignored by git."""
    crate = HERE / "bindery"
    shutil.copyfile(HERE.parent.parent / "Cargo.lock", crate / "Cargo.lock")
    return crate


def _bindery_version() -> str:
    """bindery's version and commit; `+edits` if the facade's crates differ from it."""
    root = HERE.parent.parent
    version = re.search(r'^version = "([^"]+)"', (root / "Cargo.toml").read_text(), re.M)
    label = "bindery " + (version.group(1) if version else "?")
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if commit.returncode == 0 and commit.stdout.strip():
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src",
                                "capsule", "internals", "cast", "gc-support", "Cargo.toml"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        label += f" ({commit.stdout.strip()}{'+edits' if dirty.stdout.strip() else ''})"
    return label


def build_bindery(env: BuildEnv, module: str) -> Built:
    """maturin build --release of benches/peers/bindery (a path dependency on this
    repository's facade), as bindery modules are built (examples/minimal/pyproject.toml:
    maturin, bindings = "pyo3" over pyo3-ffi)."""
    out, step = _maturin_module(env, _bindery_crate(), module, locked=False)
    return Built(out, _bindery_version(), [step])


def build_bindery_cargo(env: BuildEnv, module: str) -> Built:
    """The same module without maturin, for --smoke: `cargo build --release` as an extension
    module (PYO3_BUILD_EXTENSION_MODULE=1, what maturin sets), into a target folder kept
    between runs (target/peers/<version>/bindery-smoke-target), so a re-run compiles only
    what changed."""
    need_tool("cargo", "install Rust (rustup) first")
    crate = _bindery_crate()
    work = env.clean_work_dir(module)
    target = env.work_root.parent / "bindery-smoke-target"
    cargo_env = dict(os.environ, CARGO_TARGET_DIR=str(target), PYO3_PYTHON=env.python,
                     PYO3_BUILD_EXTENSION_MODULE="1")
    step = run_step("cargo build", ["cargo", "build", "--release", "--quiet", "--manifest-path",
                                    str(crate / "Cargo.toml")], env=cargo_env)
    out = work / (module + env.ext_suffix)
    shutil.copyfile(target / "release" / f"lib{module}.so", out)
    return Built(out, _bindery_version(), [step])


@dataclass
class Toolkit:
    """One row of the comparison: a label, the module's import name, and its builder."""

    label: str  # column title in tables and the chart
    module: str  # Python import name; the file is `<module><EXT_SUFFIX>`
    build: Callable[[BuildEnv, str], Built]
    needs: List[str] = field(default_factory=list)  # PyPI packages the build imports/runs
    key: str = ""  # short name for --only; defaults to label.lower()
    # A builder that needs no PyPI package, for --smoke (None: left out of the smoke run).
    smoke_build: Optional[Callable[[BuildEnv, str], Built]] = None

    def __post_init__(self) -> None:
        self.key = self.key or self.label.lower()


# The baseline comes first: ratios are taken to the first entry.
TOOLKITS: List[Toolkit] = [
    Toolkit("C", "peer_c", build_c, smoke_build=build_c),
    Toolkit("pybind11", "peer_pybind11", build_pybind11, ["pybind11"]),
    Toolkit("nanobind", "peer_nanobind", build_nanobind, ["nanobind"]),
    Toolkit("PyO3", "peer_pyo3", build_pyo3, ["maturin"]),
    Toolkit("bindery", "peer_bindery", build_bindery, ["maturin"],
            smoke_build=build_bindery_cargo),
]


def build(tk: Toolkit, env: BuildEnv, smoke: bool = False) -> Built:
    """Builds one toolkit's module cleanly (with its smoke builder if `smoke`) and installs
    it into env.modules_dir."""
    builder = tk.smoke_build if smoke and tk.smoke_build else tk.build
    built = builder(env, tk.module)
    work = env.work_root / tk.module
    built.stripped_bytes = stripped_size(built.module_path, work)
    env.modules_dir.mkdir(parents=True, exist_ok=True)
    dest = env.modules_dir / (tk.module + env.ext_suffix)
    shutil.copyfile(built.module_path, dest)
    built.module_path = dest
    return built


def built_to_json(b: Built) -> dict:
    return {
        "version": b.version,
        "wall_s": b.wall_s,
        "cpu_s": b.cpu_s,
        "stripped_bytes": b.stripped_bytes,
        "steps": [s.__dict__ for s in b.steps],
    }

