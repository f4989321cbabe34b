#!/usr/bin/env bash
# The main job: build the example extension modules the way maturin builds them (no libpython
# link, release profile), stage them under their EXT_SUFFIX names and run the demo script.
#
#   scripts/demo.sh                  # with python3
#   BINDERY_PYTHON=/path/to/python scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
need_rust

py=${BINDERY_PYTHON:-$(default_python)}
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
version=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
build=target/demo/build-$version
stage=target/demo/stage-$version

# package -> Python module name (the cdylib's lib name)
modules=(
  bindery-example-minimal:bindery_example_minimal
  bindery-example-capsule-a:bindery_example_capsule_a
  bindery-example-capsule-b:bindery_example_capsule_b
  bindery-example-internals-a:bindery_example_internals_a
  bindery-example-internals-b:bindery_example_internals_b
)

# Built on its own: it enables bindery-internals' test-hooks (for the shutdown suite), and
# cargo would otherwise unify that feature into every module of the same build.
gc_module=bindery-example-gc:bindery_example_gc

packages=()
for m in "${modules[@]}"; do packages+=(-p "${m%%:*}"); done
echo "building $((${#modules[@]} + 1)) extension modules for Python $version ($py)"
PYO3_BUILD_EXTENSION_MODULE=1 PYO3_PYTHON=$py \
  cargo build --quiet --release --target-dir "$build" "${packages[@]}"
PYO3_BUILD_EXTENSION_MODULE=1 PYO3_PYTHON=$py \
  cargo build --quiet --release --target-dir "$build" -p "${gc_module%%:*}"

rm -rf "$stage" && mkdir -p "$stage"
for m in "${modules[@]}" "$gc_module"; do
  name=${m#*:}
  cp "$build/release/lib$name.so" "$stage/$name$suffix"
done

echo "running examples/demo.py"
echo
# BINDERY_EXAMPLE_GC_REPORT_AT_EXIT: bindery_example_gc says, after finalization, how many of
# its containers are still alive.
PYTHONPATH=$stage${PYTHONPATH:+:$PYTHONPATH} PYTHONFAULTHANDLER=1 \
  BINDERY_EXAMPLE_GC_REPORT_AT_EXIT=1 "$py" examples/demo.py
