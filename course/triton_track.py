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

import functools
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


# -- launch helpers shared by the split-KV kernels (lessons 12 and 16) ---------------------------

H200_SMS = 132  # streaming multiprocessors of an H200 (NVIDIA H200 datasheet); the CPU's stand-in
# Splits come in powers of two, up to about TARGET_WAVES programs per SM. On an H200 (bf16,
# tools/tune_paged_decode.py, 2026-11-30 and 12-01) 4 x 32k tokens ran at 0.79x dense SDPA with 9
# splits and 0.98x with 16; 16 x 16k at 0.93x with 3, 0.96x with 4 and 0.78x with 5 (a short
# last split): a power of two divides the usual power-of-two context lengths evenly.
TARGET_WAVES = 4  # programs per SM that stage 1 aims for
MIN_TILES_PER_SPLIT = 4  # a split walks at least this many tiles (when there are any)


def interpreting() -> bool:
    """Whether Triton kernels run in the interpreter (``TRITON_INTERPRET`` set and not 0)."""
    return os.environ.get(INTERPRET_ENV, "0") not in ("", "0")


def sm_count(device) -> int:
    """Streaming multiprocessors of a CUDA device; an H200's count for the CPU interpreter."""
    import torch

    if device.type == "cuda":
        return _cuda_sms(device.index if device.index is not None else
                         torch.cuda.current_device())
    return H200_SMS


@functools.lru_cache(maxsize=None)
def _cuda_sms(index: int) -> int:
    import torch

    return torch.cuda.get_device_properties(index).multi_processor_count


def choose_num_splits(batch: int, n_kv_heads: int, longest: int, sms: int, block_n: int) -> int:
    """How many pieces a split-KV kernel cuts each sequence into.

    ``batch * n_kv_heads`` programs without a split; the largest power of two of splits that
    gives every SM at most about ``TARGET_WAVES`` programs, but never a split shorter than
    ``MIN_TILES_PER_SPLIT`` tiles of ``block_n`` tokens (a short split spends more on its
    partial result than on its tokens), and at least 1.
    """
    programs = max(batch * n_kv_heads, 1)
    wanted = max(TARGET_WAVES * sms // programs, 1)
    most = max(longest // (MIN_TILES_PER_SPLIT * block_n), 1)
    return 1 << (min(wanted, most).bit_length() - 1)  # a power of two, >= 1


def tokens_per_split(longest: int, num_splits: int, block_n: int) -> int:
    """Tokens each split walks: ``longest / num_splits`` rounded up to whole tiles (>= 1 tile)."""
    per = -(-max(longest, 1) // max(num_splits, 1))
    return -(-per // block_n) * block_n
