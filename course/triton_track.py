"""Shared plumbing of the optional kernel track (Triton kernels of lessons 10, 12, 15 and 16).

Triton is an optional extra (``pip install -e ".[kernels]"``; Linux wheels only). A kernel
written in Triton runs two ways:

* compiled, on a CUDA GPU, with CUDA tensors: the speed the GPU graders measure;
* interpreted, on the CPU, with CPU tensors (``TRITON_INTERPRET=1``): every program of the
  launch grid runs one after another in Python on numpy arrays. Slow, but exact enough to
  check a kernel's indexing, masking and arithmetic on a machine without a GPU.

A test module of the kernel track starts with::

    from course.triton_track import import_triton, kernel_device
    triton = import_triton()          # skips the module, saying why, when Triton is absent
    DEVICE = kernel_device()          # "cuda" when a GPU is there, else "cpu" (interpreted)

before it imports the module under test: the interpreter is chosen when a kernel is
decorated with ``@triton.jit``, that is when its module is imported.
"""

from __future__ import annotations

import importlib.util
import os

INTERPRET_ENV = "TRITON_INTERPRET"
MISSING_REASON = ("the kernel track needs Triton, an optional extra: pip install -e \".[kernels]\" "
                  "(Linux only); every other test of the lesson runs without it")


def triton_available() -> bool:
    """Whether Triton can be imported (without importing it)."""
    return importlib.util.find_spec("triton") is not None


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def kernel_device() -> str:
    """Where the kernel track's tests put their tensors: ``cuda`` with a GPU, else ``cpu``."""
    return "cuda" if _gpu() and os.environ.get(INTERPRET_ENV, "0") in ("", "0") else "cpu"


def import_triton():
    """Import Triton for a test module of the kernel track; skip the module when it is absent.

    Without a CUDA GPU, sets ``TRITON_INTERPRET=1`` first (unless it is set already), so
    kernels run in Triton's interpreter on CPU tensors.
    """
    import pytest

    if not triton_available():
        pytest.skip(MISSING_REASON, allow_module_level=True)
    if not _gpu():
        os.environ.setdefault(INTERPRET_ENV, "1")
    import triton

    return triton
