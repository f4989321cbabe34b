#!/usr/bin/env python3
"""Checks the built bindery guide (run by check.sh). Each check is one test; the last line
is "docs: N passed, M failed"."""

import argparse
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

results = []  # (name, ok, detail)


def record(name, ok, detail=""):
    results.append((name, ok, detail))
    print(("ok    " if ok else "FAIL  ") + name + (("\n      " + detail) if detail and not ok else ""))


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []  # (attr, value)
        self.ids = set()
        self.title = ""
        self.h1 = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        for attr in ("href", "src"):
            if attr in attrs and attrs[attr] is not None and tag in ("a", "img", "link", "script"):
                self.links.append((tag, attrs[attr]))
        if tag == "h1" and "menu-title" in (attrs.get("class") or ""):
            return  # the book title in the menu bar, not the page's heading
        if tag in ("title", "h1"):
            self._in = tag
            if tag == "h1":
                self.h1.append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.h1[-1] += data


def summary_chapters(src):
    """(title, path) of every chapter in SUMMARY.md, in order."""
    out = []
    for line in open(os.path.join(src, "SUMMARY.md"), encoding="utf-8"):
        for title, path in re.findall(r"\[([^\]]+)\]\(([^)]+\.md)\)", line):
            out.append((title, path))
    return out


def parse(path):
    page = Page()
    page.feed(open(path, encoding="utf-8").read())
    return page


def check_build(args):
    log = open(args.build_log, encoding="utf-8", errors="replace").read()
    bad = [l for l in log.splitlines() if re.search(r"\b(WARN|ERROR)\b", l)]
    ok = args.build_status == 0 and not bad
    record("mdbook build without warnings", ok, "\n      ".join(bad or log.splitlines()[-20:]))
    return ok


def check_verbatim(args, src):
    """Samples between <!-- verbatim: path --> and <!-- /verbatim --> must appear, line for line, in that file."""
    for name in sorted(os.listdir(src)):
        if not name.endswith(".md"):
            continue
        text = open(os.path.join(src, name), encoding="utf-8").read()
        for m in re.finditer(r"<!-- verbatim: (\S+) -->\n(.*?)\n<!-- /verbatim -->", text, re.S):
            rel, block = m.group(1), m.group(2)
            if block.startswith("```"):  # a fenced sample: compare its body
                block = "\n".join(block.splitlines()[1:-1])
            try:
                source = open(os.path.join(args.root, rel), encoding="utf-8").read()
            except OSError as e:
                record(f"verbatim sample in {name} from {rel}", False, str(e))
                continue
            lines = []
            for line in source.splitlines():
                stripped = re.sub(r"^\s*//[!/] ?", "", line) if re.match(r"^\s*//[!/]", line) else line
                lines.append(stripped.rstrip())
            want = [l.rstrip() for l in block.splitlines()]
            found = any(lines[i:i + len(want)] == want for i in range(len(lines) - len(want) + 1))
            record(f"verbatim sample in {name} is in {rel}", found,
                   "the sample differs from the source; copy it again from " + rel)


def check_includes(src):
    """Every {{#include path[:anchor]}} names an existing file and, if any, an existing anchor
    (mdBook silently includes nothing for an unknown anchor)."""
    for dirpath, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith(".md"):
                continue
            md = os.path.join(dirpath, name)
            rel_md = os.path.relpath(md, src)
            text = open(md, encoding="utf-8").read()
            for m in re.finditer(r"\{\{#include\s+([^}:\s]+)(?::([^}\s]+))?\s*\}\}", text):
                path, anchor = m.group(1), m.group(2)
                target = os.path.normpath(os.path.join(dirpath, path))
                problem = ""
                if not os.path.isfile(target):
                    problem = f"{path}: no such file"
                elif anchor and not re.fullmatch(r"\d*(:\d*)?", anchor):
                    body = open(target, encoding="utf-8", errors="replace").read()
                    if not (re.search(rf"ANCHOR:\s*{re.escape(anchor)}\b", body)
                            and re.search(rf"ANCHOR_END:\s*{re.escape(anchor)}\b", body)):
                        problem = f"{path} has no ANCHOR/ANCHOR_END {anchor!r}"
                elif anchor:
                    problem = f"{path}:{anchor}: line ranges rot; use an ANCHOR"
                label = f"{path}:{anchor}" if anchor else path
                record(f"include in {rel_md}: {label}", not problem, problem)


def check_pages(args, src, out):
    chapters = summary_chapters(src)
    pages = {}
    for title, md in chapters:
        html_path = os.path.join(out, md[:-3] + ".html")
        if not os.path.exists(html_path):
            record(f"page {md} built", False, f"{html_path} missing")
            continue
        page = parse(html_path)
        raw = open(html_path, encoding="utf-8").read()
        problems = []
        if not page.title.strip().startswith(title):
            problems.append(f"<title> is {page.title.strip()!r}, expected it to start with {title!r}")
        if not page.h1 or " ".join(page.h1[0].split()) != title:
            problems.append(f"first <h1> is {page.h1[:1]}, expected the SUMMARY.md title {title!r}")
        if "{{#" in raw:
            problems.append("an unexpanded {{#...}} directive is left")
        record(f"page {md}: title and heading", not problems, "; ".join(problems))
        pages[html_path] = (title, md, page)
    return pages


