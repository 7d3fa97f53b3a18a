"""Hidden GPU grader, lesson 12, kernel track: the split-KV Triton kernel against dense SDPA.

Both run in the same process on the same tokens: the dense side holds each sequence's K/V
contiguously (``k, v: [batch, 8, tokens, 128]``) and calls
``F.scaled_dot_product_attention(q[batch, 32, 1, 128], k, v, enable_gqa=True)``; the kernel
reads the same K/V from shuffled 16-token blocks of a larger cache (spare blocks hold
garbage). Ratio = SDPA's median time / the kernel's (CUDA events, L2 flushed before each
call). Effective bandwidth = bytes of K and V the step must read / median time.
"""

import pytest
import torch
import torch.nn.functional as F

from course.bench import (KERNEL_HOST_LEAD_S, check_roofline, cuda_time, measure_copy_bandwidth,
                          record, require_cuda)
from course.testing import assert_close

N_HEADS, N_KV_HEADS, D_HEAD, BLOCK_SIZE = 32, 8, 128, 16
# A one-pass Triton kernel with one program per (sequence, KV head) reached 0.92x dense SDPA at
# 64 x 4k and 0.50x at 16 x 16k on an H200 (128 programs for 132 SMs). The split-KV reference ran
# at 0.958-0.965x (64 x 4k) and 0.953-0.962x (16 x 16k) in ten rounds (2026-12-01, torch
# 2.11.0+cu130, Triton 3.6; hardware_fixtures/h200_sxm.toml). 0.8 leaves 16% for spread and a
# learner's untuned launch, and still fails a kernel without the split at 16 x 16k.
THRESHOLD = 0.8
SHAPES = [(64, 4096), (16, 16384)]  # (sequences, tokens each)


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


@pytest.mark.gpu
@pytest.mark.points(3)
@pytest.mark.parametrize("batch,tokens", SHAPES)
def test_triton_paged_decode_speed(batch, tokens):
    """Bugs: a kernel that is right but slow - one program per (sequence, KV head) with no
    split of the sequence (the GPU half idle at 16 x 16k), a program per query head (each
    K/V byte read group times), a float32 load of the cache, per-token block-table walks that
    serialise. Must reach THRESHOLD x dense SDPA's speed on the same tokens, with the same
    output, and a bandwidth below the copy roof."""
    require_cuda()
    from course.triton_track import import_triton

    import_triton()
    from exercises.lesson12.triton_paged import paged_decode_triton

    q, k_cache, v_cache, tables, lens, k, v = gpu_case(batch, tokens)
    kernel = lambda: paged_decode_triton(q, k_cache, v_cache, tables, lens)  # noqa: E731
    q4 = q.view(batch, N_HEADS, 1, D_HEAD)
    dense = lambda: F.scaled_dot_product_attention(q4, k, v, enable_gqa=True)  # noqa: E731
    got = kernel()  # before the dense answer exists in this frame
    assert_close(got, dense().view(batch, N_HEADS, D_HEAD), atol=2e-2, rtol=2e-2,
                 what="paged_decode_triton on the GPU", reference="dense SDPA on the same tokens")
    t_dense = cuda_time(dense, warmup=10, iters=50, host_lead_s=KERNEL_HOST_LEAD_S)
    t_kernel = cuda_time(kernel, warmup=10, iters=50, host_lead_s=KERNEL_HOST_LEAD_S)
    copy_bw = measure_copy_bandwidth(1 << 30, iters=20)
    kv_bytes = 2 * batch * tokens * N_KV_HEADS * D_HEAD * 2
    bw_dense, bw_kernel = kv_bytes / t_dense.median_s, kv_bytes / t_kernel.median_s
    check_roofline(bw_dense, copy_bw, "dense decode bandwidth (bytes/s)", tolerance=0.15)
    check_roofline(bw_kernel, copy_bw, "Triton paged decode bandwidth (bytes/s)", tolerance=0.15)
    ratio = t_dense.median_s / t_kernel.median_s
    record("lesson12.triton_paged_decode", {
        "shape": f"{batch}x{tokens}", "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "copy_bytes_per_s": copy_bw, "dense_bytes_per_s": bw_dense,
        "kernel_bytes_per_s": bw_kernel, "ratio_to_dense": ratio,
        "kernel_median_s": t_kernel.median_s, "dense_median_s": t_dense.median_s})
    assert ratio >= THRESHOLD, (
        f"the Triton paged decode ran at {bw_kernel / 1e12:.2f} TB/s, {ratio:.2f}x the speed "
        f"of dense SDPA ({bw_dense / 1e12:.2f} TB/s) on the same {batch} x {tokens} tokens; "
        f"at least {THRESHOLD}x is expected. Check the split count (programs per SM), that one "
        "program reads each K/V tile once for its whole group, and the tile size.")
