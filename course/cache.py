"""Where the real model's converted files are cached: the one definition of that folder.

``$COURSE_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/llm-inference-course``, else
``~/.cache/llm-inference-course``. Used by :mod:`course.model` (which fills it) and by the
grader (which fills it before graded code runs and shows it to that code read-only). This
module imports nothing heavy, so the grader can read the path without importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "COURSE_CACHE_DIR"
FOLDER_NAME = "llm-inference-course"


def model_cache_dir() -> Path:
    """The cache folder (not created here)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / FOLDER_NAME


def unwritable_message(folder: Path, err: OSError | str) -> str:
    """One line for a cache folder this user cannot write (read-only, or another user's)."""
    return (f"the model cache folder {folder} cannot be written by this user ({err}): "
            f"set {ENV_VAR} to a folder you own (e.g. export {ENV_VAR}=$HOME/.cache/"
            f"{FOLDER_NAME}-$USER), or ask its owner to fill it (python -c 'from course "
            "import model; model.load_weights()')")
