"""The course as a static site (mkdocs.yml, tools/site/): it builds strictly, a broken link or
anchor fails the build, and in a real headless browser every page loads with each mermaid block
drawn as an SVG, no JavaScript error and nothing fetched from outside the site.

Needs the `site` extra (mkdocs, mkdocs-material, selenium), mermaid fetched into `.vendor/`
(`python tools/site/vendor.py`, which install.sh runs) and, for the browser check, chromium with
its chromedriver (Debian: `apt-get install -y chromium chromium-driver`). Without them the tests
skip and say why; CI sets COURSE_SITE_REQUIRED=1, which turns those skips into failures.

Screenshots of the course map and of lesson 12 go to build/site-screenshots/ (or
$COURSE_SITE_SCREENSHOTS); the test prints the folder.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.sync import github_anchor

ROOT = Path(__file__).resolve().parent.parent
LEARNING = ROOT / "learning"
REQUIRED = os.environ.get("COURSE_SITE_REQUIRED") == "1"
MERMAID_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*mermaid\s*$")
ANY_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
# A diagram that is still drawing after this long on a busy machine is a failure to draw: the
# check waits only as long as it must, so a correct site never comes near it.
RENDER_WAIT_S = 30


def _need(ok: bool, reason: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(f"{reason} (COURSE_SITE_REQUIRED=1: CI must run this)")
        pytest.skip(reason)


def _vendor():
    spec = importlib.util.spec_from_file_location("site_vendor", ROOT / "tools/site/vendor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _need_build_tools() -> None:
    _need(importlib.util.find_spec("mkdocs") is not None
          and importlib.util.find_spec("material") is not None,
          "mkdocs-material is not installed (the 'site' extra: pip install -e '.[site]')")
    _need(_vendor().mermaid_ok(),
          "mermaid is not fetched into .vendor/ (run `python tools/site/vendor.py`)")


def _mkdocs_build(config: Path, site_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
                           "-f", str(config), "-d", str(site_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def _source_lines(md: Path) -> list[str]:
    return md.read_text(encoding="utf-8").splitlines()


def _mermaid_blocks(md: Path) -> int:
    """```mermaid blocks in a page's source (a fence inside another fence does not count)."""
    count, fence = 0, None
    for line in _source_lines(md):
        if fence is None:
            if MERMAID_FENCE.match(line):
                count += 1
            match = ANY_FENCE.match(line)
            if match:
                fence = match.group(1)
        elif line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
            fence = None
    return count


def _headings(md: Path) -> list[str]:
    out, fence = [], None
    for line in _source_lines(md):
        match = ANY_FENCE.match(line)
        if match and fence is None:
            fence = match.group(1)
        elif fence is not None and line.strip().startswith(fence) \
                and line.strip().strip(fence[0]) == "":
            fence = None
        elif fence is None and re.match(r"#{1,6} ", line):
            out.append(line.lstrip("#").strip())
    return out


def _page_path(md: Path) -> str:
    """Where mkdocs (use_directory_urls) puts the page of learning/<md>."""
    return "" if md.name == "README.md" else f"{md.stem}/"


class _HeadingIds(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-6]", tag):
            self.ids.extend(v for k, v in attrs if k == "id")


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The real site, built strictly into a temporary folder."""
    _need_build_tools()
    out = tmp_path_factory.mktemp("site") / "site"
    start = time.perf_counter()
    proc = _mkdocs_build(ROOT / "mkdocs.yml", out)
    took = time.perf_counter() - start
    assert proc.returncode == 0, \
        f"`mkdocs build --strict` failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    print(f"site: strict build took {took:.1f} s into {out}")
    return out


def test_the_site_builds_strictly_with_every_page(built_site):
    pages = sorted(LEARNING.glob("*.md"))
    assert any(p.name == "README.md" for p in pages), "learning/README.md (the course map) is gone"
    for md in pages:
        html = built_site / _page_path(md) / "index.html"
        assert html.is_file(), f"learning/{md.name} has no page on the site ({html} is missing)"
    home = (built_site / "index.html").read_text(encoding="utf-8")
    assert 'id="the-course-map"' in home, "the home page is not the course map (learning/README.md)"
    assert (built_site / "search" / "search_index.json").is_file(), "search is not built"
    assert (built_site / "assets/vendor/mermaid/mermaid.min.js").is_file(), \
        "mermaid.min.js is not in the site"
    # Only what ships to learners: no reference solution, hidden grader or instructor-only file.
    leaked = [p for p in ("solutions", "autograder", "course/llama_reference.py")
              if (built_site / p).exists()]
    assert not leaked, f"the site publishes {leaked}"
    for md in pages:
        html = (built_site / _page_path(md) / "index.html").read_text(encoding="utf-8")
        assert "unpkg.com" not in html and "fonts.googleapis" not in html, \
            f"learning/{md.name}: the page loads something from a CDN"
    # Every link on every built page lands on a file of the site (no 404 for a learner),
    # including the lessons' ../exercises/ links.
    broken = []
    for html in sorted(built_site.rglob("*.html")):
        page = "/" + html.relative_to(built_site).as_posix()
        for href in re.findall(r'(?:href|src)="([^"]*)"', html.read_text(encoding="utf-8")):
            parts = urllib.parse.urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            target = urllib.parse.urljoin(page, urllib.parse.unquote(parts.path))
            path = built_site / target.lstrip("/")
            if target.endswith("/"):
                path = path / "index.html"
            if html.name != "404.html" and not path.is_file():
                broken.append(f"{page}: {href}")
    assert not broken, f"{len(broken)} links to nothing on the site:\n" + "\n".join(broken[:40])


def test_heading_ids_are_the_ones_a_forge_gives(built_site):
    """Lessons link `lessonNN.md#anchor` and stubs name `learning/lessonNN.md#anchor`: one anchor
    must work on the forge (GitHub's heading ids) and on the site."""
    problems = []
    for md in sorted(LEARNING.glob("*.md")):
        parser = _HeadingIds()
        parser.feed((built_site / _page_path(md) / "index.html").read_text(encoding="utf-8"))
        site_ids = set(parser.ids)
        for heading in _headings(md):
            if github_anchor(heading) not in site_ids:
                problems.append(f"learning/{md.name}: heading {heading!r} has no id "
                                f"{github_anchor(heading)!r} on the site")
    assert not problems, "\n".join(problems)


def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path):
    """A small docs folder built with the course's config: clean, it builds; with a missing
    anchor, a missing page and a missing exercise stub planted, the build fails naming each."""
    _need_build_tools()
    stub = next(p for p in sorted((ROOT / "exercises").glob("lesson*/*.py")))
    stub_link = "../" + stub.relative_to(ROOT).as_posix()
    fixture = next(p for p in sorted((ROOT / "hardware_fixtures").glob("*.toml")))
    fixture_link = "../" + fixture.relative_to(ROOT).as_posix()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lesson01.md").write_text("# Lesson 01\n\n## A real heading\n\ntext\n")
    clean = textwrap.dedent(f"""\
        # The course map

        ## The lessons

        [a heading](lesson01.md#a-real-heading), [a stub]({stub_link}),
        [a fixture]({fixture_link}), [the map](README.md#the-lessons).
        """)
    planted = clean + textwrap.dedent("""
        [planted anchor](lesson01.md#no-such-heading),
        [planted page](lesson77.md),
        [planted stub](../exercises/lesson01/no_such_stub.py),
        [planted instructor-only file](../course/llama_reference.py).
        """)
    config = tmp_path / "mkdocs.yml"
    config.write_text(textwrap.dedent(f"""\
        INHERIT: {ROOT / 'mkdocs.yml'}
        docs_dir: {docs}
        hooks:
          - {ROOT / 'tools/site/hooks.py'}
        watch: []
        """))

    (docs / "README.md").write_text(clean)
    proc = _mkdocs_build(config, tmp_path / "clean")
    assert proc.returncode == 0, f"the clean docs failed to build:\n{proc.stdout}{proc.stderr}"
    page = tmp_path / "clean" / fixture.relative_to(ROOT).as_posix() / "index.html"
    assert page.is_file(), f"a lesson's link to {fixture_link} got no page ({page})"

    (docs / "README.md").write_text(planted)
    proc = _mkdocs_build(config, tmp_path / "planted")
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"the build passed with broken links planted:\n{log}"
    for needle in ("does not contain an anchor '#no-such-heading'", "'lesson77.md'",
                   "'../exercises/lesson01/no_such_stub.py'", "'../course/llama_reference.py'"):
        assert needle in log, f"the strict build did not report {needle}:\n{log}"


