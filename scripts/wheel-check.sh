#!/usr/bin/env bash
# Builds bindery-example-minimal into a wheel with maturin (from PyPI, in a private venv),
# installs the wheel with pip into a second, clean venv and imports it there: the path a
# user takes to ship a bindery module. Prints "wheel: 1 passed, 0 failed" on success.
#
#   scripts/wheel-check.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

py=${1:-${BINDERY_PYTHON:-$(default_python)}}
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
work=target/wheel-check/py$version
tools=$work/tools-venv
clean=$work/clean-venv
rm -rf "$work/wheels" "$clean"
mkdir -p "$work"

[ -x "$tools/bin/maturin" ] || {
  "$py" -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.5,<2"
}
"$tools/bin/maturin" build --quiet --release -m examples/minimal/Cargo.toml -i "$py" -o "$work/wheels"
wheel=$(ls "$work"/wheels/bindery_example_minimal-*.whl)
echo "built $(basename "$wheel")"

"$py" -m venv "$clean"
"$clean/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
(cd / && "$OLDPWD/$clean/bin/python" -c '
import bindery_example_minimal as m
assert m.add(1, 2) == 3 and m.sum_list([0.5, 1.5]) == 2.0
print("installed wheel imports and works:", m.__file__)
')
echo "wheel: 1 passed, 0 failed"
