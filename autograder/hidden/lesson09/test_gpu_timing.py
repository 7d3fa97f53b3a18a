"""Hidden GPU grader, lesson 09: the learner's time_kernel over torch.cuda
(``course.simdevice.CudaDevice``), against ``course.bench.cuda_time`` measured in the same run.

Both time the same kernel with the same protocol, so their medians must agree; a flush inside
the timed window, a window around all calls or a host clock read before the device finished
moves the learner's figure far from course.bench's (or above the roofline). The L2 check
times a 16 MiB operand that fits in the cache twice: flushed before each call, and with a
spin kernel that keeps the device busy without touching memory in place of the flush.
"""

import statistics

import pytest
import torch

from course.bench import check_roofline, cuda_time, record, require_cuda, spec_or_measure
from course.simdevice import CudaDevice
from exercises.lesson09.timing import time_kernel

N = 4096  # bf16 GEMM, 2 N^3 = 137 GFLOP: about 0.2 ms at 700 TFLOP/s
ROUNDS = 5
# Measured on an H200 (2026-11-30, torch 2.11.0+cu130; hardware_fixtures/h200_sxm.toml
# [calibration.ten_runs]). time_kernel and cuda_time run the same protocol on the same GEMM,
# interleaved over 5 rounds, so only clock and power drift separates their medians: the
# reference read 0.998 .. 1.000. A flush inside the window adds the zeroing of 256 MiB (about
# 0.065 ms at 4 TB/s) to a 0.18 ms GEMM, +35%; a host clock without synchronize reads
# microseconds (and fails the roofline first).
RATIO_BAND = (0.9, 1.1)
# Coefficient of variation of the 5 medians of time_kernel: the reference read 0.011 .. 0.030
# (the GEMM slows a little as the GPU warms); 0.05 fails a timer whose samples carry the host's
# jitter (no warm-up, a launch-bound window) without flaking on that drift.
MAX_CV = 0.05
# A 16 MiB read from HBM against the same read from a 60 MiB L2 that holds it: the reference read
# cold / warm = 1.28 .. 1.30 (each window also holds a kernel's fixed cost, a few microseconds).
# A timer that never flushes reads about 1.0. 1.12 leaves a 12% margin under the reference.
MIN_COLD_OVER_WARM = 1.12
OPERAND_BYTES = 16 << 20


@pytest.mark.gpu
@pytest.mark.points(2)
def test_time_kernel_agrees_with_course_bench_on_a_gemm():
    """Bugs: the L2 flush inside the timed window; one pair of events around all calls (the
    flushes then fall inside it); the host clock read without a synchronize (a rate above the
    roof)."""
    require_cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(N, N, device="cuda", generator=g).to(torch.bfloat16)
    b = torch.randn(N, N, device="cuda", generator=g).to(torch.bfloat16)
    out = torch.empty(N, N, device="cuda", dtype=torch.bfloat16)
    fn = lambda: torch.mm(a, b, out=out)  # noqa: E731
    fn()
    want = a[:64].float() @ b.float()
    rel = ((out[:64].float() - want).norm() / want.norm()).item()
    assert rel < 2e-2, f"the GEMM itself is wrong (relative error {rel:.3g}); timing discarded"
    device = CudaDevice()
    ours, bench = [], []
    for _ in range(ROUNDS):
        bench.append(cuda_time(fn, warmup=5, iters=40).median_s)
        ours.append(statistics.median(time_kernel(fn, device, warmup=5, iters=40, flush=True)))
    ours_s, bench_s = statistics.median(ours), statistics.median(bench)
    peak = spec_or_measure().peak_flops_per_s["bf16"]
    check_roofline(2 * N**3 / ours_s, peak, "bf16 GEMM rate timed by time_kernel (FLOP/s)")
    ratio = ours_s / bench_s
    cv = statistics.pstdev(ours) / statistics.fmean(ours)
    record("lesson09.time_kernel_vs_cuda_time", {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "gemm_n": N, "time_kernel_medians_s": ours,
        "cuda_time_medians_s": bench, "ratio": ratio, "cv": cv,
        "time_kernel_flops_per_s": 2 * N**3 / ours_s})
    assert RATIO_BAND[0] <= ratio <= RATIO_BAND[1], (
        f"time_kernel's median {ours_s * 1e3:.4f} ms is {ratio:.3f}x course.bench.cuda_time's "
        f"{bench_s * 1e3:.4f} ms on a {N}^3 bf16 GEMM; expected {RATIO_BAND[0]}-{RATIO_BAND[1]}x. "
        "Flush before recording the start event, and use one pair of events per call.")
    assert cv < MAX_CV, (
        f"5 medians of time_kernel vary by {cv:.1%} (coefficient of variation); at most "
        f"{MAX_CV:.0%} expected: {[round(t * 1e3, 4) for t in ours]} ms")


class SpinInsteadOfFlush(CudaDevice):
    """CudaDevice whose flush_l2 keeps the device busy (a spin of about 100 us) without touching
    memory: the host queues the timed call during the spin, so the window holds no launch gap,
    and the operand stays in L2."""

    def flush_l2(self) -> None:
        torch.cuda._sleep(200_000)  # clock cycles: about 100 us at 2 GHz


@pytest.mark.gpu
@pytest.mark.points(1)
def test_flush_makes_an_operand_that_fits_in_l2_cold():
    """Bug: the flush never done (or done only when flush=False): an operand that fits in the
    L2 is then read from the cache and the kernel looks faster than it is in a model."""
    require_cuda()
    spec = spec_or_measure()
    if spec.last_level_cache_bytes < 2 * OPERAND_BYTES:
        pytest.skip(f"the L2 ({spec.last_level_cache_bytes >> 20} MiB) cannot hold a 16 MiB "
                    "operand comfortably")
    x = torch.rand(OPERAND_BYTES // 4, device="cuda", generator=torch.Generator(
        device="cuda").manual_seed(1))
    fn = lambda: x.sum()  # noqa: E731
    total = fn().item()
    want = x.double().sum().item()
    assert abs(total - want) <= 1e-3 * abs(want), f"sum is {total}, expected {want}"
    cold = statistics.median(time_kernel(fn, CudaDevice(), warmup=10, iters=100, flush=True))
    warm = statistics.median(time_kernel(fn, SpinInsteadOfFlush(), warmup=10, iters=100,
                                         flush=True))
    check_roofline(OPERAND_BYTES / cold, spec.memory_bandwidth_bytes_per_s,
                   "16 MiB read after an L2 flush (bytes/s)", tolerance=0.15)
    record("lesson09.l2_flush", {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "operand_bytes": OPERAND_BYTES, "cold_median_s": cold,
        "warm_median_s": warm, "cold_over_warm": cold / warm,
        "cold_bytes_per_s": OPERAND_BYTES / cold, "warm_bytes_per_s": OPERAND_BYTES / warm})
    assert cold >= MIN_COLD_OVER_WARM * warm, (
        f"a 16 MiB sum took {cold * 1e6:.2f} us after an L2 flush and {warm * 1e6:.2f} us with "
        f"the operand cached ({cold / warm:.2f}x); at least {MIN_COLD_OVER_WARM}x expected. "
        "Call device.flush_l2() before each timed call when flush=True.")
