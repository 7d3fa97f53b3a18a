"""Hidden grader, lesson 10: the tiled forward pass, any shape and tiling, and its cost.

The reference is torch's SDPA in float32 with an explicit bottom-right causal mask (query t at
position S - T + t) and ``torch.logsumexp`` of the scaled, masked scores: a path independent of
the code under test. Cost is counted (course.counting), never timed.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.counting import AllocationCounter, count_flops
from course.testing import assert_close
from exercises.lesson10.flash_attention import flash_attention_fwd

REFERENCE = "SDPA in float32 (bottom-right causal mask)"


def visible(T, S):
    return torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)


def reference(q, k, v, causal, scale=None):
    mask = visible(q.shape[2], k.shape[2]) if causal else None
    o = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                       scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    if causal:
        scores = scores.masked_fill(~mask, float("-inf"))
    return o.to(q.dtype), torch.logsumexp(scores, dim=-1)


def qkv(batch, heads, T, S, d_head, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    make = lambda n: torch.randn(batch, heads, n, d_head, generator=g).to(dtype)  # noqa: E731
    return make(T), make(S), make(S)


def check(q, k, v, block_q, block_k, causal, scale=None, atol=2e-5, lse_atol=2e-5):
    got = flash_attention_fwd(q, k, v, block_q, block_k, causal, scale=scale)
    assert isinstance(got, tuple) and len(got) == 2, "flash_attention_fwd must return (o, lse)"
    o, lse = got
    want_o, want_lse = reference(q, k, v, causal, scale)
    what = (f"flash_attention_fwd(T={q.shape[2]}, S={k.shape[2]}, block_q={block_q}, "
            f"block_k={block_k}, causal={causal}, scale={scale})")
    assert_close(o, want_o, atol=atol, rtol=atol, what=what, reference=REFERENCE)
    assert_close(lse, want_lse, atol=lse_atol, rtol=1e-5, what=f"lse of {what}",
                 reference="torch.logsumexp of the scaled, masked scores")


@pytest.mark.points(4)
@settings(max_examples=40)
@example(batch=1, heads=1, T=7, extra=0, d_head=4, block_q=1, block_k=1, causal=True, seed=0)
@example(batch=1, heads=2, T=5, extra=4, d_head=4, block_q=2, block_k=3, causal=True, seed=1)
@example(batch=2, heads=1, T=6, extra=3, d_head=8, block_q=4, block_k=4, causal=True, seed=2)
@example(batch=1, heads=1, T=9, extra=0, d_head=4, block_q=3, block_k=3, causal=True, seed=3)
@example(batch=1, heads=1, T=3, extra=5, d_head=4, block_q=50, block_k=50, causal=False, seed=4)
@given(batch=st.integers(1, 2), heads=st.integers(1, 3), T=st.integers(1, 12),
       extra=st.integers(0, 8), d_head=st.sampled_from([1, 4, 8]), block_q=st.integers(1, 13),
       block_k=st.integers(1, 21), causal=st.booleans(), seed=st.integers(0, 2**16))
def test_equals_sdpa_for_any_tiling(batch, heads, T, extra, d_head, block_q, block_k, causal,
                                    seed):
    """Bugs: a top-left causal mask (query t at position t, wrong whenever T < S); a query that
    does not see its own key (``>=`` for ``>`` in the tile mask); one key tile too few (the
    tile whose first key is the last one a query sees, skipped); a last tile that is dropped
    or read past the end when the block does not divide the length; ``o`` not rescaled when
    the maximum grows; ``lse = m + l`` or the lse of the last tile only."""
    q, k, v = qkv(batch, heads, T, T + extra, d_head, seed)
    check(q, k, v, block_q, block_k, causal)


@pytest.mark.points(2)
def test_extreme_scores_and_rows_that_differ():
    """Bugs: ``exp(s)`` without subtracting the running maximum (overflows past 88); ``m``
    started at 0 instead of ``-inf`` (a row whose scores are all below -88 gets ``l = 0``, then
    NaN); one maximum for a whole tile or batch instead of one per row (rows of a tile whose
    scores are thousands apart underflow); scale 0 read as "use the default" (``scale or
    1/sqrt(d)``)."""
    q, k, v = qkv(2, 2, 9, 9, 4, seed=5)
    check(q, k, v, 4, 4, True, scale=1e4, atol=1e-4, lse_atol=1e-2)
    check(q, k, v, 3, 5, False, scale=-1e4, atol=1e-4, lse_atol=1e-2)
    # rows far apart: sequence 0's scores near +3000, sequence 1's near -3000, in one tile
    shift = torch.tensor([30.0, -30.0]).view(2, 1, 1, 1)
    q2 = q.clone()
    q2[..., 0] = shift[..., 0]
    k2 = k.clone()
    k2[..., 0] = 100.0
    check(q2, k2, v, 9, 9, True, scale=1.0, atol=1e-3, lse_atol=1e-2)
    check(q, k, v, 4, 2, True, scale=0.0)


@pytest.mark.points(1)
def test_custom_scale_and_bfloat16():
    """Bugs: ignoring ``scale`` (always 1/sqrt(d_head)); returning float32 ``o`` for bf16
    inputs (the output keeps the input dtype; ``lse`` is float32)."""
    q, k, v = qkv(2, 2, 6, 10, 8, seed=6)
    check(q, k, v, 4, 3, True, scale=0.3)
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    o, lse = flash_attention_fwd(qb, kb, vb, 4, 3, True)
    want_o, want_lse = reference(qb, kb, vb, True)
    assert_close(o, want_o, atol=2e-2, rtol=2e-2, what="flash_attention_fwd in bfloat16",
                 reference=REFERENCE)
    assert_close(lse, want_lse, atol=1e-3, rtol=1e-3, what="lse for bfloat16 inputs (float32)",
                 reference="torch.logsumexp in float32")


@pytest.mark.points(2)
@pytest.mark.parametrize("block_q,block_k,causal", [(16, 16, True), (32, 8, False),
                                                    (8, 32, True)])
def test_never_allocates_the_score_matrix(block_q, block_k, causal):
    """Bug: scores for a whole row of keys, or the whole ``T x S`` matrix (a tile as large as
    the sequence, softmax over a materialised matrix), or a ``T x S`` causal mask: memory that
    grows with the square of the length. Nothing may be larger than the output or one float32
    tile of ``[batch, heads, block_q, block_k]`` scores."""
    batch, heads, n, d_head = 1, 2, 128, 4
    q, k, v = qkv(batch, heads, n, n, d_head, seed=8)
    tile = batch * heads * block_q * block_k * 4
    allowed = max(q.nbytes, tile)
    with AllocationCounter() as counter:
        flash_attention_fwd(q, k, v, block_q, block_k, causal)
    assert counter.peak_single_bytes <= allowed, (
        f"flash_attention_fwd(block_q={block_q}, block_k={block_k}) allocated a tensor of "
        f"{counter.peak_single_bytes:,} B; the output is {q.nbytes:,} B, one float32 tile of "
        f"scores {tile:,} B, the whole score matrix {batch * heads * n * n * 4:,} B.\n"
        f"{counter.report()}")


@pytest.mark.points(1)
@pytest.mark.parametrize("T,S,needed", [(64, 64, 10), (48, 80, 12)],
                         ids=["square", "chunk-over-cache"])
def test_causal_skips_the_masked_tiles(T, S, needed):
    """Bug: computing every tile and masking it (no skipping): causal attention then costs as
    many FLOPs as full attention. With tiles of 16, the square case needs 10 of 16 tiles and 48
    queries over 80 keys need 3 + 4 + 5 = 12 of 15."""
    q, k, v = qkv(1, 1, T, S, 8, seed=9)
    full = count_flops(flash_attention_fwd, q, k, v, 16, 16, False)
    causal = count_flops(flash_attention_fwd, q, k, v, 16, 16, True)
    total = -(-T // 16) * -(-S // 16)
    assert causal <= full * needed / total, (
        f"causal attention did {causal:,} matmul FLOPs and full attention {full:,}; only "
        f"{needed} of the {total} tiles hold a visible key, so at most "
        f"{full * needed // total:,} are needed. Skip the tiles no query of the tile can see.")
