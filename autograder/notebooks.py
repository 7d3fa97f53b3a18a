"""Generate the learner notebooks ``notebooks/lessonNN.ipynb`` from their single source.

Each notebook is written as a Python script in the "percent" format (the one jupytext reads):
``notebooks/lessonNN.py``, cells separated by ``# %%`` lines, text cells by
``# %% [markdown]`` with every line of the text commented::

    # %% [markdown]
    # # Lesson 12: paged attention
    # Try the block allocator on your own stubs.

    # %%
    from autograder.lab import setup
    setup("lesson12")

``autograder sync`` writes the ``.ipynb`` beside its source (no outputs, fixed cell ids, sorted
keys: the same source always gives the same bytes) and ``autograder sync --check`` fails when
one is stale or edited by hand, as for ``exercises/``. The release ships the notebooks, not
their sources. A source is plain Python, so it can be linted and diffed; cells hold no IPython
magics (``autograder.lab.setup`` turns on autoreload itself).
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

NOTEBOOK_DIR = "notebooks"
_SOURCE = re.compile(r"^(lesson\d\d|capstone)\.py$")
_CELL = re.compile(r"^# %%(?:\s+\[(\w+)\])?\s*$")


class NotebookError(Exception):
    """A notebook source that cannot be converted; the message says where and why."""


def parse_percent(text: str, filename: str = "<source>") -> list[tuple[str, str]]:
    """``[(cell_type, source), ...]`` of a percent-format script."""
    cells: list[tuple[str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        marker = _CELL.match(line)
        if marker:
            kind = marker.group(1) or "code"
            if kind not in ("code", "markdown"):
                raise NotebookError(f"{filename}:{number}: unknown cell kind [{kind}] "
                                    "(use `# %%` or `# %% [markdown]`)")
            cells.append((kind, []))
            continue
        if not cells:
            if line.strip():
                raise NotebookError(f"{filename}:{number}: text before the first `# %%` line")
            continue
        kind, lines = cells[-1]
        if kind == "markdown":
            if line and not line.startswith("#"):
                raise NotebookError(f"{filename}:{number}: a markdown cell's lines start "
                                    f"with '#': {line!r}")
            line = line[2:] if line.startswith("# ") else line[1:]
        lines.append(line)
    out = []
    for kind, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            raise NotebookError(f"{filename}: an empty {kind} cell")
        out.append((kind, "\n".join(lines)))
    if not out:
        raise NotebookError(f"{filename}: no cells")
    return out


def to_ipynb(text: str, name: str, filename: str = "<source>") -> str:
    """The notebook (nbformat 4.5 JSON text) of a percent-format source."""
    cells = []
    for index, (kind, source) in enumerate(parse_percent(text, filename)):
        cell = {"cell_type": kind, "id": f"{name}-{index:02d}", "metadata": {},
                "source": source.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "course": {"generated_from": f"{NOTEBOOK_DIR}/{name}.py",
                       "regenerate_with": "autograder sync"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def sources(root: Path) -> list[Path]:
    folder = root / NOTEBOOK_DIR
    return sorted(p for p in folder.glob("*.py") if _SOURCE.match(p.name)) if folder.is_dir() else []


def expected(root: Path, lessons: list[str] | None = None) -> dict[Path, str]:
    """Relative path -> text of every notebook sync writes (only ``lessons`` when given)."""
    files, errors = {}, []
    for source in sources(root):
        if lessons is not None and source.stem not in lessons:
            continue
        try:
            files[source.with_suffix(".ipynb").relative_to(root)] = to_ipynb(
                source.read_text(), source.stem, str(source.relative_to(root)))
        except NotebookError as exc:
            errors.append(str(exc))
    if errors:
        raise NotebookError("\n".join(errors))
    return files


def _existing(root: Path, lessons: list[str] | None) -> dict[Path, str]:
    folder = root / NOTEBOOK_DIR
    if not folder.is_dir():
        return {}
    return {p.relative_to(root): p.read_text() for p in sorted(folder.glob("*.ipynb"))
            if _SOURCE.match(p.stem + ".py") and (lessons is None or p.stem in lessons)}


def diff(root: Path, lessons: list[str] | None = None) -> list[str]:
    """Unified diff lines between the notebooks on disk and what sync would write."""
    want, have = expected(root, lessons), _existing(root, lessons)
    lines = []
    for rel in sorted(set(want) | set(have)):
        a, b = have.get(rel), want.get(rel)
        if a != b:
            lines.extend(difflib.unified_diff(
                (a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
                fromfile=str(rel) if a is not None else "/dev/null",
                tofile=f"{rel} (from {rel.with_suffix('.py')})" if b is not None else "/dev/null"))
    return lines


def write(root: Path, lessons: list[str] | None = None) -> list[Path]:
    """Write every notebook from its source; remove notebooks whose source is gone."""
    want, have = expected(root, lessons), _existing(root, lessons)
    changed = []
    for rel in sorted(set(have) - set(want)):
        (root / rel).unlink()
        changed.append(rel)
    for rel, text in sorted(want.items()):
        if have.get(rel) != text:
            (root / rel).write_text(text)
            changed.append(rel)
    return changed
