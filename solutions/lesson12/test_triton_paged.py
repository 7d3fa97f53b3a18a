"""Lesson 12, kernel track (optional): split-KV paged decode in Triton.

Run: pytest exercises/lesson12/test_triton_paged.py. Without a GPU the kernel runs in
Triton's interpreter on CPU tensors (slow, so the shapes are small); without Triton the
module is skipped, saying why.
"""

from course.triton_track import import_triton, kernel_device

triton = import_triton()
DEVICE = kernel_device()

import pytest  # noqa: E402
import torch  # noqa: E402

from course.paged import dense_decode_reference, make_paged_case  # noqa: E402
from course.testing import assert_close  # noqa: E402
from exercises.lesson12.triton_paged import paged_decode_triton  # noqa: E402

REFERENCE = "dense softmax attention over each sequence's own tokens (float32)"
# float32 inputs: the products are exact float32 (ieee) on a GPU too; bf16 rounds the
# probabilities and the output once each.
TOL32 = dict(atol=2e-5, rtol=2e-5)
TOL16 = dict(atol=2e-2, rtol=2e-2)


def _case(lengths, n_heads, n_kv_heads, d_head=16, block_size=4, **kw):
    return make_paged_case(lengths, n_heads, n_kv_heads, d_head, block_size, device=DEVICE,
                           **kw)


def _run(case, **kw):
    return paged_decode_triton(case.q, case.k_cache, case.v_cache, case.block_tables,
                               case.context_lens, **kw)


@pytest.mark.parametrize("n_heads,n_kv_heads", [(4, 4), (8, 2), (6, 1)])
def test_equals_dense_ragged_batch(n_heads, n_kv_heads):
    """Ragged lengths, shuffled blocks, GQA groups of 1, 4 and 6 query heads."""
    case = _case([5, 17, 1, 32], n_heads, n_kv_heads)
    assert_close(_run(case), dense_decode_reference(case), **TOL32,
                 what=f"paged_decode_triton, {n_heads} query heads over {n_kv_heads} KV heads",
                 reference=REFERENCE)


@pytest.mark.parametrize("num_splits", [1, 3])
def test_tile_edges_lengths_zero_and_one_and_splits(num_splits):
    """Lengths 0 and 1, an exact multiple of the 16-token tile and one past it, short
    sequences whose later splits are empty: the answer never depends on num_splits."""
    case = _case([0, 1, 16, 17, 48], 8, 2, block_size=8)
    got = _run(case, num_splits=num_splits, block_n=16)
    assert_close(got, dense_decode_reference(case), **TOL32,
                 what=f"paged_decode_triton(num_splits={num_splits}, block_n=16)",
                 reference=REFERENCE)
    assert torch.equal(got[0], torch.zeros_like(got[0])), "a sequence of length 0 must give 0"


def test_bfloat16_in_bfloat16_out():
    case = _case([9, 40], 4, 2, dtype=torch.bfloat16)
    got = _run(case, num_splits=2, block_n=16)
    assert got.dtype == torch.bfloat16 and got.shape == case.q.shape, (
        f"expected {tuple(case.q.shape)} bfloat16, got {tuple(got.shape)} {got.dtype}")
    assert_close(got, dense_decode_reference(case), **TOL16,
                 what="paged_decode_triton in bfloat16", reference=REFERENCE)


def test_huge_scores_do_not_overflow():
    """Scores around 1e4: exp without the running max overflows to inf and NaN."""
    case = _case([30, 7], 4, 2, seed=3)
    case.q *= 3e3
    got = _run(case, num_splits=2, block_n=16)
    assert torch.isfinite(got).all(), "the output has inf or NaN at scores of about 1e4"
    assert_close(got, dense_decode_reference(case), atol=1e-3, rtol=1e-3,
                 what="paged_decode_triton at scores of about 1e4", reference=REFERENCE)


def test_custom_scale_max_context_len_and_bad_inputs():
    case = _case([7, 3], 4, 2, seed=1)
    assert_close(_run(case, scale=0.5), dense_decode_reference(case, scale=0.5), **TOL32,
                 what="paged_decode_triton(scale=0.5)", reference=REFERENCE)
    assert_close(_run(case, max_context_len=7), dense_decode_reference(case), **TOL32,
                 what="paged_decode_triton(max_context_len=7)", reference=REFERENCE)
    with pytest.raises(ValueError, match="float32"):
        paged_decode_triton(case.q.double(), case.k_cache, case.v_cache, case.block_tables,
                            case.context_lens)
    with pytest.raises(ValueError, match="n_heads"):
        paged_decode_triton(case.q[:, :3], case.k_cache, case.v_cache, case.block_tables,
                            case.context_lens)
