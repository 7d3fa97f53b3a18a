"""Hidden grader, lesson 08: fused RMSNorm + RoPE, and the bytes model of the eager chain.

References: course.hf_layers (torch's rms_norm, transformers' apply_rotary_pos_emb) for the
values; course.traffic.count_traffic on that eager chain for the bytes it moves; the sizes of
the inputs and the output for the fused kernel.
"""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.config import SMOLLM2_135M
from course.hf_layers import hf_apply_rope, hf_rms_norm, hf_rope_cos_sin
from course.testing import assert_close
from course.traffic import count_traffic
from exercises.lesson08.fusion import fused_rmsnorm_rope, rmsnorm_rope_bytes

REFERENCE = "hf_rms_norm then hf_apply_rope (course.hf_layers)"
TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}


def reference(x, weight, cos, sin, eps):
    normed = hf_rms_norm(x, weight, eps)
    return hf_apply_rope(normed, normed[:, :0], cos, sin)[0]


def tables(tokens, d_head, start, seed):
    """Real RoPE tables (SmolLM2, d_head 64) at positions start.., or random ones otherwise."""
    if d_head == 64:
        return hf_rope_cos_sin(SMOLLM2_135M, torch.arange(start, start + tokens))
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tokens, d_head, generator=g), torch.randn(tokens, d_head, generator=g)


def make(batch, heads, tokens, d_head, dtype, seed, start=0, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, heads, tokens, d_head, generator=g)
    scale = 10 ** (spread * (torch.rand(batch, heads, tokens, 1, generator=g) - 0.5))
    weight = 1 + 0.5 * torch.randn(d_head, generator=g)
    cos, sin = tables(tokens, d_head, start, seed)
    return (x * scale).to(dtype), weight.to(dtype), cos, sin


def check(x, weight, cos, sin, eps, what):
    want = reference(x, weight, cos, sin, eps)
    got = fused_rmsnorm_rope(x, weight, cos, sin, eps)
    assert got.dtype == x.dtype, f"{what}: returned {got.dtype} for {x.dtype} input"
    tol = TOL[x.dtype]
    assert_close(got, want, atol=tol, rtol=tol, what=what, reference=REFERENCE)


@pytest.mark.points(3)
@settings(max_examples=20)
@example(batch=2, heads=3, tokens=4, d_head=64, dtype="bfloat16", start=5, seed=1)
@example(batch=1, heads=1, tokens=1, d_head=2, dtype="float32", start=0, seed=2)
@given(batch=st.integers(1, 2), heads=st.integers(1, 3), tokens=st.integers(1, 5),
       d_head=st.sampled_from([2, 4, 8, 16, 64]), dtype=st.sampled_from(["float32", "bfloat16"]),
       start=st.integers(0, 1000), seed=st.integers(0, 2**16))
def test_fused_equals_the_hf_chain_any_shape(batch, heads, tokens, d_head, dtype, start, seed):
    """Bugs: rotate_half pairing neighbours (2i, 2i+1) instead of i and i + d/2; the wrong sign
    in the rotation; one RMS for the whole tensor or per head instead of per row (rows here
    differ in scale by up to 100x); the gain ignored; one position's cos/sin used for every
    token; a float32 result for bf16 input."""
    dt = getattr(torch, dtype)
    x, weight, cos, sin = make(batch, heads, tokens, d_head, dt, seed, start)
    check(x, weight, cos, sin, 1e-6,
          f"fused_rmsnorm_rope on {tuple(x.shape)} {dtype}, positions from {start}")


@pytest.mark.points(2)
def test_zero_rows_small_rows_and_eps():
    """Bugs: eps dropped (an all-zero row, a padding token, becomes NaN); eps added outside the
    square root (rows of size 1e-3 with eps 1e-6 are off by about 1.4x); eps replaced by a
    constant (eps 0.1 changes every small row)."""
    x, weight, cos, sin = make(2, 2, 3, 64, torch.float32, seed=3, spread=0.0)
    x[0, 1, 2] = 0.0
    x[1, 0] *= 1e-3
    check(x, weight, cos, sin, 1e-6, "fused_rmsnorm_rope with a zero row and rows of 1e-3")
    got = fused_rmsnorm_rope(x, weight, cos, sin, 1e-6)
    assert torch.equal(got[0, 1, 2], torch.zeros(64)), "an all-zero row must stay zero"
    check(x, weight, cos, sin, 0.1, "fused_rmsnorm_rope(eps=0.1)")


