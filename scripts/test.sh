#!/usr/bin/env bash
# Every check of bindery, from a fresh clone: formatting, lints, the whole suite on the default
# python3, doctests, then the interpreter-level tests (test binaries named py_*: everything that
# runs Python in a subprocess) again on each other installed CPython 3.9-3.13.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --python 3.12   # default suite, then interpreter tests on 3.12 only
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

others=(3.9 3.10 3.12 3.13)
if [ "${1:-}" = "--python" ]; then
  [ -n "${2:-}" ] || die "--python takes a version such as 3.12"
  others=("$2")
fi

need_rust
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
logs=target/test-logs
mkdir -p "$logs"

echo "== cargo fmt --check"
cargo fmt --all --check || die "formatting differs: run cargo fmt --all"
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings || die "clippy found problems"

summary=()
total_pass=0
total_fail=0
status=0

# run_suite LABEL LOG ARGS...: run nextest, keep its log, record "LABEL: N passed, N failed".
run_suite() {
  local label=$1 log=$2
  shift 2
  cargo nextest run --workspace --no-fail-fast --no-tests=warn "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line pass fail skip
  line=$(grep -E '^ *Summary \[' "$log" | tail -n 1)
  pass=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
  fail=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || true)
  skip=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || true)
  pass=${pass:-0}; fail=${fail:-0}; skip=${skip:-0}
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi  # a build error counts as a failure
  [ "$rc" -eq 0 ] || status=1
  summary+=("$label: $pass passed, $fail failed, $skip skipped")
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
}

# one_check LABEL LOG SHOW CMD...: one check counted as one test, "LABEL: 1 passed, 0 failed".
# Its output goes to LOG; SHOW=all prints it as it runs, SHOW=tail prints the last lines only
# (all 30 on failure, 3 on success).
one_check() {
  local label=$1 log=$2 show=$3 rc
  shift 3
  if [ "$show" = all ]; then
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    "$@" > "$log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then tail -n 3 "$log"; else tail -n 30 "$log"; fi
  fi
  if [ "$rc" -eq 0 ]; then
    summary+=("$label: 1 passed, 0 failed")
    total_pass=$((total_pass + 1))
  else
    summary+=("$label: 0 passed, 1 failed")
    total_fail=$((total_fail + 1))
    status=1
  fi
}

default_py=$(default_python)
default_ver=$("$default_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "== all tests on the default python3 ($default_py)"
run_suite "python$default_ver (all)" "$logs/default.log"

echo "== doctests"
if cargo test --workspace --doc --quiet 2>&1 | tee "$logs/doc.log"; then
  n=$(grep -oE 'test result: ok\. [0-9]+ passed' "$logs/doc.log" | awk '{s += $4} END {print s + 0}')
  summary+=("doctests: ${n:-0} passed, 0 failed")
  total_pass=$((total_pass + ${n:-0}))
else
  summary+=("doctests: 0 passed, 1 failed")
  total_fail=$((total_fail + 1))
  status=1
fi

echo "== maturin: build bindery-example-minimal into a wheel, pip-install it, import it"
one_check wheel "$logs/wheel.log" all scripts/wheel-check.sh "$default_py"

echo "== rustdoc: every crate documents without warnings"
one_check rustdoc "$logs/rustdoc.log" all env RUSTDOCFLAGS="-D warnings" \
  cargo doc --workspace --no-deps --quiet

echo "== docs-site: build the book (warnings are errors), check it in headless Chromium"
docs-site/check.sh 2>&1 | tee "$logs/docs.log"
rc=${PIPESTATUS[0]}
line=$(grep -E '^docs: ' "$logs/docs.log" | tail -n 1)
dp=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
df=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 1)
if [ "$rc" -ne 0 ]; then status=1; [ "$df" -gt 0 ] || df=1; fi
summary+=("docs: $dp passed, $df failed")
total_pass=$((total_pass + dp))
total_fail=$((total_fail + df))

echo "== demo: scripts/demo.sh (the README's main job) exits cleanly"
one_check demo "$logs/demo.log" tail scripts/demo.sh

echo "== peers comparison, smoke: build the C and bindery modules, check their answers, run each workload once"
one_check "peers smoke" "$logs/peers-smoke.log" tail benches/peers/run.sh --smoke

for v in "${others[@]}"; do
  [ "$v" = "$default_ver" ] && continue
  py=$(find_python "$v")
  if [ -z "$py" ]; then
    echo "== python$v: not installed under $(pyenv_versions_dir), skipped"
    summary+=("python$v: not installed, skipped")
    continue
  fi
  echo "== interpreter-level tests (py_*) on $py"
  BINDERY_PYTHON=$py run_suite "python$v (py_*)" "$logs/py$v.log" -E 'binary(/^py_/)'
done

echo
echo "== summary"
for line in "${summary[@]}"; do echo "$line"; done
echo "total: $total_pass passed, $total_fail failed"
exit $status
