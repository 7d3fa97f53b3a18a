"""Lesson 16, kernel track (optional): paged decode attention reading an FP8 KV cache.

Run: pytest exercises/lesson16/test_triton_kv_fp8.py. Without a GPU the kernel runs in
Triton's interpreter on CPU tensors (slow, so the shapes are small); without Triton the
module is skipped, saying why.

The expected answer: quantize the cache here (scale = amax / 448 per token and KV head, the
recipe of kv_fp8.py written out in torch), multiply back in float32, and take dense softmax
attention over each sequence's dequantized tokens.
"""

from course.triton_track import import_triton, kernel_device

triton = import_triton()
DEVICE = kernel_device()

import pytest  # noqa: E402
import torch  # noqa: E402

from course.paged import dense_decode_reference, make_paged_case  # noqa: E402
from course.testing import assert_close  # noqa: E402
from exercises.lesson16.triton_kv_fp8 import paged_decode_fp8_triton  # noqa: E402

REFERENCE = "dense softmax attention over the dequantized tokens (float32)"
TOL = dict(atol=2e-5, rtol=2e-5)


def quantize(cache):
    """e4m3 values and float32 scales per (block, token, KV head): amax / 448."""
    amax = cache.float().abs().amax(dim=-1)
    scales = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    return (cache.float() / scales[..., None]).clamp(-448, 448).to(torch.float8_e4m3fn), scales


def fp8_case(lengths, n_heads, n_kv_heads, d_head=16, block_size=4, spread=0.0, seed=0,
             **kw):
    """A paged case whose cache is quantized to e4m3; ``case.keys``/``values`` become the
    dequantized tokens. ``spread`` > 0 gives each (token, head) row a magnitude
    10**U(-spread, spread), so the scales differ from token to token and head to head."""
    case = make_paged_case(lengths, n_heads, n_kv_heads, d_head, block_size, seed=seed, **kw)
    gen = torch.Generator().manual_seed(seed + 1)
    fp8 = []
    for cache in (case.k_cache, case.v_cache):
        if spread:
            cache = cache * 10 ** ((torch.rand(cache.shape[:3], generator=gen) * 2 - 1)
                                   * spread)[..., None].to(cache.dtype)
        fp8.append(quantize(cache))
    (kq, ks), (vq, vs) = fp8
    deq_k, deq_v = kq.float() * ks[..., None], vq.float() * vs[..., None]
    for b, n in enumerate(case.context_lens.tolist()):
        blocks = case.block_tables[b, :-(-n // block_size)].long()
        case.keys[b] = deq_k[blocks].flatten(0, 1)[:n].to(case.q.dtype)
        case.values[b] = deq_v[blocks].flatten(0, 1)[:n].to(case.q.dtype)
    tensors = [t.to(DEVICE) for t in (case.q, kq, vq, ks, vs, case.block_tables,
                                       case.context_lens)]
    case.keys = [k.to(DEVICE) for k in case.keys]
    case.values = [v.to(DEVICE) for v in case.values]
    case.q = tensors[0]
    return case, tensors


def _run(tensors, **kw):
    return paged_decode_fp8_triton(*tensors, **kw)


@pytest.mark.parametrize("n_heads,n_kv_heads,num_splits", [(8, 2, 1), (4, 4, 2), (6, 1, 3)])
def test_equals_dense_over_dequantized_tokens(n_heads, n_kv_heads, num_splits):
    """Ragged lengths (0 and 1 included), shuffled blocks, GQA, several splits."""
    case, tensors = fp8_case([5, 0, 17, 1, 33], n_heads, n_kv_heads)
    got = _run(tensors, num_splits=num_splits, block_n=16)
    assert_close(got, dense_decode_reference(case), **TOL,
                 what=f"paged_decode_fp8_triton, {n_heads} heads over {n_kv_heads}, "
                      f"{num_splits} splits", reference=REFERENCE)
    assert torch.equal(got[1], torch.zeros_like(got[1])), "a sequence of length 0 must give 0"


def test_scales_differ_per_token_and_head():
    """Rows of magnitudes 1e-3 to 1e3: each token's K scale multiplies its scores, each
    token's V scale its probability's share of the output (not the softmax sum)."""
    case, tensors = fp8_case([30, 12], 8, 2, spread=3.0, seed=4, garbage=1.0)
    got = _run(tensors, block_n=16, num_splits=2)
    assert_close(got, dense_decode_reference(case), atol=1e-4, rtol=1e-4,
                 what="paged_decode_fp8_triton with scales from 1e-3 to 1e3",
                 reference=REFERENCE)


def test_bfloat16_query_gives_bfloat16():
    case, tensors = fp8_case([9, 40], 4, 2, dtype=torch.bfloat16, seed=2)
    got = _run(tensors, block_n=16, num_splits=2)
    assert got.dtype == torch.bfloat16 and got.shape == case.q.shape, (
        f"expected {tuple(case.q.shape)} bfloat16, got {tuple(got.shape)} {got.dtype}")
    assert_close(got, dense_decode_reference(case), atol=2e-2, rtol=2e-2,
                 what="paged_decode_fp8_triton with a bfloat16 query", reference=REFERENCE)


def test_a_bf16_cache_is_refused():
    case, tensors = fp8_case([7, 3], 4, 2, seed=1)
    _run(tensors)
    q, kq, vq, ks, vs, tables, lens = tensors
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        paged_decode_fp8_triton(q, kq.float(), vq.float(), ks, vs, tables, lens)
    with pytest.raises(ValueError, match="k_scales"):
        paged_decode_fp8_triton(q, kq, vq, ks[..., :1], vs, tables, lens)
