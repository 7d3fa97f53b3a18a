"""Hidden GPU grader, lesson 22: a 512 MiB KV hand-off between two GPUs through your protocol.

Rank 0 (prefill) holds a paged bf16 KV cache of Llama-3-8B's shape (32 layers, blocks of 16
tokens, 8 KV heads of 128) and a 4,096-token sequence in 256 shuffled blocks; it gathers the
sequence's K and V blocks into one uint8 payload on its GPU (536,870,912 B = 512 MiB) and sends
it with ``send_kv``; rank 1 (decode) receives it with ``recv_kv`` on its GPU. NCCL, rank r on
cuda:r. The baseline, measured in the same run by the test process before the ranks start: a
plain ``copy_`` of the same number of bytes from cuda:0 to cuda:1 (peer-to-peer over NVLink
where the GPUs have it). Both are timed on the host around a synchronised region (a 512 MiB
transfer takes milliseconds: host timing is accurate to far better than the margin), best of
several runs.
"""

import time

import pytest
import torch

import hardware_fixtures
from course import bench
from course.bench import check_roofline, require_cuda
from course.config import LLAMA3_8B
from course.distributed import run_ranks
from exercises.lesson22.transfer import kv_transfer_time

pytestmark = [pytest.mark.gpu, pytest.mark.distributed]

# Set by reasoning, then measured: the protocol adds one 32-byte header send and a
# host read of it (tens of microseconds) to an NCCL send of one contiguous 512 MiB buffer, which
# NCCL's P2P path over NVLink carries at close to a copy_'s rate (lesson 19 saw an all-reduce
# reach 0.59 of the link in bus bandwidth; a point-to-point send has no reduction and no ring).
# On the order of 1.2-1.5 ms per hand-off, 60% of the copy's rate leaves room for NCCL's
# chunked pipelining and the header's round trip; a payload staged through the host, sent in
# small pieces, or copied again on either side falls well below it. Measured on an H200 pair (torch 2.11, CUDA 13, 2026-11-30; hardware_fixtures/h200_sxm.toml [calibration.ten_runs]):
# 0.78 .. 0.93 of the copy in 13 rounds.
THRESHOLD = 0.6

N_LAYERS, BLOCK, N_KV, D_HEAD, TOKENS, NUM_BLOCKS = 32, 16, 8, 128, 4096, 320
ITERS = 10


def _require_two_gpus():
    require_cuda()
    if torch.cuda.device_count() < 2:
        pytest.skip(f"needs 2 CUDA GPUs for a hand-off, found {torch.cuda.device_count()}")
    return hardware_fixtures.current()


def _payload(device):
    """The sequence's K and V blocks of a seeded cache, gathered into one uint8 payload."""
    g = torch.Generator(device=device).manual_seed(22)
    shape = (N_LAYERS, NUM_BLOCKS, BLOCK, N_KV, D_HEAD)
    blocks = torch.randperm(NUM_BLOCKS, generator=g, device=device)[:TOKENS // BLOCK]
    parts = []
    for _ in range(2):  # K, then V
        cache = torch.randn(shape, generator=g, device=device, dtype=torch.bfloat16)
        parts.append(cache.view(torch.uint8).index_select(1, blocks).reshape(-1))
        del cache
    return torch.cat(parts)


def _copy_bytes_per_s(nbytes):
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device="cuda:0")
    dst = torch.empty(nbytes, dtype=torch.uint8, device="cuda:1")
    for _ in range(3):
        dst.copy_(src)
    best = float("inf")
    for _ in range(ITERS):
        torch.cuda.synchronize("cuda:0")
        torch.cuda.synchronize("cuda:1")
        t0 = time.perf_counter()
        dst.copy_(src)
        torch.cuda.synchronize("cuda:0")
        torch.cuda.synchronize("cuda:1")
        best = min(best, time.perf_counter() - t0)
    assert torch.equal(dst[:1024].cpu(), src[:1024].cpu())
    del src, dst
    torch.cuda.empty_cache()
    return nbytes / best


def _handoff_rank(rank, world, iters):
    import torch.distributed as dist
    from exercises.lesson22.handoff import recv_kv, send_kv
    device = f"cuda:{rank}"
    payload = _payload(device)
    best, ok, meta = float("inf"), True, None
    for i in range(iters + 2):  # two untimed warm-ups
        dist.barrier()
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        if rank == 0:
            send_kv(payload, TOKENS, 1234, dst=1)
        else:
            got, n_tokens, first = recv_kv(src=0, device=device)
        torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        if rank == 1:
            meta = (n_tokens, first, str(got.device), got.dtype == torch.uint8)
            ok = ok and bool(torch.equal(got, payload))
            del got
        if i >= 2:
            best = min(best, dt)
    dist.barrier()
    return best, ok, meta, payload.numel()


@pytest.mark.points(3)
def test_kv_handoff_between_two_gpus_near_copy_bandwidth():
    """Bugs: a payload staged through the host (``.cpu()`` before sending, or received into a
    CPU tensor and moved), sent in many small pieces or one block at a time, copied again on
    either side; the received bytes differing from the sent ones; the header's integers lost."""
    spec = _require_two_gpus()
    nbytes = 2 * TOKENS * N_LAYERS * N_KV * D_HEAD * 2
    assert nbytes == 536_870_912
    copy_bw = _copy_bytes_per_s(nbytes)
    results = run_ranks(_handoff_rank, 2, ITERS, backend="nccl", timeout=240)
    t = max(r[0] for r in results)  # the receiver finishes last; the sender may return earlier
    sent_bytes = results[0][3]
    n_tokens, first, device, is_uint8 = results[1][2]
    assert sent_bytes == nbytes
    assert results[1][1], "the received payload differs from the sent bytes"
    assert (n_tokens, first) == (TOKENS, 1234), f"header arrived as n_tokens={n_tokens}, first={first}"
    assert device == "cuda:1" and is_uint8, f"payload received as {device}, uint8={is_uint8}"
    bw = nbytes / t
    link = None
    if spec is not None:
        link = spec.nvlink_bytes_per_s_per_direction or spec.pcie_x16_bytes_per_s_per_direction
        check_roofline(bw, link, "KV hand-off bandwidth (bytes/s, one direction)", tolerance=0.15)
        check_roofline(copy_bw, link, "cuda:0 -> cuda:1 copy bandwidth (bytes/s)", tolerance=0.15)
        predicted = kv_transfer_time(LLAMA3_8B, TOKENS, link)
        assert predicted == pytest.approx(nbytes / link), \
            "kv_transfer_time must be the 512 MiB over the per-direction link bandwidth"
    ratio = bw / copy_bw
    bench.record("lesson22.kv_handoff", {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "nbytes": nbytes, "handoff_best_s": t,
        "handoff_bytes_per_s": bw, "copy_p2p_bytes_per_s": copy_bw,
        "handoff_over_copy_ratio": ratio,
        "link_bytes_per_s_per_direction": link})
    assert ratio >= THRESHOLD, (
        f"the 512 MiB hand-off ran at {bw / 1e9:.0f} GB/s, {ratio:.2f} of a plain cuda:0 -> "
        f"cuda:1 copy ({copy_bw / 1e9:.0f} GB/s) in the same run; at least {THRESHOLD} expected")
