"""Hidden grader, lesson 10 kernel track: split-KV decode in Triton, run by Triton's interpreter
on the CPU (compiled on a GPU). The oracle is softmax attention in float64 over each sequence's
valid keys, with K and V repeated per query head for grouped-query attention."""

import pytest
import torch

from course.testing import assert_close
from course.triton_track import import_triton, kernel_device

triton = import_triton()
DEVICE = kernel_device()

from exercises.lesson10.triton_decode import split_kv_decode_triton  # noqa: E402


def make(batch, heads, kv_heads, S, d_head, seed, dtype=torch.float32, magnitude=1.0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, 1, d_head, generator=gen) * magnitude
    k = torch.randn(batch, kv_heads, S, d_head, generator=gen) * magnitude
    v = torch.randn(batch, kv_heads, S, d_head, generator=gen)
    return [t.to(dtype) for t in (q, k, v)]


def oracle(q, k, v, lengths=None, scale=None):
    batch, heads, _, d_head = q.shape
    group = heads // k.shape[1]
    q, k, v = q.double(), k.double().repeat_interleave(group, 1), v.double().repeat_interleave(group, 1)
    scale = d_head ** -0.5 if scale is None else scale
    out = torch.zeros(batch, heads, 1, d_head, dtype=torch.float64)
    for b in range(batch):
        n = k.shape[2] if lengths is None else int(lengths[b])
        if n:
            s = (q[b] @ k[b, :, :n].transpose(-1, -2)) * scale
            out[b] = torch.softmax(s, dim=-1) @ v[b, :, :n]
    return out


def run(q, k, v, lengths=None, **kw):
    dev = [t.to(DEVICE) for t in (q, k, v)]
    return split_kv_decode_triton(*dev, None if lengths is None else lengths.to(DEVICE), **kw)


@pytest.mark.points(3)
def test_ragged_lengths_and_empty_splits():
    """Bugs: a mask with <= instead of < (one key past the chunk or past the sequence), chunks
    that overlap or leave a gap, the running output or sum not rescaled when a later tile raises
    the maximum, a sequence's length taken from another row. Lengths 0, 1, a tile (16), one past
    (17), two tiles and one past (33), the whole cache; chunks of 3 tiles, the last splits
    empty for the short rows."""
    q, k, v = make(6, 2, 2, 96, 16, seed=1)
    lengths = torch.tensor([0, 1, 16, 17, 33, 96])
    got = run(q, k, v, lengths, n_splits=2, block_s=16)
    assert got.shape == q.shape and got.dtype == torch.float32
    assert torch.equal(got[0].cpu(), torch.zeros_like(got[0].cpu())), (
        "a sequence of length 0 must get zeros (no NaN)")
    assert_close(got.double().cpu(), oracle(q, k, v, lengths), atol=1e-4, rtol=1e-4,
                 what="split_kv_decode_triton, lengths [0, 1, 16, 17, 33, 96], 2 splits",
                 reference="softmax attention in float64")


@pytest.mark.points(2)
@pytest.mark.parametrize("heads,kv_heads", [(8, 2), (6, 2), (4, 4)])
def test_query_heads_read_their_own_kv_head(heads, kv_heads):
    """Bugs: query head h mapped to KV head h % kv_heads (or the group's heads taken from the
    wrong place), every query head of a group given the first one's output, a group of 3 (not a
    power of two) padded wrongly."""
    q, k, v = make(2, heads, kv_heads, 40, 32, seed=heads + kv_heads)
    lengths = torch.tensor([40, 27])
    assert_close(run(q, k, v, lengths, n_splits=2, block_s=16).double().cpu(),
                 oracle(q, k, v, lengths), atol=1e-4, rtol=1e-4,
                 what=f"split_kv_decode_triton, {heads} query heads over {kv_heads} KV heads",
                 reference="softmax attention in float64")


@pytest.mark.points(2)
def test_scores_of_ten_thousand_in_rows_that_differ():
    """Bugs: exp without subtracting the maximum (inf / inf = NaN), the merge weighting the
    splits by exp(lse) instead of exp(lse - max), one maximum shared by the whole batch."""
    q, k, v = make(2, 2, 2, 64, 16, seed=3, magnitude=25.0)
    q[1] *= 0.01                           # the second sequence's scores are small
    lengths = torch.tensor([64, 50])
    got = run(q, k, v, lengths, n_splits=3, block_s=16)
    assert torch.isfinite(got).all(), "scores of about 1e4 gave inf or NaN"
    assert_close(got.double().cpu(), oracle(q, k, v, lengths), atol=1e-3, rtol=1e-3,
                 what="split_kv_decode_triton with scores ~1e4", reference="float64")


@pytest.mark.points(1)
def test_bf16_strided_cache_custom_scale_and_default_splits():
    """Bugs: a result not in q's dtype, strides of K and V ignored (a cache that is a view),
    the scale argument ignored, the default split count (None) not handled."""
    q, k, v = make(1, 4, 2, 48, 32, seed=4, dtype=torch.bfloat16)
    k_t = k.transpose(2, 3).contiguous().transpose(2, 3)     # same values, other strides
    got = split_kv_decode_triton(q.to(DEVICE), k_t.to(DEVICE), v.to(DEVICE), None, 0.2,
                                 block_s=16)
    assert got.dtype == torch.bfloat16 and got.shape == q.shape
    assert_close(got.double().cpu(), oracle(q, k, v, scale=0.2), atol=2e-2, rtol=2e-2,
                 what="split_kv_decode_triton in bf16, strided K, scale 0.2",
                 reference="float64")
