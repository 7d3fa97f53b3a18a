"""Lesson 08, part 2: RMSNorm + RoPE fused, and the bytes fusion saves.
Run: pytest exercises/lesson08

References: course.hf_layers (torch's rms_norm, transformers' apply_rotary_pos_emb) for the
values, and course.traffic.count_traffic on that eager chain for the bytes it moves."""

import pytest
import torch

from course.config import SMOLLM2_135M
from course.hf_layers import hf_apply_rope, hf_rms_norm, hf_rope_cos_sin
from course.testing import assert_close
from course.traffic import count_traffic
from exercises.lesson08.fusion import fused_rmsnorm_rope, rmsnorm_rope_bytes

REFERENCE = "hf_rms_norm then hf_apply_rope (course.hf_layers)"


def unfused(x, weight, cos, sin, eps):
    normed = hf_rms_norm(x, weight, eps)
    return hf_apply_rope(normed, normed[:, :0], cos, sin)[0]  # queries only: k with no heads


def inputs(batch, heads, tokens, d_head, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, heads, tokens, d_head, generator=g)
    x = x * torch.rand(batch, heads, tokens, 1, generator=g) * 10  # rows of different scales
    weight = 1 + 0.1 * torch.randn(d_head, generator=g)
    cos, sin = hf_rope_cos_sin(SMOLLM2_135M, torch.arange(3, 3 + tokens))
    return x.to(dtype), weight.to(dtype), cos[:, :d_head], sin[:, :d_head]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)],
                         ids=["float32", "bfloat16"])
def test_fused_equals_rms_norm_then_rope(dtype, tol):
    x, weight, cos, sin = inputs(2, 3, 5, 64, dtype)
    got = fused_rmsnorm_rope(x, weight, cos, sin, 1e-6)
    assert got.dtype == dtype and got.shape == x.shape
    assert_close(got, unfused(x, weight, cos, sin, 1e-6), atol=tol, rtol=tol,
                 what=f"fused_rmsnorm_rope ({dtype})", reference=REFERENCE)


def test_fused_is_one_graph_for_torch_compile():
    # TorchDynamo captures the function as one graph (fullgraph=True refuses a graph break:
    # .item(), a Python branch on a tensor's value, printing a tensor); the "eager" backend then
    # runs that graph without generating code, so the check is quick on any machine.
    x, weight, cos, sin = inputs(1, 2, 3, 16, torch.float32)
    want = fused_rmsnorm_rope(x, weight, cos, sin, 1e-6)
    compiled = torch.compile(fused_rmsnorm_rope, backend="eager", fullgraph=True)
    assert_close(compiled(x, weight, cos, sin, 1e-6), want, atol=1e-6, rtol=1e-6,
                 what="fused_rmsnorm_rope captured by torch.compile",
                 reference="fused_rmsnorm_rope run eagerly")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_unfused_bytes_match_a_count_of_the_eager_chain(dtype):
    x, weight, cos, sin = inputs(1, 2, 4, 64, dtype)
    counted = count_traffic(unfused, x, weight, cos, sin, 1e-6)
    got = rmsnorm_rope_bytes(1, 2, 4, 64, x.element_size(), fused=False)
    assert got == counted.total_bytes, (
        f"rmsnorm_rope_bytes(fused=False) = {got:,} B; the eager chain moved "
        f"{counted.total_bytes:,} B, op by op:\n{counted.report()}\n(The docstring's table lists "
        "these ops as torch 2.13 runs them on the CPU; if the list above differs, your torch "
        "splits the chain differently: tell your instructor.)")


def test_fused_bytes_are_inputs_and_output_only():
    x, weight, cos, sin = inputs(1, 2, 4, 64, torch.bfloat16)
    want = x.nbytes + weight.nbytes + cos.nbytes + sin.nbytes + x.nbytes
    assert rmsnorm_rope_bytes(1, 2, 4, 64, 2, fused=True) == want == 4224
