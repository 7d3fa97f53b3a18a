"""mkdocs hooks for the course site (mkdocs.yml: `hooks:`).

- The navigation is generated from the files in `learning/`: the course map (README.md, the
  home page), the lessons in order, then every other page (the capstone, the resources), then
  the exercises. A new `learning/*.md` appears on the site without editing any list.
- Lesson text links its stubs as `../exercises/lessonNN/file.py`, which works on a forge but
  points outside the site. Every file under `exercises/` becomes a page of the site
  (`exercises/lessonNN/file.py/`, the code highlighted, with how to run its tests), each folder
  gets an index page, and those links are pointed at the pages. A link from a lesson to a file
  of `course/` or `hardware_fixtures/` (both ship to learners; the instructor-only files of
  `autograder.release.INSTRUCTOR_ONLY` do not) gets a page the same way. A link to anything
  else outside `learning/`, or to a file that does not exist, is left alone, so the strict build
  fails on it.
- mermaid.js is served from the site's own files (see tools/site/vendor.py), never a CDN: a
  page with a diagram loads it with a script tag, which defines the global `mermaid` that
  mkdocs-material uses instead of fetching one from its CDN. Pages without a diagram do not
  load it (3.5 MB of JavaScript).
"""
from __future__ import annotations

import ast
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vendor  # noqa: E402

ROOT = vendor.ROOT
EXERCISES = ROOT / "exercises"
# Besides exercises/ (every file gets a page), the folders whose files get a page when a lesson
# links one: they ship to learners in the student release.
LINKABLE = ("course", "hardware_fixtures")
TEXT_SUFFIXES = {".py": "python", ".toml": "toml", ".json": "json", ".txt": "text",
                 ".md": "markdown", ".yml": "yaml", ".yaml": "yaml"}
MERMAID_URI = "assets/vendor/mermaid/mermaid.min.js"
LESSON = re.compile(r"lesson(\d\d)\.md$")
# A Markdown link or reference definition whose target leaves learning/ for a published folder
REPO_LINK = re.compile(r"(\]\(\s*<?|^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?)"
                       r"\.\./((?:exercises|course|hardware_fixtures)(?:/[^)\s>#]*)?)"
                       r"(#[^)\s>]*)?", re.M)
FRONT_MATTER = "---\nsearch:\n  exclude: true\n---\n\n"  # search finds the lessons, not code

# repository path -> site page (src_uri), filled by on_files
_PAGES: dict[str, str] = {}


