#!/usr/bin/env bash
# Builds the bindery guide with warnings as errors and checks the result:
#   - mdbook build: any WARN or ERROR line (a missing include, a bad anchor, ...) fails;
#   - every page of SUMMARY.md is built, has its <title> and an <h1>, and no {{#include}} is left;
#   - every internal link and image (href/src, with #fragment) resolves in the built site;
#   - every sample between <!-- verbatim: path --> and <!-- /verbatim --> is, line for line, in that source file
#     (doc-comment prefixes stripped), so a pasted sample cannot drift from compiled code;
#   - each page, opened in headless Chromium (--dump-dom, JavaScript on), renders its title,
#     its heading and the sidebar's chapter list; every image decodes there.
# Installs what is missing: chromium (apt-get), mdbook 0.4.52 (cargo install).
# Last line: "docs: N passed, M failed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
MDBOOK_VERSION=0.4.52

if ! command -v mdbook >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/mdbook" ]; then
    echo "docs-site: installing mdbook $MDBOOK_VERSION from crates.io (a few minutes)" >&2
    cargo install mdbook --locked --version "$MDBOOK_VERSION" >&2
fi
MDBOOK="$(command -v mdbook || echo "$HOME/.cargo/bin/mdbook")"

CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$CHROMIUM" ]; then
    echo "docs-site: installing chromium (apt-get)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    CHROMIUM="$(command -v chromium)"
fi

work="$here/.check"
rm -rf "$work" "$here/book"
mkdir -p "$work"
start=$(date +%s)

set +e
(cd "$here" && "$MDBOOK" build) >"$work/mdbook.log" 2>&1
build_status=$?
set -e

python3 "$here/check_site.py" \
    --root "$root" --book "$here" --build-log "$work/mdbook.log" \
    --build-status "$build_status" --chromium "$CHROMIUM" --work "$work" && status=0 || status=$?

echo "docs-site: checked in $(( $(date +%s) - start )) s" >&2
exit $status
