"""The kernel track's interpreter works whatever imported Triton first.

Triton picks the interpreter when a function is decorated with ``@triton.jit``. torch imports
Triton for some of its utilities (``torch.utils.flop_counter``, used by ``course.counting``),
so in a test process that imported ``course.counting`` first, Triton's own library functions
(``tl.max``, ``tl.sum``) were decorated in compiled mode, and an interpreted kernel calling
them failed. ``course.triton_track.import_triton`` repairs that; this checks it in a fresh
process, in the order the grading child imports things.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from course.triton_track import triton_available

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
import course.counting                 # imports triton while the interpreter is off
assert "triton" in sys.modules
from course.triton_track import import_triton
triton = import_triton()               # no GPU here: chooses the interpreter
import torch
import triton.language as tl

@triton.jit
def row_max(x_ptr, out_ptr, N: tl.constexpr):
    i = tl.arange(0, N)
    tl.store(out_ptr, tl.max(tl.load(x_ptr + i), axis=0) + tl.sum(tl.load(x_ptr + i), axis=0))

x = torch.arange(16, dtype=torch.float32)
out = torch.zeros(1)
row_max[(1,)](x, out, N=16)
assert out.item() == 15 + 120, out
print("ok")
"""


@pytest.mark.skipif(not triton_available(), reason="Triton is an optional extra")
def test_interpreted_kernel_calls_tl_max_after_an_early_triton_import():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin",
                                                       "PYTHONPATH": str(ROOT),
                                                       "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