def _instructor_only() -> set[str]:
    """autograder.release.INSTRUCTOR_ONLY, read from the source (no import of the grader)."""
    tree = ast.parse((ROOT / "autograder" / "release.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "INSTRUCTOR_ONLY" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise SystemExit("site: autograder/release.py has no INSTRUCTOR_ONLY")


def _exercise_files() -> list[Path]:
    if not EXERCISES.is_dir():
        return []
    return sorted(p for p in EXERCISES.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix in TEXT_SUFFIXES)


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    return "`" * max(3, longest + 1)


def _lesson_link(folder: str, depth: int, docs_dir: Path) -> str:
    """'lesson 12' linked to its text when learning/lesson12.md exists."""
    match = re.fullmatch(r"lesson(\d\d)", folder)
    if match and (docs_dir / f"{folder}.md").is_file():
        return f"[lesson {match.group(1)}]({'../' * depth}{folder}.md)"
    return f"`{folder}`"


def _file_page(path: Path, docs_dir: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    text = path.read_text(encoding="utf-8", errors="replace")
    fence = _fence(text)
    code = f"{fence}{TEXT_SUFFIXES[path.suffix]}\n{text.rstrip()}\n{fence}\n"
    if path.is_relative_to(EXERCISES):
        parts = path.relative_to(EXERCISES).parts
        folder = parts[0] if len(parts) > 1 else "exercises"
        kind = "visible tests" if path.name.startswith("test_") else "file"
        run = f"`pytest exercises/{folder}`" if folder.startswith("lesson") else "its tests"
        intro = (f"A {kind} of {_lesson_link(folder, len(parts), docs_dir)}, as it is in your "
                 f"checkout at `{rel}`. Edit it there and run {run} to check your work. "
                 f"[All files of this exercise](index.md).")
    else:
        intro = (f"A file the course gives you (you read it, you do not write it), as it is in "
                 f"your checkout at `{rel}`.")
    return f"{FRONT_MATTER}# {rel}\n\n{intro}\n\n{code}"


def _index_page(folder: Path, docs_dir: Path) -> str:
    rel = folder.relative_to(ROOT).as_posix()
    depth = len(folder.relative_to(EXERCISES).parts) + 1  # exercises/<folder>/index.md -> 2
    if folder == EXERCISES:
        lines = [f"{FRONT_MATTER}# exercises/\n",
                 "The stubs you fill in and their visible tests, one folder per lesson, as in "
                 "your checkout at `exercises/`.\n"]
    else:
        lines = [f"{FRONT_MATTER}# {rel}/\n",
                 f"The files of {_lesson_link(folder.name, depth, docs_dir)} you work in, as "
                 f"in your checkout at `{rel}/`.\n"]
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            lines.append(f"- [{path.name}]({path.name}.md)")
        elif path.is_dir() and path.name != "__pycache__":
            lines.append(f"- [{path.name}/]({path.name}/index.md)")
    return "\n".join(lines) + "\n"


def on_config(config):
    docs_dir = Path(config["docs_dir"])
    pages = sorted(p.name for p in docs_dir.glob("*.md"))
    lessons = [p for p in pages if LESSON.match(p)]
    nav: list = []
    if "README.md" in pages:
        nav.append({"Course map": "README.md"})
    nav.append({"Lessons": lessons})
    nav.extend(sorted((p for p in pages if p != "README.md" and p not in lessons), key=str.lower))
    if _exercise_files():
        nav.append({"Exercises": "exercises/index.md"})
    config["nav"] = nav
    return config


def on_files(files: Files, config) -> Files:
    docs_dir = Path(config["docs_dir"])
    _PAGES.clear()

    def add(rel: str, uri: str, content: str) -> None:
        files.append(File.generated(config, uri, content=content))
        _PAGES[rel] = uri

    exercise_files = _exercise_files()
    for path in exercise_files:
        rel = path.relative_to(ROOT).as_posix()
        add(rel, rel + ".md", _file_page(path, docs_dir))
    for folder in sorted({p.parent for p in exercise_files} | {EXERCISES}):
        if folder.is_dir():
            rel = folder.relative_to(ROOT).as_posix()
            add(rel, rel + "/index.md", _index_page(folder, docs_dir))

    # Files of course/ and hardware_fixtures/ that a page links.
    hidden = _instructor_only()
    for md in sorted(docs_dir.glob("*.md")):
        for match in REPO_LINK.finditer(md.read_text(encoding="utf-8")):
            rel = posixpath.normpath(match.group(2))
            path = ROOT / rel
            if (rel.split("/")[0] in LINKABLE and rel not in _PAGES and rel not in hidden
                    and path.is_file() and path.suffix in TEXT_SUFFIXES):
                add(rel, rel + ".md", _file_page(path, docs_dir))

    try:
        js = vendor.fetch_mermaid()
    except vendor.VendorError as exc:
        raise SystemExit(f"site: {exc}") from None
    files.append(File.generated(config, MERMAID_URI, abs_src_path=str(js)))
    files.append(File.generated(config, "assets/vendor/mermaid/LICENSE",
                                abs_src_path=str(vendor.MERMAID_LICENSE)))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Point `../exercises/...` (and linked course/, hardware_fixtures/) links at their pages;
    a link to a file without a page is left alone, for the strict build to report."""
    if page.file.generated_by is not None:
        return markdown
    up = "../" * page.file.src_uri.count("/")

    def repl(match: re.Match) -> str:
        lead, rel, anchor = match.group(1), posixpath.normpath(match.group(2)), match.group(3)
        uri = _PAGES.get(rel)
        return f"{lead}{up}{uri}{anchor or ''}" if uri else match.group(0)

    markdown = REPO_LINK.sub(repl, markdown)
    # Each lesson's page ends with a link to its exercise files (on the site only).
    lesson = LESSON.fullmatch(page.file.src_uri)
    if lesson and f"exercises/lesson{lesson.group(1)}" in _PAGES:
        folder = f"exercises/lesson{lesson.group(1)}"
        markdown += (f"\n\n---\n\nThe files you work in for this lesson: "
                     f"[{folder}/]({up}{_PAGES[folder]}).\n")
    return markdown


def on_post_page(output: str, page, config) -> str:
    """Load mermaid.js (from the site) on the pages that have a diagram."""
    if 'class="mermaid"' not in output:
        return output
    src = "../" * page.url.count("/") + MERMAID_URI
    tag = f'<script src="{src}"></script>'
    head, sep, tail = output.rpartition("</body>")
    if not sep:
        raise SystemExit(f"site: {page.file.src_uri} has no </body> to load mermaid before")
    return f"{head}{tag}\n{sep}{tail}"
