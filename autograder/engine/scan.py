"""Scanning a submission for lines an instructor may want to look at (not scored)."""

from __future__ import annotations

import re
from pathlib import Path

_REVIEW = (
    (re.compile(r"\b(gc\.get_objects|gc\.get_referrers|sys\._getframe|inspect\.(stack|"
                r"currentframe|getouterframes)|f_back|f_locals|f_globals)"),
     "inspects the interpreter (frames, the garbage collector)"),
    (re.compile(r"\b(_pytest|pluginmanager|pytest_\w+\s*\(|conftest)"),
     "touches pytest internals"),
    (re.compile(r"\b(os\._exit|os\.fork|os\.setsid|subprocess|multiprocessing|ctypes|"
                r"signal\.)"), "processes, exits or native code"),
    (re.compile(r"(/proc/|\bsolutions\b|autograder|hidden/|\.jsonl|--record)"),
     "names grader paths or files"),
    (re.compile(r"\b(setattr|__builtins__|builtins\.|sys\.modules|importlib)\b"),
     "rebinds modules or builtins"),
)


def scan_submission(target: Path, lessons: list[str]) -> list[str]:
    """Lines of the submission worth a look (not scored: a hint for the instructor)."""
    notes = []
    for lesson in lessons:
        folder = Path(target) / lesson
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("test_") or path.name == "conftest.py":
                continue
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for number, line in enumerate(lines, 1):
                for pattern, what in _REVIEW:
                    if pattern.search(line.split("#", 1)[0]):
                        notes.append(f"{lesson}/{path.name}:{number}: {what}: "
                                     f"{line.strip()[:100]}")
                        break
    return notes
