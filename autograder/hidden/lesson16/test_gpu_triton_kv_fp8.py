"""Hidden GPU grader, lesson 16, kernel track: paged decode over an FP8 KV cache against
dense bf16 SDPA on the same tokens.

The FP8 kernel reads e4m3 K/V (1 byte per element) plus a float32 scale per token and KV
head; SDPA reads the bf16 K/V contiguously (``F.scaled_dot_product_attention(q[batch, 32, 1,
128], k[batch, 8, tokens, 128], v, enable_gqa=True)``). Ratio = SDPA's median time / the
kernel's (CUDA events, L2 flushed before each call). The output is checked against SDPA over
the dequantized cache.
"""

import pytest
import torch
import torch.nn.functional as F

from course.bench import (KERNEL_HOST_LEAD_S, check_roofline, cuda_time, measure_copy_bandwidth,
                          record, require_cuda)
from course.testing import assert_close

N_HEADS, N_KV_HEADS, D_HEAD, BLOCK_SIZE = 32, 8, 128, 16
# The FP8 kernel reads d_head + 4 = 132 bytes per token and head where bf16 SDPA reads 256, so
# the bytes allow about 1.9x. The reference does not get there: it ran at 1.023-1.033x bf16
# SDPA (GPU time: KERNEL_HOST_LEAD_S) in ten rounds on an H200 (2026-12-01, torch 2.11.0+cu130,
# Triton 3.6; float16 dots, 4 splits, 5 stages; with Triton's default 3 stages 0.951-0.964x;
# hardware_fixtures/h200_sxm.toml). 0.7 leaves room for spread, a learner's untuned launch
# (3 stages) and a kernel whose dots run in bfloat16 (the conversion from e4m3 then takes
# several instructions: 0.79x at this shape with the first version's launch); dequantizing the
# whole cache first (0.055x) falls far below.
THRESHOLD = 0.7
SHAPES = [(16, 16384)]  # (sequences, tokens each): long context


