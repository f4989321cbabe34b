#!/usr/bin/env bash
# Side-by-side comparison of bindery with its peers (C, pybind11, nanobind, PyO3): builds one module
# per toolkit, times the same workloads in one Python process, writes BENCHMARKS.md's peers
# section and benches/peers/peers.png. Options: see `benches/peers/run.sh --help`.
#
#   benches/peers/run.sh                 # default python3
#   benches/peers/run.sh --python 3.12   # one chosen CPython
#   benches/peers/run.sh --all           # every installed CPython 3.9-3.13
#   benches/peers/run.sh --smoke         # fast self-check: the C and bindery modules, no venv
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 benches/peers/compare.py "$@"
