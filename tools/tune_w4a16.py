"""Tune lesson 15's Triton W4A16 GEMV at batch 1 against torch's int4 kernel and the bf16 GEMV.

Run from the repository root:

    python -m tools.tune_w4a16                 # an H200: about 2 minutes
    python -m tools.tune_w4a16 --json tune.json
    python -m tools.tune_w4a16 --smoke         # tiny shapes on the CPU, Triton's interpreter

For each shape ``N x K`` (4096x4096, 4096x14336, 14336x4096, 8192x8192; bf16 activations,
group 128) it quantizes a random bf16 weight with lesson 15's reference (``W4Linear``), checks
every configuration's output against ``x @ dequant(W).T`` once, then times, in the same run and
with ``course.bench.cuda_time`` (L2 flushed before each call):

* the Triton kernel ``w4a16_gemv_triton`` under each launch configuration (block_n, block_k,
  num_warps, num_stages, split_k): a first sweep over the block sizes and warps, then stages
  and split-K around the best few;
* torch's own int4 kernel (``torch.ops.aten._weight_int4pack_mm`` on ``W4Linear.int4pack``);
* the bf16 GEMV ``x @ w.T``.

It prints one table (microseconds, the Triton kernel's speed as a multiple of torch's int4 and
of bf16, weight bytes per second of each) and the best configuration per shape, as keyword
arguments for ``w4a16_gemv_triton``. The weight bytes count what each one reads: nibbles plus
bf16 scales and zeros for both int4 kernels (the layer's float32 ones rounded to bf16 once, so
that both compute the same product), two bytes per entry for bf16.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time

SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096), (8192, 8192)]   # (N, K)
SMOKE_SHAPES = [(48, 256), (40, 512)]
GROUP = 128
FIRST = {"block_n": (4, 8, 16), "block_k": (1024, 2048, 4096), "num_warps": (1, 2, 4)}
SECOND = {"num_stages": (1, 2), "split_k": (1, 2, 4)}
KEEP = 3                                    # best configurations of the first sweep refined


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny shapes on the CPU under Triton's interpreter; checks, no timing")
    ap.add_argument("--json", metavar="FILE", help="also write every timing to FILE")
    ap.add_argument("--iters", type=int, default=50, help="timed calls per configuration")
    ap.add_argument("--budget-s", type=float, default=150.0,
                    help="stop refining (the second sweep) once this many seconds have passed")
    return ap.parse_args(argv)


def layer(n, k, device, seed=0):
    import torch

    from solutions.lesson15.w4a16 import W4Linear
    gen = torch.Generator(device=device).manual_seed(seed)
    w = (torch.randn(n, k, device=device, generator=gen) / k**0.5).bfloat16()
    x = torch.randn(1, k, device=device, generator=gen).bfloat16()
    lin = W4Linear.from_weight(w, group_size=GROUP)
    # scales and zeros in BF16, as torch's kernel reads them (rounded once, used by everyone)
    lin = dataclasses.replace(lin, scales=lin.scales.bfloat16().float(),
                              zeros=lin.zeros.bfloat16().float())
    return w, x, lin


def first_sweep():
    names = list(FIRST)
    for values in itertools.product(*FIRST.values()):
        yield dict(zip(names, values), num_stages=1, split_k=1)


def second_sweep(best):
    seen = set()
    for cfg in best:
        for stages, split in itertools.product(*SECOND.values()):
            c = dict(cfg, num_stages=stages, split_k=split)
            key = tuple(sorted(c.items()))
            if key not in seen:
                seen.add(key)
                yield c


def check(gemv, x, lin, want, cfg, packed=None):
    """Relative error of one configuration against x @ dequant(W).T (float32); ``packed``: the
    weight already re-packed for the kernel (else the kernel's wrapper re-packs it)."""
    scales, zeros = lin.scales.bfloat16(), lin.zeros.bfloat16()
    if packed is None:
        got = gemv(x, lin.packed, scales, zeros, GROUP, **cfg).float()
    else:
        got = gemv(x, packed, scales, zeros, GROUP, repacked=True, **cfg).float()
    return ((got - want).norm() / want.norm()).item()


def smoke(args) -> int:
    os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    from solutions.lesson15.triton_w4a16 import w4a16_gemv_triton
    cfgs = [dict(block_n=8, block_k=128, num_warps=2, num_stages=1, split_k=1),
            dict(block_n=16, block_k=256, num_warps=4, num_stages=2, split_k=2),
            dict(block_n=4, block_k=64, num_warps=1, num_stages=1, split_k=4)]
    bad = 0
    print(f"{'shape':>10} {'config':<72} rel. error")
    for n, k in SMOKE_SHAPES:
        w, x, lin = layer(n, k, "cpu")
        want = x.float() @ lin.dequantize().T
        for cfg in cfgs:
            t0 = time.perf_counter()
            rel = check(w4a16_gemv_triton, x, lin, want, cfg)
            ok = rel < 1e-2
            bad += not ok
            print(f"{n}x{k:<5} {str(cfg):<72} {rel:.2e} {'ok' if ok else 'WRONG'} "
                  f"({time.perf_counter() - t0:.2f} s interpreted)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"smoke": True, "wrong": bad}, fh)
    return 1 if bad else 0


def gpu(args) -> int:
    import torch

    from course.bench import KERNEL_HOST_LEAD_S, cuda_time, measure_copy_bandwidth
    from solutions.lesson15.triton_w4a16 import repack_for_gemv, w4a16_gemv_triton
    from solutions.lesson15.w4a16 import int4pack_mm, w4_bytes

    if not torch.cuda.is_available():
        print("tune_w4a16: needs a CUDA GPU (or --smoke for the CPU check)", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    copy_bw = measure_copy_bandwidth(1 << 30, iters=20)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"copy bandwidth {copy_bw / 1e9:.0f} GB/s (read + written)")
    rows, best_cfgs = [], {}
    for n, k in SHAPES:
        w, x, lin = layer(n, k, "cuda")
        want = x.float() @ lin.dequantize().T
        weight, sz = lin.int4pack(inner_k_tiles=8, dtype=torch.bfloat16)
        rel_t = ((int4pack_mm(x, weight, sz, GROUP).float() - want).norm() / want.norm()).item()
        lead = dict(iters=args.iters, host_lead_s=KERNEL_HOST_LEAD_S)   # GPU time only
        t_int4 = cuda_time(lambda: int4pack_mm(x, weight, sz, GROUP), **lead).median_s
        t_bf16 = cuda_time(lambda: x @ w.T, **lead).median_s
        bytes_ours = bytes_t4 = w4_bytes(n, k, GROUP, 2, 2)   # both read BF16 scales, zeros
        bytes_bf16 = 2 * n * k
        packed = repack_for_gemv(lin.packed, GROUP)   # once per weight, outside the timing
        scales, zeros = lin.scales.bfloat16(), lin.zeros.bfloat16()

        def run(cfgs):
            out = []
            for cfg in cfgs:
                try:
                    rel = check(w4a16_gemv_triton, x, lin, want, cfg, packed)
                except Exception as exc:   # a configuration Triton cannot compile (shared memory)
                    print(f"  {n}x{k} {cfg}: skipped ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:80]})")
                    continue
                if not rel < 1e-2:
                    print(f"  {n}x{k} {cfg}: WRONG, relative error {rel:.3g}")
                    continue
                t = cuda_time(lambda: w4a16_gemv_triton(x, packed, scales, zeros,
                                                        GROUP, repacked=True, **cfg),
                              warmup=5, iters=args.iters,
                              host_lead_s=KERNEL_HOST_LEAD_S).median_s
                out.append((t, cfg, rel))
            return sorted(out, key=lambda r: r[0])

        first = run(first_sweep())
        if time.perf_counter() - t_start < args.budget_s:
            second = run(second_sweep([cfg for _, cfg, _ in first[:KEEP]]))
        else:
            second = []
            print(f"  {n}x{k}: past --budget-s {args.budget_s:.0f} s, second sweep skipped")
        timed = sorted(first + second, key=lambda r: r[0])
        if not timed:
            print(f"{n}x{k}: no configuration ran correctly")
            continue
        t_best, cfg_best, rel_best = timed[0]
        best_cfgs[f"{n}x{k}"] = cfg_best
        rows.append({
            "shape": f"{n}x{k}", "triton_us": t_best * 1e6, "torch_int4_us": t_int4 * 1e6,
            "bf16_us": t_bf16 * 1e6, "triton_over_torch_int4_speed_ratio": t_int4 / t_best,
            "triton_over_bf16_speed_ratio": t_bf16 / t_best,
            "torch_int4_over_bf16_speed_ratio": t_bf16 / t_int4,
            "triton_weight_bytes_per_s": bytes_ours / t_best,
            "torch_int4_weight_bytes_per_s": bytes_t4 / t_int4,
            "bf16_weight_bytes_per_s": bytes_bf16 / t_bf16,
            "triton_rel_error": rel_best, "torch_int4_rel_error": rel_t, "best": cfg_best,
            "configs": [{"us": t * 1e6, **c} for t, c, _ in timed]})
        del w, x, lin, weight, sz, want
        torch.cuda.empty_cache()

    print()
    print(f"{'shape':>11} {'triton us':>9} {'int4 us':>8} {'bf16 us':>8} {'/int4':>6} "
          f"{'/bf16':>6} {'triton GB/s':>11} {'int4 GB/s':>9} {'bf16 GB/s':>9}")
    for r in rows:
        print(f"{r['shape']:>11} {r['triton_us']:9.2f} {r['torch_int4_us']:8.2f} "
              f"{r['bf16_us']:8.2f} {r['triton_over_torch_int4_speed_ratio']:6.2f} "
              f"{r['triton_over_bf16_speed_ratio']:6.2f} "
              f"{r['triton_weight_bytes_per_s'] / 1e9:11.0f} "
              f"{r['torch_int4_weight_bytes_per_s'] / 1e9:9.0f} "
              f"{r['bf16_weight_bytes_per_s'] / 1e9:9.0f}")
    print("\n(/int4, /bf16: the Triton kernel's speed as a multiple of torch's int4 kernel and "
          "of the bf16 GEMV; GB/s: weight bytes read per second)")
    print("\nbest configuration per shape (keyword arguments of w4a16_gemv_triton):")
    for shape, cfg in best_cfgs.items():
        print(f"  {shape:>11}: {cfg}")
        top = next(r for r in rows if r["shape"] == shape)["configs"][:5]
        print("              top 5: " + "; ".join(
            f"{c['us']:.2f} us bn{c['block_n']} bk{c['block_k']} w{c['num_warps']} "
            f"s{c['num_stages']} sk{c['split_k']}" for c in top))
    print(f"\n{time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                       "copy_bytes_per_s": copy_bw, "rows": rows}, fh, indent=1)
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    return smoke(args) if args.smoke else gpu(args)


if __name__ == "__main__":
    sys.exit(main())