def gpu_case(batch, tokens, seed=0):
    """q, a shuffled paged cache with garbage in spare blocks, its table and lengths, and the
    same K/V laid out densely for SDPA; built on the GPU (seconds, not minutes)."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    per_seq = -(-tokens // BLOCK_SIZE)
    num_blocks = batch * per_seq + 64
    tables = torch.randperm(num_blocks, device="cuda", generator=gen)[:batch * per_seq]
    tables = tables.view(batch, per_seq).to(torch.int32)
    shape = (num_blocks, BLOCK_SIZE, N_KV_HEADS, D_HEAD)
    cache = [((torch.rand(shape, device="cuda", generator=gen) * 2 - 1) * 1e3).bfloat16()
             for _ in range(2)]
    dense = []
    for c in cache:
        x = torch.randn(batch, per_seq * BLOCK_SIZE, N_KV_HEADS, D_HEAD, device="cuda",
                        generator=gen).bfloat16()
        c[tables.long()] = x.view(batch, per_seq, BLOCK_SIZE, N_KV_HEADS, D_HEAD)
        dense.append(x[:, :tokens].transpose(1, 2).contiguous())  # [batch, n_kv, T, d]
    q = torch.randn(batch, N_HEADS, D_HEAD, device="cuda", generator=gen).bfloat16()
    lens = torch.full((batch,), tokens, dtype=torch.int32, device="cuda")
    return q, cache[0], cache[1], tables, lens, dense[0], dense[1]


def quantize(cache):
    """e4m3 values and float32 scales per (block, token, KV head): amax / 448."""
    amax = cache.float().abs().amax(dim=-1)
    scales = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    return (cache.float() / scales[..., None]).clamp(-448, 448).to(torch.float8_e4m3fn), scales


@pytest.mark.gpu
@pytest.mark.points(3)
@pytest.mark.parametrize("batch,tokens", SHAPES)
def test_triton_fp8_decode_keeps_up_with_bf16_sdpa(batch, tokens):
    """Bugs: an FP8 kernel that is right but slow - dequantizing whole tiles to float32
    before the dot, scales loaded per element instead of per token, one program per query
    head, no split of long sequences. Must reach THRESHOLD x the speed of bf16 SDPA on the
    same tokens, with the right output, below the copy roof."""
    require_cuda()
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip(f"e4m3 conversions need compute capability >= 8.9; "
                    f"{torch.cuda.get_device_name()} has {torch.cuda.get_device_capability()}")
    from course.triton_track import import_triton

    import_triton()
    from exercises.lesson16.triton_kv_fp8 import paged_decode_fp8_triton

    q, k_cache, v_cache, tables, lens, k, v = gpu_case(batch, tokens)
    kq, ks = quantize(k_cache)
    vq, vs = quantize(v_cache)
    del k_cache, v_cache
    kernel = lambda: paged_decode_fp8_triton(q, kq, vq, ks, vs, tables, lens)  # noqa: E731
    q4 = q.view(batch, N_HEADS, 1, D_HEAD)
    dense = lambda: F.scaled_dot_product_attention(q4, k, v, enable_gqa=True)  # noqa: E731
    got = kernel()
    per_seq = tables.shape[1]

    def dequant(c, s):
        x = (c.float() * s[..., None]).bfloat16()[tables.long()]
        x = x.view(batch, per_seq * BLOCK_SIZE, N_KV_HEADS, D_HEAD)[:, :tokens]
        return x.transpose(1, 2).contiguous()

    expected = F.scaled_dot_product_attention(q4, dequant(kq, ks), dequant(vq, vs),
                                              enable_gqa=True)
    assert_close(got, expected.view(batch, N_HEADS, D_HEAD), atol=3e-2, rtol=3e-2,
                 what="paged_decode_fp8_triton on the GPU",
                 reference="bf16 SDPA over the dequantized cache")
    del expected
    t_dense = cuda_time(dense, warmup=10, iters=50, host_lead_s=KERNEL_HOST_LEAD_S)
    t_kernel = cuda_time(kernel, warmup=10, iters=50, host_lead_s=KERNEL_HOST_LEAD_S)
    copy_bw = measure_copy_bandwidth(1 << 30, iters=20)
    fp8_bytes = 2 * batch * tokens * N_KV_HEADS * (D_HEAD + 4)
    bf16_bytes = 2 * batch * tokens * N_KV_HEADS * D_HEAD * 2
    bw_dense, bw_kernel = bf16_bytes / t_dense.median_s, fp8_bytes / t_kernel.median_s
    check_roofline(bw_dense, copy_bw, "bf16 SDPA decode bandwidth (bytes/s)", tolerance=0.15)
    check_roofline(bw_kernel, copy_bw, "FP8 paged decode bandwidth (bytes/s)", tolerance=0.15)
    ratio = t_dense.median_s / t_kernel.median_s
    record("lesson16.triton_fp8_paged_decode", {
        "shape": f"{batch}x{tokens}", "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "copy_bytes_per_s": copy_bw, "bf16_sdpa_bytes_per_s": bw_dense,
        "fp8_kernel_bytes_per_s": bw_kernel, "ratio_to_bf16_sdpa": ratio,
        "kernel_median_s": t_kernel.median_s, "dense_median_s": t_dense.median_s})
    assert ratio >= THRESHOLD, (
        f"the FP8 paged decode ran {ratio:.2f}x the speed of bf16 SDPA on the same {batch} x "
        f"{tokens} tokens ({bw_kernel / 1e12:.2f} TB/s of FP8 cache against "
        f"{bw_dense / 1e12:.2f} TB/s of bf16); at least {THRESHOLD}x is expected: it reads "
        "half the bytes. Convert e4m3 to float16 in registers, apply the scales per token to "
        "scores and probabilities, and split long sequences.")


@pytest.mark.gpu
@pytest.mark.points(2)
@pytest.mark.parametrize("q_size,v_size", [(6e4, 1.0), (1.0, 1e-5)],
                         ids=["queries-beyond-float16", "values-below-float16"])
def test_triton_fp8_decode_outside_float16_range(q_size, v_size):
    """Bugs: float16 dots on operands that float16 cannot hold. Queries of size 6e4 (every row
    has entries past float16's 65,504, an infinity once converted) and a V cache of size 1e-5
    (its per-token scales 4e-8 to 1.2e-7, so p x scale lies below float16's smallest normal
    number, 6.1e-5, where few or none of its bits are left) are ordinary BF16 inputs: each
    query row and each tile's V scales must be brought into float16's range by a power of two,
    exactly, and the power taken off in float32."""
    require_cuda()
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip(f"e4m3 conversions need compute capability >= 8.9; "
                    f"{torch.cuda.get_device_name()} has {torch.cuda.get_device_capability()}")
    from course.triton_track import import_triton

    import_triton()
    from exercises.lesson16.triton_kv_fp8 import paged_decode_fp8_triton

    batch, tokens = 2, 200
    q, k_cache, v_cache, tables, lens, _, _ = gpu_case(batch, tokens, seed=3)
    q = (q.float() * q_size).bfloat16()
    kq, ks = quantize(k_cache)
    vq, vs = quantize((v_cache.float() * v_size).bfloat16())
    got = paged_decode_fp8_triton(q, kq, vq, ks, vs, tables, lens).float()
    per_seq = tables.shape[1]

    def dequant(c, s):
        x = (c.float() * s[..., None])[tables.long()]
        x = x.view(batch, per_seq * BLOCK_SIZE, N_KV_HEADS, D_HEAD)[:, :tokens]
        return x.transpose(1, 2).contiguous()

    expected = F.scaled_dot_product_attention(q.float().view(batch, N_HEADS, 1, D_HEAD),
                                              dequant(kq, ks), dequant(vq, vs),
                                              enable_gqa=True).view(batch, N_HEADS, D_HEAD)
    top = expected.abs().max().item()
    assert torch.isfinite(got).all(), (
        f"paged_decode_fp8_triton gave {int((~torch.isfinite(got)).sum())} non-finite outputs "
        f"for queries of size {q_size:g} and values of size {v_size:g}: float16 holds at most "
        "65,504. Scale each query row by a power of two before the dot, and take it off the "
        "scores in float32.")
    assert_close(got, expected, atol=3e-2 * top, rtol=3e-2,
                 what=f"paged_decode_fp8_triton, queries of size {q_size:g}, values of size "
                      f"{v_size:g}",
                 reference="float32 SDPA over the dequantized cache (float16 keeps numbers "
                           "from 6e-8 to 65,504: bring each tile's V scales near 1 by a power "
                           "of two before p x scale goes to float16)")
