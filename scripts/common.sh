# Shared by scripts/test.sh and scripts/demo.sh: tool checks and interpreter lookup.
# Sourced, not run.

die() { echo "error: $*" >&2; exit 1; }

# The Rust toolchain cannot be fetched on the project's machines: say so plainly if absent.
need_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust 1.85+ (rustup) first"
  cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 || die "clippy missing: rustup component add clippy"
  if ! command -v cargo-nextest >/dev/null; then
    echo "installing cargo-nextest from crates.io (once)"
    cargo install cargo-nextest --locked
  fi
}

# Folder of pyenv's interpreters, if pyenv is there.
pyenv_versions_dir() {
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  echo "$root/versions"
}

# Path of the newest pyenv CPython X.Y (e.g. 3.12), or nothing.
find_python() {
  local want=$1 dir best=""
  for dir in "$(pyenv_versions_dir)/$want".*; do
    [ -x "$dir/bin/python$want" ] || continue
    # only plain CPython releases: 3.12.1, not 3.12.1t or 3.12-dev
    [[ "$(basename "$dir")" =~ ^$want\.[0-9]+$ ]] || continue
    best="$dir/bin/python$want"
  done
  echo "$best"
}

# The default interpreter: python3 on PATH, resolved to its real executable.
default_python() {
  python3 -c 'import sys; print(sys.executable)' 2>/dev/null || die "python3 not found on PATH"
}