# --- the browser check --------------------------------------------------------------------

# Run before any page script: the theme draws each diagram into a closed shadow root, which the
# check opens so it can see the SVG inside; and errors are also counted in the page, so the
# check stops waiting for a diagram as soon as one is thrown.
PAGE_PROBE = """
window.__siteErrors = [];
addEventListener("error", e => __siteErrors.push(String(e.message || e.type)), true);
addEventListener("unhandledrejection",
                 e => __siteErrors.push("unhandled rejection: " + String(e.reason)));
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attach.call(this, Object.assign({}, init, {mode: "open"}));
};
"""
DIAGRAM_STATE = """
const drawn = [...document.querySelectorAll("div.mermaid")].map(d => {
  const svg = d.shadowRoot && d.shadowRoot.querySelector("svg");
  return svg ? {shapes: svg.querySelectorAll("g, path, rect, polygon").length,
                error: /syntax error/i.test(svg.textContent)} : null;
});
return {waiting: document.querySelectorAll("pre.mermaid").length, drawn: drawn,
        ready: document.readyState, errors: window.__siteErrors || []};
"""


def _browser_paths() -> tuple[str | None, str | None]:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                              "google-chrome-stable") if shutil.which(n)), None)
    return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def served_site(built_site):
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    browser_bin, driver_bin = _browser_paths()
    _need(browser_bin is not None and driver_bin is not None,
          "chromium and chromedriver are not installed "
          "(Debian: apt-get install -y chromium chromium-driver)")
    _need(importlib.util.find_spec("selenium") is not None,
          "selenium is not installed (the 'site' extra)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser_bin
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # never let selenium fetch a driver or a browser
        driver = webdriver.Chrome(options=options, service=Service(driver_bin))
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": PAGE_PROBE})
        yield driver
    finally:
        driver.quit()


def _site_pages(built_site: Path) -> list[tuple[str, int]]:
    """(page path, mermaid blocks expected) for the pages the browser opens: every page of
    learning/ with its count from the source, and the generated pages (exercise files, no
    diagrams) that a learner reaches from them: each exercise folder's index and each file a
    lesson links. With COURSE_SITE_ALL_PAGES=1 (CI), every generated page too: they share one
    template, and on a busy two-core machine the 140 of them take a minute or two."""
    pages = [(_page_path(md), _mermaid_blocks(md)) for md in sorted(LEARNING.glob("*.md"))]
    known = {p for p, _ in pages}
    linked = set()
    for path in known:
        html = (built_site / path / "index.html").read_text(encoding="utf-8")
        for href in re.findall(r'href="([^"#:]+/)(?:#[^"]*)?"', html):
            linked.add(urllib.parse.urljoin("/" + path, href).lstrip("/"))
    every = os.environ.get("COURSE_SITE_ALL_PAGES") == "1"
    for html in sorted(built_site.rglob("index.html")):
        path = html.parent.relative_to(built_site).as_posix()
        path = "" if path == "." else path + "/"
        if path in known or path.startswith(("search/", "assets/")):
            continue
        is_folder = (ROOT / path).is_dir()
        if every or is_folder or path in linked:
            pages.append((path, 0))
    return pages


def _screenshot_dir() -> Path:
    out = Path(os.environ.get("COURSE_SITE_SCREENSHOTS", ROOT / "build" / "site-screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_page(browser, base: str, path: str, expected: int) -> list[str]:
    """Open one page; the problems found: mermaid blocks not drawn as SVG (or drawn as an error),
    console errors (uncaught exceptions, console.error, failed loads), requests that left the
    site."""
    browser.get(base + path)
    deadline = time.monotonic() + RENDER_WAIT_S
    while True:
        state = browser.execute_script(DIAGRAM_STATE)
        if state["ready"] == "complete" and state["waiting"] == 0 and \
                all(d is not None for d in state["drawn"]) and len(state["drawn"]) >= expected:
            break
        if state["errors"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    name, problems = path or "(home)", []
    drawn = [d for d in state["drawn"] if d is not None]
    if state["waiting"] or len(drawn) != expected or len(state["drawn"]) != expected:
        problems.append(f"{name}: {expected} mermaid blocks in the source, "
                        f"{len(drawn)} drawn as SVG, {state['waiting']} never drawn")
    for i, d in enumerate(drawn):
        if d["error"] or d["shapes"] == 0:
            problems.append(f"{name}: diagram {i + 1} is an error or empty ({d})")
    problems += [f"{name}: error in the page: {e}" for e in state["errors"]]
    for entry in browser.get_log("browser"):
        if entry["level"] in ("SEVERE", "ERROR"):
            problems.append(f"{name}: console error: {entry['message']}")
    outside = [u for u in browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
        if not u.startswith(base)]
    if outside:
        problems.append(f"{name}: fetched from outside the site: {outside}")
    return problems


def test_every_page_in_a_headless_browser(built_site, served_site, browser):
    pages = _site_pages(built_site)
    assert sum(n for _, n in pages) > 0, \
        "no ```mermaid block found in learning/: the count is broken"
    problems, start = [], time.perf_counter()
    for path, expected in pages:
        problems += _check_page(browser, served_site, path, expected)
    took = time.perf_counter() - start
    print(f"site: {len(pages)} pages checked in the browser in {took:.1f} s")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)

    # Search works offline: the query finds the lesson it names.
    browser.get(served_site)
    browser.execute_script("document.querySelector('label[for=__search]').click()")
    box = browser.find_element("css selector", "input.md-search__input")
    box.send_keys("PagedAttention")
    deadline = time.monotonic() + RENDER_WAIT_S
    hits: list[str] = []
    while time.monotonic() < deadline and not hits:
        hits = browser.execute_script(
            "return [...document.querySelectorAll('.md-search-result__item a')]"
            ".map(a => a.getAttribute('href'))")
        time.sleep(0.1)
    assert any("lesson12/" in h for h in hits), f"search for PagedAttention found {hits}"

    shots = _screenshot_dir()
    browser.get(served_site)
    browser.save_screenshot(str(shots / "course-map.png"))
    browser.get(served_site + "lesson12/")
    # Scrolled to the first diagram, so the picture shows mermaid drawn.
    browser.execute_script("document.querySelector('div.mermaid').scrollIntoView({block:'center'})")
    time.sleep(0.3)
    browser.save_screenshot(str(shots / "lesson12.png"))
    print(f"site: screenshots of the course map and lesson 12 in {shots}")
    for name in ("course-map.png", "lesson12.png"):
        assert (shots / name).stat().st_size > 10_000, f"{shots / name} is nearly empty"


def test_the_browser_check_catches_planted_faults(browser, tmp_path):
    """A small site built with the course's config, one fault per page: the check reports each
    (so a page that passes it was really drawn, quiet and self-contained) and passes the clean
    page."""
    _need_build_tools()
    docs = tmp_path / "docs"
    docs.mkdir()
    pages = {
        "README.md": "# Map\n\n```mermaid\nflowchart LR\n  A --> B\n```\n",
        "broken.md": "# Broken\n\n```mermaid\nflowchart LR\n  A -->\n```\n",
        "throws.md": '# Throws\n\n<script>throw new Error("planted");</script>\n',
        "outside.md": "# Outside\n\n![x](http://127.0.0.1:9/planted.png)\n",
    }
    for name, text in pages.items():
        (docs / name).write_text(text)
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {docs}\n"
                      f"hooks:\n  - {ROOT / 'tools/site/hooks.py'}\nwatch: []\n")
    site = tmp_path / "site"
    proc = _mkdocs_build(config, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        clean = _check_page(browser, base, "", 1)
        assert clean == [], f"the clean page failed the check: {clean}"
        broken = _check_page(browser, base, "broken/", 1)
        assert broken, "a mermaid block with a syntax error passed the check"
        print("site: the planted faults were reported as", broken)
        throws = _check_page(browser, base, "throws/", 0)
        assert any("planted" in p for p in throws), f"an uncaught error passed: {throws}"
        outside = _check_page(browser, base, "outside/", 0)
        assert any("planted.png" in p for p in outside), f"an outside request passed: {outside}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
