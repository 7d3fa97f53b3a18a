"""mkdocs hooks for the course site (mkdocs.yml: `hooks:`).

- The navigation is generated from the files in `learning/`: the course map (README.md, the
  home page), the lessons in order, then every other page (the capstone, the resources). A new
  `learning/*.md` appears on the site without editing any list.
- Lesson text links its stubs as `../exercises/lessonNN/file.py`, which works on a forge but
  points outside the site. Every file under `exercises/` becomes a page of the site
  (`exercises/lessonNN/file.py/`, the code highlighted, with how to run its tests), each folder
  gets an index page, and those links are pointed at the pages. A link to a stub that does not
  exist is left alone, so the strict build fails on it.
- mermaid.js is served from the site's own files (see tools/site/vendor.py), never a CDN: a
  page with a diagram loads it with a script tag, which defines the global `mermaid` that
  mkdocs-material uses instead of fetching one from its CDN. Pages without a diagram do not
  load it (3.5 MB of JavaScript).
"""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vendor  # noqa: E402

log = logging.getLogger("mkdocs.hooks.course")

ROOT = vendor.ROOT
EXERCISES = ROOT / "exercises"
MERMAID_URI = "assets/vendor/mermaid/mermaid.min.js"
LESSON = re.compile(r"lesson(\d\d)\.md$")
# A Markdown link or reference definition whose target starts with ../exercises/
EXERCISE_LINK = re.compile(r"(\]\(\s*<?|^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?)"
                           r"\.\./exercises/([^)\s>#]*)(#[^)\s>]*)?", re.M)


def _exercise_files() -> list[Path]:
    if not EXERCISES.is_dir():
        return []
    return sorted(p for p in EXERCISES.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"))


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    return "`" * max(3, longest + 1)


def _lesson_link(folder: str, depth: int, docs_dir: Path) -> str:
    """'lesson 12' linked to its text when learning/lesson12.md exists."""
    match = re.fullmatch(r"lesson(\d\d)", folder)
    if match and (docs_dir / f"{folder}.md").is_file():
        return f"[lesson {match.group(1)}]({'../' * depth}{folder}.md)"
    return f"`{folder}`"


def _stub_page(path: Path, docs_dir: Path) -> str:
    rel = path.relative_to(ROOT).as_posix()
    parts = path.relative_to(EXERCISES).parts
    folder = parts[0] if len(parts) > 1 else "exercises"
    depth = len(path.relative_to(EXERCISES).parts)  # exercises/<folder>/<name>.md -> 2
    text = path.read_text(encoding="utf-8", errors="replace")
    lang = {".py": "python", ".toml": "toml", ".json": "json"}.get(path.suffix, "text")
    kind = "visible tests" if path.name.startswith("test_") else "file"
    fence = _fence(text)
    run = f"`pytest exercises/{folder}`" if folder.startswith("lesson") else "its tests"
    # Search finds the lesson text; the stubs themselves are in the learner's checkout.
    return ("---\nsearch:\n  exclude: true\n---\n\n"
            f"# {rel}\n\n"
            f"A {kind} of {_lesson_link(folder, depth, docs_dir)}, as it is in your checkout at "
            f"`{rel}`. Edit it there and run {run} to check your work. "
            f"[All files of this exercise](index.md).\n\n"
            f"{fence}{lang}\n{text.rstrip()}\n{fence}\n")


def _index_page(folder: Path, docs_dir: Path) -> str:
    rel = folder.relative_to(ROOT).as_posix()
    depth = len(folder.relative_to(EXERCISES).parts) + 1  # exercises/<folder>/index.md -> 2
    if folder == EXERCISES:
        lines = ["---\nsearch:\n  exclude: true\n---\n", "# exercises/\n",
                 "The stubs you fill in and their visible tests, one folder per lesson, as in "
                 "your checkout at `exercises/`.\n"]
    else:
        lines = ["---\nsearch:\n  exclude: true\n---\n", f"# {rel}/\n",
                 f"The files of {_lesson_link(folder.name, depth, docs_dir)} you work in, as "
                 f"in your checkout at `{rel}/`.\n"]
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.endswith(".pyc"):
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
    nav.extend(p for p in pages if p != "README.md" and p not in lessons)
    if _exercise_files():
        nav.append({"Exercises": "exercises/index.md"})
    config["nav"] = nav
    return config


def on_files(files: Files, config) -> Files:
    docs_dir = Path(config["docs_dir"])
    for path in _exercise_files():
        uri = path.relative_to(ROOT).as_posix() + ".md"
        files.append(File.generated(config, uri, content=_stub_page(path, docs_dir)))
    folders = {p.parent for p in _exercise_files()} | {EXERCISES}
    for folder in sorted(folders):
        if folder.is_dir():
            uri = folder.relative_to(ROOT).as_posix() + "/index.md"
            files.append(File.generated(config, uri, content=_index_page(folder, docs_dir)))
    try:
        js = vendor.fetch_mermaid()
    except vendor.VendorError as exc:
        raise SystemExit(f"site: {exc}") from None
    files.append(File.generated(config, MERMAID_URI, abs_src_path=str(js)))
    files.append(File.generated(config, "assets/vendor/mermaid/LICENSE",
                                abs_src_path=str(vendor.MERMAID_LICENSE)))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Point `../exercises/...` links at the exercise pages (left alone if no such file)."""
    def repl(match: re.Match) -> str:
        lead, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        path = EXERCISES / target
        up = "../" * page.file.src_uri.count("/")
        if path.is_file():
            return f"{lead}{up}exercises/{target}.md{anchor}"
        if path.is_dir() and target:
            return f"{lead}{up}exercises/{target.rstrip('/')}/index.md{anchor}"
        return match.group(0)
    if page.file.generated_by is not None:
        return markdown
    markdown = EXERCISE_LINK.sub(repl, markdown)
    # Each lesson's page ends with a link to its exercise files (on the site only).
    lesson = LESSON.fullmatch(page.file.src_uri)
    if lesson and (EXERCISES / f"lesson{lesson.group(1)}").is_dir():
        folder = f"exercises/lesson{lesson.group(1)}"
        markdown += (f"\n\n---\n\nThe files you work in for this lesson: "
                     f"[{folder}/]({folder}/index.md).\n")
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