def check_links(out, pages):
    cache = {}

    def ids_of(path):
        if path not in cache:
            cache[path] = parse(path).ids if path.endswith(".html") else set()
        return cache[path]

    for html_path, (title, md, page) in pages.items():
        broken = []
        for tag, url in page.links:
            parsed = urllib.parse.urlparse(url)
            if parsed.scheme or url.startswith("//") or url.startswith("mailto:"):
                continue  # external: not checked (no network)
            target = html_path if not parsed.path else os.path.normpath(
                os.path.join(os.path.dirname(html_path), urllib.parse.unquote(parsed.path)))
            if os.path.isdir(target):
                target = os.path.join(target, "index.html")
            if not os.path.exists(target):
                broken.append(f"{url} ({tag}): no such file")
            elif parsed.fragment and target.endswith(".html") and parsed.fragment not in ids_of(target):
                broken.append(f"{url}: no id {parsed.fragment!r} in {os.path.relpath(target, out)}")
            elif target.endswith(".md"):
                broken.append(f"{url}: links to Markdown source")
        record(f"page {md}: {len(page.links)} internal links and images resolve", not broken,
               "\n      ".join(broken))


def dump_dom(chromium, url):
    profile = tempfile.mkdtemp(prefix="bindery-docs-chromium-")
    try:
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--virtual-time-budget=3000", "--dump-dom", url],
            capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        return -1, "", "chromium timed out after 60 s"
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def check_chromium(args, pages):
    items = list(pages.items())

    def one(item):
        html_path, (title, md, page) = item
        code, dom, err = dump_dom(args.chromium, "file://" + html_path)
        problems = []
        if code != 0 or not dom.strip():
            problems.append(f"chromium exit {code}: {err.strip()[-300:]}")
        else:
            rendered = Page()
            rendered.feed(dom)
            if not rendered.title.strip().startswith(title):
                problems.append(f"rendered title {rendered.title.strip()!r}")
            if not rendered.h1 or " ".join(rendered.h1[0].split()) != title:
                problems.append(f"rendered first <h1> is {rendered.h1[:1]}, expected {title!r}")
            # The sidebar's chapter list is filled in by mdBook's script: proves JS ran.
            chapter_links = len(re.findall(r'<li class="chapter-item', dom))
            if chapter_links < len(pages):
                problems.append(f"sidebar shows {chapter_links} chapters, expected {len(pages)}")
        return md, problems

    with ThreadPoolExecutor(max_workers=2) as pool:
        for md, problems in pool.map(one, items):
            record(f"page {md}: renders in headless Chromium", not problems, "; ".join(problems))


def check_images(args, out, pages):
    """Every internal image of every page decodes in Chromium (one run for all of them)."""
    images = set()
    for html_path, (_, _, page) in pages.items():
        for tag, url in page.links:
            parsed = urllib.parse.urlparse(url)
            if tag == "img" and not parsed.scheme and parsed.path:
                images.add(os.path.normpath(os.path.join(os.path.dirname(html_path),
                                                         urllib.parse.unquote(parsed.path))))
    if not images:
        return
    images = sorted(images)
    probe = os.path.join(args.work, "images.html")
    with open(probe, "w", encoding="utf-8") as f:
        f.write("<!doctype html><html><body><pre id='r'></pre><script>\n")
        f.write("const r = document.getElementById('r');\n")
        for path in images:
            src = "file://" + urllib.parse.quote(path)
            f.write(f"(function(){{const i = new Image(); i.onload = () => r.textContent += "
                    f"'loaded ' + i.naturalWidth + ' {src}\\n'; i.onerror = () => r.textContent += "
                    f"'error 0 {src}\\n'; i.src = '{src}';}})();\n")
        f.write("</script></body></html>\n")
    code, dom, err = dump_dom(args.chromium, "file://" + probe)
    for path in images:
        src = "file://" + urllib.parse.quote(path)
        m = re.search(r"(loaded|error) (\d+) " + re.escape(src) + r"\n", dom)
        ok = bool(m) and m.group(1) == "loaded" and int(m.group(2)) > 0
        record(f"image {os.path.relpath(path, out)} decodes in headless Chromium", ok,
               m.group(0).strip() if m else f"no result (chromium exit {code}: {err.strip()[-200:]})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--book", required=True)
    ap.add_argument("--build-log", required=True)
    ap.add_argument("--build-status", type=int, required=True)
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    src = os.path.join(args.book, "src")
    out = os.path.join(args.book, "book")

    built = check_build(args)
    check_includes(src)
    check_verbatim(args, src)
    if built or os.path.exists(os.path.join(out, "index.html")):
        pages = check_pages(args, src, out)
        check_links(out, pages)
        check_chromium(args, pages)
        check_images(args, out, pages)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print(f"docs: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