@pytest.mark.points(1)
def test_fp16_activations_in_the_hundreds():
    """Bug: squares taken in fp16: 300^2 = 90000 exceeds fp16's largest value, 65504, so the
    mean is inf and the row collapses to zero. HF upcasts to float32 first."""
    x, weight, cos, sin = make(1, 2, 3, 64, torch.float32, seed=4, spread=0.0)
    x = (x.sign() * (200 + 100 * x.abs().clamp(max=1))).half()  # |x| between 200 and 300
    check(x, weight.half(), cos, sin, 1e-6, "fused_rmsnorm_rope on fp16 values of 200 to 300")


@pytest.mark.points(1)
def test_several_tokens_at_their_own_positions():
    """Bug: every token rotated by one position's angles (cos[0] or cos[-1] broadcast, as a
    decode of one token would hide); tokens and heads swapped in the broadcast."""
    x, weight, cos, sin = make(2, 3, 6, 64, torch.float32, seed=5, start=100)
    check(x, weight, cos, sin, 1e-6, "fused_rmsnorm_rope on 6 tokens at positions 100..105")


@pytest.mark.points(1)
def test_inputs_are_left_unchanged_and_dtypes_kept():
    """Bugs: x changed in place (``x.float()`` returns x itself when x is already float32, so
    an in-place ``mul_`` on it rewrites the caller's tensor); results in float32 for bf16 or
    fp16 inputs."""
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x, weight, cos, sin = make(1, 2, 3, 64, dtype, seed=6)
        before = [t.clone() for t in (x, weight, cos, sin)]
        out = fused_rmsnorm_rope(x, weight, cos, sin, 1e-6)
        assert out.dtype == dtype and out.shape == x.shape and out.device == x.device
        for name, old, new in zip(("x", "weight", "cos", "sin"), before, (x, weight, cos, sin)):
            assert torch.equal(old, new), f"fused_rmsnorm_rope changed its input {name} ({dtype})"


@pytest.mark.points(2)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_one_graph_for_torch_compile(dtype):
    """Bug: a graph break that keeps torch.compile from fusing the function into one kernel
    (``.item()``, ``float()`` of a tensor, a Python branch on a tensor's value). TorchDynamo's
    capture with fullgraph=True refuses it; the eager backend keeps the check quick."""
    x, weight, cos, sin = make(2, 2, 3, 64, dtype, seed=7)
    want = fused_rmsnorm_rope(x, weight, cos, sin, 1e-6)
    torch._dynamo.reset()
    compiled = torch.compile(fused_rmsnorm_rope, backend="eager", fullgraph=True)
    try:
        got = compiled(x, weight, cos, sin, 1e-6)
    except Exception as exc:  # noqa: BLE001  the capture's own error says where it broke
        pytest.fail("torch.compile(fused_rmsnorm_rope, fullgraph=True) could not capture one "
                    f"graph: {type(exc).__name__}: {str(exc)[:600]}")
    assert_close(got, want, atol=1e-6, rtol=1e-6, what="fused_rmsnorm_rope under torch.compile",
                 reference="fused_rmsnorm_rope run eagerly")


@pytest.mark.points(3)
@settings(max_examples=15)
@example(batch=1, heads=2, tokens=4, d_head=64, dtype="bfloat16")
@example(batch=2, heads=1, tokens=3, d_head=8, dtype="float32")
@given(batch=st.integers(1, 2), heads=st.integers(1, 3), tokens=st.integers(1, 5),
       d_head=st.sampled_from([2, 8, 64]),
       dtype=st.sampled_from(["float32", "bfloat16", "float16"]))
def test_bytes_model_against_the_eager_chain(batch, heads, tokens, d_head, dtype):
    """Bugs: the casts to and from float32 charged for float32 x (they do not run) or left out
    for bf16/fp16; the per-row temporaries (mean, add_, rsqrt) left out; the weight or the cos
    and sin tables left out, or charged at x's element size in the fused kernel (they are
    float32); the neg of half a row charged for a whole row."""
    dt = getattr(torch, dtype)
    x, weight, cos, sin = make(batch, heads, tokens, d_head, dt, seed=8)
    traffic = count_traffic(reference, x, weight, cos, sin, 1e-6)
    s = x.element_size()
    got = rmsnorm_rope_bytes(batch, heads, tokens, d_head, s, fused=False)
    assert got == traffic.total_bytes, (
        f"rmsnorm_rope_bytes({batch}, {heads}, {tokens}, {d_head}, {s}, fused=False) = {got:,} "
        f"B; the eager chain moved {traffic.total_bytes:,} B:\n{traffic.report()}")
    out = reference(x, weight, cos, sin, 1e-6)
    want = x.nbytes + weight.nbytes + cos.nbytes + sin.nbytes + out.nbytes
    fused = rmsnorm_rope_bytes(batch, heads, tokens, d_head, s, fused=True)
    assert fused == want, (
        f"rmsnorm_rope_bytes(..., {s}, fused=True) = {fused:,} B; reading x, the weight, cos "
        f"and sin once and writing the result once is {want:,} B")
