"""Measure this GPU's ceilings with course.bench and print a [calibration] table to paste.

    python -m hardware_fixtures.calibrate            # on the GPU to calibrate

After a few seconds of bf16 matmuls to bring the clocks to their sustained state (so the
order of the measurements does not matter), measures each rate `--repeats` times and reports
the median: a device-to-device copy (bytes
read + written per second), an 8192^3 bf16 matmul and an 8192^3 fp8 torch._scaled_mm (FLOP/s),
and SDPA decode (q_len 1, 64 sequences x 32 heads x 4096 tokens x d 128, bf16; bytes of K and V
read per second). Each is checked against the fixture's datasheet roof when one matches.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import torch

import hardware_fixtures
from course import bench


def measure_sdpa_decode_bandwidth(batch: int = 64, heads: int = 32, ctx: int = 4096,
                                  d: int = 128) -> float:
    """Bytes of K and V read per second by one-token SDPA decode (bf16, MHA)."""
    kw = dict(device="cuda", dtype=torch.bfloat16)
    q = torch.randn(batch, heads, 1, d, **kw)
    k = torch.randn(batch, heads, ctx, d, **kw)
    v = torch.randn(batch, heads, ctx, d, **kw)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    timing = bench.cuda_time(lambda: sdpa(q, k, v), warmup=10, iters=100)
    want = torch.softmax((q[:1].float() @ k[:1].float().transpose(-1, -2)) / d**0.5, -1) @ v[:1].float()
    got = sdpa(q[:1], k[:1], v[:1]).float()
    if not ((got - want).norm() / want.norm()).item() < 2e-2:
        raise RuntimeError("SDPA decode output is wrong; timing discarded")
    return (k.nbytes + v.nbytes) / timing.median_s


def warm_up(seconds: float) -> None:
    """Run bf16 matmuls for `seconds` so clocks and power settle before measuring."""
    x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(20):
            x @ x
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    bench.ensure_cuda("hardware_fixtures.calibrate")
    spec = hardware_fixtures.current()
    warm_up(args.warmup_seconds)
    rates = {
        "bf16_gemm_flops_per_s": lambda: bench.measure_gemm_flops(8192, torch.bfloat16),
        "fp8_gemm_flops_per_s": lambda: bench.measure_gemm_flops(8192, torch.float8_e4m3fn),
        "copy_bytes_per_s": lambda: bench.measure_copy_bandwidth(1 << 30),
        "sdpa_decode_bytes_per_s": measure_sdpa_decode_bandwidth,
    }
    roofs = {} if spec is None else {
        "bf16_gemm_flops_per_s": spec.peak_flops("bf16"),
        "fp8_gemm_flops_per_s": spec.peak_flops_per_s.get("fp8"),
        "copy_bytes_per_s": spec.memory_bandwidth_bytes_per_s,
        "sdpa_decode_bytes_per_s": spec.memory_bandwidth_bytes_per_s,
    }
    results, spreads = {}, {}
    for key, measure in rates.items():
        try:
            runs = [measure() for _ in range(args.repeats)]
        except (RuntimeError, TypeError) as exc:           # e.g. no fp8 support on this GPU
            print(f"# {key}: not measured ({exc})", file=sys.stderr)
            continue
        results[key] = statistics.median(runs)
        spreads[key] = (min(runs), max(runs))
        if roofs.get(key):
            bench.check_roofline(results[key], roofs[key], key)
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    print("[calibration]")
    print("provisional = false")
    print(f'device = "{props.name}"')
    print(f'torch = "{torch.__version__}"')
    print(f'cuda = "{torch.version.cuda}"')
    print(f'date = "{datetime.date.today().isoformat()}"')
    print('command = "python -m hardware_fixtures.calibrate"')
    print(f'note = "median of {args.repeats} runs of course.bench (CUDA events, L2 flush, median of '
          f'the timed calls) after {args.warmup_seconds:g} s of warm-up; fp8 with use_fast_accum; '
          f'{props.multi_processor_count} SMs, '
          f'L2 {getattr(props, "L2_cache_size", 0) >> 20} MiB, {props.total_memory >> 20} MiB"')
    print(f"device_total_memory_bytes = {props.total_memory}  # torch total_memory, "
          f"{props.total_memory >> 20} MiB")
    for key, value in results.items():
        lo, hi = spreads[key]
        print(f"{key} = {value:.4g}    # runs {lo:.4g} .. {hi:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
