"""Lesson 10, kernel track (optional): split-KV decode in Triton. Run: pytest exercises/lesson10

Without a GPU these run the kernels in Triton's interpreter on CPU tensors (small shapes);
without Triton they skip, saying how to install it. The oracle is SDPA in float32 over each
sequence's valid keys, with K and V repeated per query head for grouped-query attention.
"""

import pytest
import torch
import torch.nn.functional as F

from course.testing import assert_close
from course.triton_track import import_triton, kernel_device

triton = import_triton()
DEVICE = kernel_device()

from exercises.lesson10.triton_decode import split_kv_decode_triton  # noqa: E402


def make(batch, heads, kv_heads, S, d_head, seed=0, dtype=torch.float32, magnitude=1.0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, 1, d_head, generator=gen) * magnitude
    k = torch.randn(batch, kv_heads, S, d_head, generator=gen) * magnitude
    v = torch.randn(batch, kv_heads, S, d_head, generator=gen)
    return (t.to(dtype).to(DEVICE) for t in (q, k, v))


def reference(q, k, v, lengths=None, scale=None):
    """SDPA in float32 over each sequence's first lengths[b] keys; zeros for length 0."""
    batch, heads, _, d_head = q.shape
    group = heads // k.shape[1]
    k = k.float().repeat_interleave(group, dim=1)
    v = v.float().repeat_interleave(group, dim=1)
    out = torch.zeros(batch, heads, 1, d_head, device=q.device)
    for b in range(batch):
        n = k.shape[2] if lengths is None else int(lengths[b])
        if n:
            out[b] = F.scaled_dot_product_attention(q[b:b + 1].float(), k[b:b + 1, :, :n],
                                                    v[b:b + 1, :, :n], scale=scale)[0]
    return out


def test_random_one_head_per_kv_head():
    q, k, v = make(2, 4, 4, 96, 32)
    got = split_kv_decode_triton(q, k, v, n_splits=3, block_s=16)
    assert got.shape == q.shape and got.dtype == q.dtype
    assert_close(got, reference(q, k, v), atol=1e-4, rtol=1e-4,
                 what="split_kv_decode_triton, float32, 3 splits", reference="SDPA")


def test_ragged_lengths_zero_one_tile_and_one_past():
    """Lengths 0 (zeros), 1, a whole tile (16) and one past it (17), in one batch."""
    q, k, v = make(4, 2, 2, 48, 16, seed=1)
    lengths = torch.tensor([0, 1, 16, 17], device=DEVICE)
    got = split_kv_decode_triton(q, k, v, lengths, n_splits=2, block_s=16)
    assert torch.equal(got[0], torch.zeros_like(got[0])), "a sequence of length 0 must get zeros"
    assert_close(got, reference(q, k, v, lengths), atol=1e-4, rtol=1e-4,
                 what="split_kv_decode_triton with lengths [0, 1, 16, 17]", reference="SDPA")


def test_grouped_query_heads():
    q, k, v = make(2, 8, 2, 40, 32, seed=2)
    lengths = torch.tensor([40, 23], device=DEVICE)
    assert_close(split_kv_decode_triton(q, k, v, lengths, n_splits=2, block_s=16),
                 reference(q, k, v, lengths), atol=1e-4, rtol=1e-4,
                 what="split_kv_decode_triton, 8 query heads over 2 KV heads",
                 reference="SDPA with K, V repeated per query head")


def test_more_splits_than_tiles_and_large_scores():
    """Splits past the end are empty; scores of ~1e4 must not overflow the softmax."""
    q, k, v = make(2, 2, 2, 40, 16, seed=3, magnitude=30.0)
    lengths = torch.tensor([40, 5], device=DEVICE)
    got = split_kv_decode_triton(q, k, v, lengths, n_splits=8, block_s=16)
    assert torch.isfinite(got).all(), "large scores gave inf or NaN: subtract the running max"
    assert_close(got, reference(q, k, v, lengths), atol=1e-3, rtol=1e-3,
                 what="split_kv_decode_triton with scores ~1e4", reference="SDPA")


def test_bf16_and_a_custom_scale():
    q, k, v = make(1, 4, 4, 64, 32, seed=4, dtype=torch.bfloat16)
    got = split_kv_decode_triton(q, k, v, scale=0.3, n_splits=2, block_s=32)
    assert got.dtype == torch.bfloat16
    assert_close(got.float(), reference(q, k, v, scale=0.3), atol=2e-2, rtol=2e-2,
                 what="split_kv_decode_triton in bf16, scale 0.3", reference="SDPA in float32")
    # bad input is refused in plain words
    with pytest.raises(ValueError, match="kv_heads"):
        split_kv_decode_triton(q, k[:, :3], v[:, :3])
