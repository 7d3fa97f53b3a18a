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

    _interpret_library_functions()
    return triton


def _interpret_library_functions() -> None:
    """Make Triton's own ``@triton.jit`` functions (``tl.max``, ``tl.sum``, ...) interpreted.

    Triton chooses the interpreter when each function is decorated, so its library functions
    are compiled-mode objects when ``triton`` was imported before ``TRITON_INTERPRET`` was set
    (torch imports it for some of its utilities, ``torch.utils.flop_counter`` among them,
    which ``course.counting`` uses). An interpreted kernel that calls one of them then fails
    with "Cannot call @triton.jit'd outside of the scope of a kernel". Re-running those
    modules with the interpreter chosen replaces them; nothing happens when the interpreter
    is off or they are interpreted already.
    """
    if os.environ.get(INTERPRET_ENV, "0") in ("", "0"):
        return
    import importlib

    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    if isinstance(tl.standard.max, InterpretedFunction):
        return
    importlib.reload(tl.standard)
    importlib.reload(tl.random)
    importlib.reload(tl)
