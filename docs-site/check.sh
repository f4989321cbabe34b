#!/usr/bin/env bash
# Builds the bindery guide with warnings as errors and checks the result:
#   - mdbook build: any WARN or ERROR line (a missing include file, ...) fails;
#   - every {{#include path[:anchor]}} names an existing file and an existing ANCHOR (mdBook
#     silently includes nothing for an unknown anchor); line ranges are refused (they rot);
#   - every sample between <!-- verbatim: path --> and <!-- /verbatim --> is, line for line,
#     in that source file (doc-comment prefixes stripped): a sample that is shown rather than
#     included cannot drift from the compiled, doctested original;
#   - every page of SUMMARY.md is built, its <title> and first <h1> are its SUMMARY title, and
#     no {{#...}} directive is left;
#   - every internal link and image (href/src, with #fragment) resolves in the built site;
#   - each page, opened in headless Chromium (--dump-dom, JavaScript on), renders its title,
#     its heading and the sidebar's chapter list; every image decodes there.
# Installs what is missing: chromium (apt-get), mdbook 0.4.52 (cargo install, about 7 minutes
# on 2 cores). With both present it takes about half a minute.
# Last line: "docs: N passed, M failed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
MDBOOK_VERSION=0.4.52

# mdBook 0.4.x (0.5 changed the book format): the one on PATH if it is 0.4, else a private
# install under target/.
MDBOOK="$(command -v mdbook || true)"
if [ -z "$MDBOOK" ] || ! "$MDBOOK" --version | grep -q '^mdbook v0\.4\.'; then
    MDBOOK="$root/target/docs-tools/bin/mdbook"
    if [ ! -x "$MDBOOK" ]; then
        echo "docs-site: installing mdbook $MDBOOK_VERSION from crates.io (a few minutes)" >&2
        cargo install mdbook --locked --version "$MDBOOK_VERSION" --root "$root/target/docs-tools" >&2
    fi
fi

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
