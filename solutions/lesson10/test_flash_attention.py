"""Lesson 10, part 2: the tiled forward pass. Run: pytest exercises/lesson10"""

import pytest
import torch
import torch.nn.functional as F

from course.counting import AllocationCounter, count_flops
from course.testing import assert_close
from exercises.lesson10.flash_attention import flash_attention_fwd

REFERENCE = "SDPA in float32 (bottom-right causal mask)"


def reference(q, k, v, causal, scale=None):
    T, S = q.shape[2], k.shape[2]
    mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T) if causal else None
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                          scale=scale).to(q.dtype)


def reference_lse(q, k, causal, scale=None):
    T, S = q.shape[2], k.shape[2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    if causal:
        scores = scores.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(S - T), -torch.inf)
    return torch.logsumexp(scores, dim=-1)


def qkv(batch, heads, T, S, d_head=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, heads, T, d_head, generator=g),
            torch.randn(batch, heads, S, d_head, generator=g),
            torch.randn(batch, heads, S, d_head, generator=g))


@pytest.mark.parametrize("block_q,block_k", [(4, 4), (1, 1), (3, 5), (64, 64)],
                         ids=["dividing", "one", "not-dividing", "larger-than-seq"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_equals_sdpa_for_any_block_sizes(block_q, block_k, causal):
    q, k, v = qkv(2, 3, 12, 12)
    o, lse = flash_attention_fwd(q, k, v, block_q, block_k, causal)
    what = f"flash_attention_fwd(block_q={block_q}, block_k={block_k}, causal={causal})"
    assert_close(o, reference(q, k, v, causal), atol=1e-5, rtol=1e-5, what=what,
                 reference=REFERENCE)
    assert_close(lse, reference_lse(q, k, causal), atol=1e-5, rtol=1e-5, what=f"lse of {what}",
                 reference="torch.logsumexp of the scaled, masked scores")


def test_causal_queries_are_the_last_positions():
    q, k, v = qkv(1, 2, 3, 10, seed=1)  # 3 new tokens after 7 cached ones
    o, lse = flash_attention_fwd(q, k, v, 2, 4, causal=True)
    assert_close(o, reference(q, k, v, True), atol=1e-5, rtol=1e-5,
                 what="flash_attention_fwd, 3 queries over 10 keys", reference=REFERENCE)
    assert_close(lse, reference_lse(q, k, True), atol=1e-5, rtol=1e-5,
                 what="lse, 3 queries over 10 keys", reference="torch.logsumexp")
    with pytest.raises(ValueError, match="more queries"):  # causal needs T <= S
        flash_attention_fwd(k, q, q, 2, 4, causal=True)
    with pytest.raises(ValueError, match="block_k"):
        flash_attention_fwd(q, k, v, 2, 0)


def test_huge_scores_do_not_overflow():
    q, k, v = qkv(1, 2, 9, 9, seed=2)
    o, lse = flash_attention_fwd(q, k, v, 4, 4, causal=True, scale=1e4)
    assert_close(o, reference(q, k, v, True, scale=1e4), atol=1e-4, rtol=1e-4,
                 what="flash_attention_fwd(scale=1e4)", reference=REFERENCE)
    assert_close(lse, reference_lse(q, k, True, scale=1e4), atol=1e-2, rtol=1e-5,
                 what="lse with scale 1e4", reference="torch.logsumexp")


def test_never_allocates_the_score_matrix():
    batch, heads, n, d_head, block = 1, 2, 128, 8, 16
    q, k, v = qkv(batch, heads, n, n, d_head)
    score_matrix = batch * heads * n * n * 4  # float32 bytes
    allowed = max(q.nbytes, batch * heads * block * block * 4)
    with AllocationCounter() as counter:
        flash_attention_fwd(q, k, v, block, block, causal=True)
    assert counter.peak_single_bytes <= allowed, (
        f"flash_attention_fwd allocated a tensor of {counter.peak_single_bytes:,} B; the output "
        f"is {q.nbytes:,} B, one tile of scores {batch * heads * block * block * 4:,} B and the "
        f"whole score matrix {score_matrix:,} B. Keep one tile at a time (and build the causal "
        f"mask per tile).\n{counter.report()}")


def test_causal_skips_the_tiles_above_the_diagonal():
    q, k, v = qkv(1, 1, 64, 64)
    full = count_flops(flash_attention_fwd, q, k, v, 16, 16, False)
    causal = count_flops(flash_attention_fwd, q, k, v, 16, 16, True)
    # 4 x 4 tiles; causal needs the 10 on or below the diagonal
    assert causal <= full * 10 / 16, (
        f"causal attention did {causal:,} matmul FLOPs, full attention {full:,}: a tile that no "
        "query can see must be skipped, not computed and masked")
