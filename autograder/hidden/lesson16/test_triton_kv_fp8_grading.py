"""Hidden grader, lesson 16, kernel track: paged decode attention over an FP8 KV cache.

Runs on CPU tensors in Triton's interpreter when there is no GPU (compiled on a GPU). The
expected answer quantizes the cache here (amax / 448 per token and KV head), multiplies back
in float32 and takes dense softmax attention over each sequence's dequantized tokens
(``course.paged.dense_decode_reference``): an independent path.
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


@pytest.mark.points(2)
@pytest.mark.parametrize("lengths,n_heads,n_kv,d_head,block_size,num_splits,seed", [
    ([37, 5, 64], 4, 2, 24, 3, 2, 31),   # a block size that is not a power of two, d 24
    ([0, 90, 1], 4, 4, 32, 16, 3, 32),
])
def test_fp8_random_layouts(lengths, n_heads, n_kv, d_head, block_size, num_splits, seed):
    """Bugs: reading the e4m3 cache or its scales through the wrong strides, scales taken
    from the logical token index instead of the physical slot, an empty sequence or split
    that is not 0."""
    case, tensors = fp8_case(lengths, n_heads, n_kv, d_head=d_head, block_size=block_size,
                             spread=1.0, seed=seed)
    assert_close(_run(tensors, num_splits=num_splits, block_n=16),
                 dense_decode_reference(case), **TOL,
                 what=f"paged_decode_fp8_triton, lengths {lengths}, block_size {block_size}, "
                      f"d_head {d_head}, {num_splits} splits", reference=REFERENCE)


@pytest.mark.points(3)
def test_k_and_v_scales_each_applied_once():
    """Bugs: the K scale left out of the scores (or applied twice), the V scale left out,
    or folded into the probabilities before they are summed into the softmax's
    denominator: rows whose magnitudes span 1e-3 to 1e3, per token and per head."""
    case, tensors = fp8_case([45, 20, 7], 8, 2, spread=3.0, seed=33, garbage=1.0)
    assert_close(_run(tensors, block_n=16, num_splits=2), dense_decode_reference(case),
                 atol=1e-4, rtol=1e-4,
                 what="paged_decode_fp8_triton with scales from 1e-3 to 1e3",
                 reference=REFERENCE)


@pytest.mark.points(1)
def test_fp8_bfloat16_query_huge_scores():
    """Bugs: a float32 result for a bf16 query; exp of raw scores (scores in the thousands)."""
    case, tensors = fp8_case([33, 9], 4, 2, dtype=torch.bfloat16, seed=34)
    tensors[0] = tensors[0] * 2000
    case.q = tensors[0]
    got = _run(tensors, block_n=16, num_splits=2)
    assert got.dtype == torch.bfloat16, f"expected bfloat16 out, got {got.dtype}"
    assert torch.isfinite(got).all(), "inf or NaN in the output at scores in the thousands"
    assert_close(got, dense_decode_reference(case), atol=3e-2, rtol=3e-2,
                 what="paged_decode_fp8_triton, bf16 query, scores in the thousands",
                 reference=REFERENCE)


@pytest.mark.points(1)
def test_fp8_bad_inputs_raise_in_plain_words():
    """Bug: a wrapper that launches on inputs the kernel cannot take. After a valid call, a
    cache that is not e4m3, scales of the wrong shape or dtype, or a table of the wrong
    batch must raise ValueError before any launch."""
    case, tensors = fp8_case([5, 8], 4, 2, seed=35)
    _run(tensors)
    q, kq, vq, ks, vs, tables, lens = tensors
    for args in [(q, kq.to(torch.float8_e5m2), vq, ks, vs, tables, lens),
                 (q, kq, vq, ks.double(), vs, tables, lens),
                 (q, kq, vq, ks, vs[:, :, :1], tables, lens),
                 (q, kq, vq, ks, vs, tables[:1], lens)]:
        with pytest.raises(ValueError):
            paged_decode_fp8_triton(*args)


@pytest.mark.points(1)
def test_bf16_queries_of_any_size_and_tiny_values():
    """Bugs (on a GPU, where the dots run in 16-bit floats): query entries past float16's
    65504 overflow to inf, or probabilities times tiny V scales (values of size 1e-7) flush to
    zero, so the output is NaN or 0. On the CPU the dots run in float32 and this passes."""
    case, tensors = fp8_case([40, 70], 8, 2, d_head=32, block_size=16, seed=41,
                             dtype=torch.bfloat16)
    big_q = (case.q.float() * 3e4).to(torch.bfloat16)  # entries up to about 1e5
    tiny = 1e-7
    case.q, tensors[0] = big_q, big_q
    tensors[4] = tensors[4] * tiny  # V scales
    case.values = [(v.float() * tiny).to(v.dtype) for v in case.values]
    out = _run(tensors, num_splits=2)
    want = dense_decode_reference(case)
    assert torch.isfinite(out).all(), "the output holds inf or NaN"
    assert_close(out.float() / tiny, want.float() / tiny, atol=2e-2, rtol=2e-2,
                 what="paged_decode_fp8_triton with bf16 queries up to 1e5 and values of 1e-7 "
                      "(divided by 1e-7)", reference=REFERENCE)
