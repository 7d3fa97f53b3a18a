"""Generate ``exercises/`` from ``solutions/``: the single-source rule.

A reference solution marks what the learner writes with nbgrader's markers::

    def allocate(self, n: int) -> list[int]:
        \"\"\"... Read: learning/lesson12.md#the-block-allocator\"\"\"
        ### BEGIN SOLUTION
        # hint: pop n ids from the free list; all or nothing
        ...reference code...
        ### END SOLUTION

and ``sync`` writes the stub with each marked region replaced by its ``# hint:`` lines and::

        raise NotImplementedError("lesson12: BlockAllocator.allocate - read learning/lesson12.md#the-block-allocator")

The section is the first ``learning/lessonNN.md#anchor`` named in the docstring of the
enclosing function, else of its class, else of the module; a region without one is an
error, and so is an anchor that is not a heading of that lesson's text. Everything outside
the markers (imports, signatures, docstrings, given helpers) is shared verbatim. Visible
tests (``test_*.py``), ``conftest.py`` and ``__init__.py`` are copied unchanged.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from .shared import LESSON_DIR as _LESSON_DIR

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "# hint:"
_SECTION = re.compile(r"learning/(lesson\d\d)\.md#([a-z0-9\-]+)")


class SyncError(Exception):
    """A solution file that cannot be turned into a stub; the message says where and why."""


@dataclass(frozen=True)
class Region:
    begin: int  # 0-based line index of the BEGIN marker
    end: int  # 0-based line index of the END marker
    qualname: str
    section: str  # "learning/lessonNN.md#anchor"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading (lowercase, punctuation dropped)."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def lesson_anchors(learning_dir: Path, lesson: str) -> set[str]:
    path = learning_dir / f"{lesson}.md"
    if not path.is_file():
        return set()
    anchors = set()
    in_fence = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            anchors.add(github_anchor(line.lstrip("#")))
    return anchors


def _scopes(tree: ast.Module) -> list[tuple[int, int, str, list[ast.AST]]]:
    """(first line, last line, qualified name, [node and its enclosing scopes]) per def."""
    found = []

    def visit(node: ast.AST, prefix: str, chain: list[ast.AST]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                found.append((child.lineno, child.end_lineno, name, [child, *chain]))
                visit(child, name + ".", [child, *chain])
            else:
                visit(child, prefix, chain)

    visit(tree, "", [])
    return found


def find_regions(source: str, filename: str) -> list[Region]:
    lines = source.splitlines()
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise SyncError(f"{filename}:{exc.lineno}: not valid Python: {exc.msg}") from exc
    scopes = _scopes(tree)
    module_doc = ast.get_docstring(tree) or ""
    regions, begin = [], None
    for i, line in enumerate(lines):
        mark = line.strip()
        if mark == BEGIN:
            if begin is not None:
                raise SyncError(f"{filename}:{i + 1}: {BEGIN} inside another region")
            begin = i
        elif mark == END:
            if begin is None:
                raise SyncError(f"{filename}:{i + 1}: {END} without {BEGIN}")
            regions.append(_region(begin, i, scopes, module_doc, filename))
            begin = None
    if begin is not None:
        raise SyncError(f"{filename}:{begin + 1}: {BEGIN} is never closed")
    return regions


def _region(begin, end, scopes, module_doc, filename) -> Region:
    lineno = begin + 1
    inside = [s for s in scopes if s[0] < lineno <= s[1]]
    if not inside:
        raise SyncError(f"{filename}:{lineno}: a solution region must sit inside a function")
    first, last, qualname, chain = max(inside, key=lambda s: s[0])
    docs = [ast.get_docstring(node) or "" for node in chain] + [module_doc]
    for doc in docs:
        match = _SECTION.search(doc)
        if match:
            return Region(begin, end, qualname, match.group(0))
    raise SyncError(f"{filename}:{lineno}: {qualname} names no section to read; add "
                    "'Read: learning/lessonNN.md#anchor' to its docstring")


def stub_source(source: str, lesson: str, filename: str) -> str:
    """The stub text for one solution module."""
    lines = source.splitlines(keepends=True)
    out, last = [], 0
    for region in find_regions(source, filename):
        out.extend(lines[last:region.begin])
        indent = lines[region.begin][: len(lines[region.begin]) - len(lines[region.begin].lstrip())]
        for line in lines[region.begin + 1:region.end]:
            if line.strip().startswith(HINT):
                out.append(indent + line.strip() + "\n")
        message = f"{lesson}: {region.qualname} - read {region.section}"
        out.append(f"{indent}raise NotImplementedError({message!r})\n")
        last = region.end + 1
    out.extend(lines[last:])
    return "".join(out)


def _is_copied(name: str) -> bool:
    return name.startswith("test_") or name in ("conftest.py", "__init__.py")


def expected_files(solutions: Path, learning: Path,
                   lessons: list[str] | None = None) -> dict[Path, str]:
    """Relative path -> text of every file that sync writes under exercises/
    (only those of ``lessons`` when given)."""
    files: dict[Path, str] = {Path("__init__.py"): (solutions / "__init__.py").read_text()
                              if (solutions / "__init__.py").exists() else ""}
    errors = []
    for lesson_dir in sorted(p for p in solutions.iterdir()
                             if p.is_dir() and _LESSON_DIR.match(p.name)
                             and (lessons is None or p.name in lessons)):
        lesson = lesson_dir.name
        anchors = lesson_anchors(learning, lesson)
        for path in sorted(lesson_dir.glob("*.py")):
            rel = Path(lesson) / path.name
            text = path.read_text()
            if _is_copied(path.name):
                files[rel] = text
                continue
            try:
                for region in find_regions(text, str(path)):
                    anchor = region.section.split("#", 1)[1]
                    if not region.section.startswith(f"learning/{lesson}.md#"):
                        errors.append(f"{path}: {region.qualname} points at {region.section},"
                                      f" not at learning/{lesson}.md")
                    elif anchor not in anchors:
                        errors.append(f"{path}: {region.qualname} points at {region.section},"
                                      f" but learning/{lesson}.md has no such heading")
                files[rel] = stub_source(text, lesson, str(path))
            except SyncError as exc:
                errors.append(str(exc))
        for data in sorted(p for p in lesson_dir.iterdir() if p.is_file()
                           and p.suffix in (".json", ".txt", ".toml")):
            files[Path(lesson) / data.name] = data.read_text()
    if errors:
        raise SyncError("\n".join(errors))
    return files


def _existing(exercises: Path, lessons: list[str] | None = None) -> dict[Path, str]:
    found = {}
    if (exercises / "__init__.py").exists():
        found[Path("__init__.py")] = (exercises / "__init__.py").read_text()
    for lesson_dir in sorted(p for p in exercises.glob("lesson*") if p.is_dir()
                             and (lessons is None or p.name in lessons)):
        for path in lesson_dir.iterdir():
            if path.is_file() and path.suffix in (".py", ".json", ".txt", ".toml"):
                found[path.relative_to(exercises)] = path.read_text()
    return found


def diff(root: Path, lessons: list[str] | None = None) -> list[str]:
    """Unified diff lines between exercises/ on disk and what sync would write."""
    want = expected_files(root / "solutions", root / "learning", lessons)
    have = _existing(root / "exercises", lessons)
    lines = []
    for rel in sorted(set(want) | set(have)):
        a, b = have.get(rel), want.get(rel)
        if a == b:
            continue
        lines.extend(difflib.unified_diff(
            (a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
            fromfile=f"exercises/{rel}" if a is not None else "/dev/null",
            tofile=f"exercises/{rel} (from solutions/)" if b is not None else "/dev/null"))
    return lines


def write(root: Path, lessons: list[str] | None = None) -> list[Path]:
    """Write exercises/ from solutions/; remove generated files whose source is gone."""
    want = expected_files(root / "solutions", root / "learning", lessons)
    have = _existing(root / "exercises", lessons)
    changed = []
    for rel in sorted(set(have) - set(want)):
        (root / "exercises" / rel).unlink()
        changed.append(rel)
    for rel, text in sorted(want.items()):
        if have.get(rel) != text:
            target = root / "exercises" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(rel)
    return changed
