"""Sweep the launch parameters of the kernel track's paged decode (lessons 12 and 16).

On one GPU, for each decode shape (bf16, 32 query heads, 8 KV heads, d_head 128, 16-token
blocks shuffled over a larger cache), times lesson 12's ``paged_decode_triton`` for every
config of a grid (num_splits or "auto", block_n, num_warps, num_stages) and dense SDPA decode
on the same tokens (``F.scaled_dot_product_attention(q[B, 32, 1, 128], k[B, 8, T, 128], v,
enable_gqa=True)`` on contiguous K/V), checks every output against SDPA's, and prints a table
(shape, config, kernel us, SDPA us, ratio = SDPA time / kernel time, TB/s of K/V read), the
best config per shape, and lesson 16's ``paged_decode_fp8_triton`` against bf16 SDPA at the
same shapes (its "auto" config and the best bf16 config).

    python tools/tune_paged_decode.py                 # the full sweep on a GPU (a few minutes)
    python tools/tune_paged_decode.py --quick         # fewer configs
    python tools/tune_paged_decode.py --json out.json # also write every row as JSON
    python tools/tune_paged_decode.py --impl exercises  # a learner's kernels instead
    python tools/tune_paged_decode.py --smoke         # tiny shapes on the CPU (interpreter),
                                                      # outputs checked, nothing timed

Times are medians of CUDA-event timings with the L2 flushed before each call
(``course.bench.cuda_time``).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_HEADS, N_KV_HEADS, D_HEAD, BLOCK_SIZE = 32, 8, 128, 16
SHAPES = [(64, 4096), (256, 1024), (16, 16384), (4, 32768)]  # (sequences, tokens each)
# Smoke: the same head layout scaled down so the interpreter finishes in seconds.
SMOKE = dict(n_heads=8, n_kv_heads=2, d_head=32, block_size=16,
             shapes=[(2, 100), (1, 300)])

GRID = dict(num_splits=["auto", 1, 2, 4, 8, 16, 32], block_n=[32, 64, 128],
            num_warps=[4, 8], num_stages=[1, 2, 3])
QUICK = dict(num_splits=["auto", 1, 4, 16], block_n=[64, 128], num_warps=[4, 8],
             num_stages=[2, 3])
SMOKE_GRID = dict(num_splits=["auto", 1, 3], block_n=[16, 32], num_warps=[4], num_stages=[2])
TOLERANCE = 2e-2  # bf16 output against SDPA's (both round to bf16 once)
FP8_TOLERANCE = 3e-2  # against SDPA over the dequantised cache


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes on the CPU under Triton's interpreter; checks, no timing")
    p.add_argument("--quick", action="store_true", help="a smaller grid of configs")
    p.add_argument("--impl", default="solutions", choices=["solutions", "exercises"],
                   help="whose kernels to time (default: the reference)")
    p.add_argument("--json", metavar="PATH", help="write every row as JSON to PATH")
    p.add_argument("--iters", type=int, default=20, help="timed calls per config")
    p.add_argument("--shape", action="append", metavar="BxT",
                   help="only this shape (repeatable), e.g. --shape 16x16384")
    return p.parse_args(argv)


def build_case(batch, tokens, *, n_heads, n_kv_heads, d_head, block_size, device, seed=0,
               dtype=None):
    """Dense K/V [batch, tokens, n_kv, d] and the same tokens scattered over shuffled blocks
    of a cache with spare blocks full of large garbage (a kernel that reads outside a
    sequence's blocks gets a wrong answer)."""
    import torch

    dtype = dtype or torch.bfloat16
    gen = torch.Generator(device=device).manual_seed(seed)
    per_seq = -(-tokens // block_size)
    num_blocks = batch * per_seq + 64
    perm = torch.randperm(num_blocks, device=device, generator=gen)
    tables = perm[:batch * per_seq].view(batch, per_seq).to(torch.int32)
    shape = (num_blocks, block_size, n_kv_heads, d_head)
    k_cache = (torch.rand(shape, device=device, generator=gen) * 2 - 1).mul_(1e3).to(dtype)
    v_cache = (torch.rand(shape, device=device, generator=gen) * 2 - 1).mul_(1e3).to(dtype)
    padded = per_seq * block_size
    k = torch.randn(batch, padded, n_kv_heads, d_head, device=device, generator=gen).to(dtype)
    v = torch.randn(batch, padded, n_kv_heads, d_head, device=device, generator=gen).to(dtype)
    k_cache[tables.long()] = k.view(batch, per_seq, block_size, n_kv_heads, d_head)
    v_cache[tables.long()] = v.view(batch, per_seq, block_size, n_kv_heads, d_head)
    q = torch.randn(batch, n_heads, d_head, device=device, generator=gen).to(dtype)
    lens = torch.full((batch,), tokens, dtype=torch.int32, device=device)
    return dict(q=q, k_cache=k_cache, v_cache=v_cache, tables=tables, lens=lens,
                k=k[:, :tokens].transpose(1, 2).contiguous(),  # [batch, n_kv, T, d]
                v=v[:, :tokens].transpose(1, 2).contiguous())


def quantize_fp8(cache):
    """e4m3 cache and float32 scales per (token, KV head): lesson 16's recipe, amax / 448."""
    import torch

    x = cache.float()
    amax = x.abs().amax(dim=-1)
    scales = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    q = (x / scales[..., None]).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q, scales


def sdpa_decode(q, k, v):
    import torch.nn.functional as F

    batch, n_heads, d_head = q.shape
    return F.scaled_dot_product_attention(q.view(batch, n_heads, 1, d_head), k, v,
                                          enable_gqa=True).view(batch, n_heads, d_head)


def configs(grid):
    for splits, block_n, warps, stages in itertools.product(
            grid["num_splits"], grid["block_n"], grid["num_warps"], grid["num_stages"]):
        yield dict(num_splits=None if splits == "auto" else splits, block_n=block_n,
                   num_warps=warps, num_stages=stages)


def label(cfg):
    splits = "auto" if cfg["num_splits"] is None else cfg["num_splits"]
    return f"splits={splits} n={cfg['block_n']} w={cfg['num_warps']} s={cfg['num_stages']}"


def max_err(a, b):
    return float((a.float() - b.float()).abs().max())


def main(argv=None):
    args = parse_args(argv)
    began = time.time()
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    from course import bench

    paged = importlib.import_module(f"{args.impl}.lesson12.triton_paged")
    fp8 = importlib.import_module(f"{args.impl}.lesson16.triton_kv_fp8")
    if args.smoke:
        device, layout = "cpu", SMOKE
        shapes, grid = SMOKE["shapes"], SMOKE_GRID
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --smoke on a CPU")
        device = "cuda"
        layout = dict(n_heads=N_HEADS, n_kv_heads=N_KV_HEADS, d_head=D_HEAD,
                      block_size=BLOCK_SIZE)
        shapes, grid = SHAPES, QUICK if args.quick else GRID
    if args.shape:
        wanted = {tuple(int(x) for x in s.lower().split("x")) for s in args.shape}
        shapes = [s for s in shapes if s in wanted]
    dims = {k: layout[k] for k in ("n_heads", "n_kv_heads", "d_head", "block_size")}
    timed = device == "cuda"

    def time_us(fn):
        if not timed:
            return math.nan
        return bench.cuda_time(fn, warmup=3, iters=args.iters,
                               host_lead_s=bench.KERNEL_HOST_LEAD_S).median_s * 1e6

    rows, fp8_rows, failures = [], [], []
    header = (f"{'shape':>10} {'config':<30} {'kernel us':>10} {'SDPA us':>9} {'ratio':>6} "
              f"{'TB/s':>6} {'max err':>8}")
    print(f"device: {torch.cuda.get_device_name() if timed else 'cpu (Triton interpreter)'}; "
          f"torch {torch.__version__}; heads {dims['n_heads']}/{dims['n_kv_heads']}, d_head "
          f"{dims['d_head']}, block {dims['block_size']}")
    print(header)
    for batch, tokens in shapes:
        case = build_case(batch, tokens, device=device, **dims)
        kv_bytes = 2 * batch * tokens * dims["n_kv_heads"] * dims["d_head"] * 2
        dense = sdpa_decode(case["q"], case["k"], case["v"])
        t_sdpa = time_us(lambda: sdpa_decode(case["q"], case["k"], case["v"]))
        shape = f"{batch}x{tokens}"
        for cfg in configs(grid):
            if cfg["num_splits"] is not None and cfg["num_splits"] * cfg["block_n"] > tokens:
                continue  # more splits than tiles: the same as fewer splits

            def run(cfg=cfg):
                return paged.paged_decode_triton(case["q"], case["k_cache"], case["v_cache"],
                                                 case["tables"], case["lens"], **cfg)
            try:
                err = max_err(run(), dense)
                t = time_us(run)
            except Exception as exc:  # a config the compiler refuses (shared memory, ...)
                print(f"{shape:>10} {label(cfg):<30} failed: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:80] if str(exc) else ''}")
                continue
            ok = err <= TOLERANCE
            if not ok:
                failures.append(f"{shape} {label(cfg)}: max error {err:.3g}")
            row = dict(shape=shape, config=label(cfg), **cfg, kernel_us=t, sdpa_us=t_sdpa,
                       ratio=t_sdpa / t if timed else math.nan,
                       tb_per_s=kv_bytes / (t * 1e-6) / 1e12 if timed else math.nan,
                       max_err=err, ok=ok)
            rows.append(row)
            print(f"{shape:>10} {row['config']:<30} {t:>10.1f} {t_sdpa:>9.1f} "
                  f"{row['ratio']:>6.2f} {row['tb_per_s']:>6.2f} {err:>8.1e}"
                  f"{'' if ok else '  WRONG'}", flush=True)
        mine = [r for r in rows if r["shape"] == shape and r["ok"]]
        best = max(mine, key=lambda r: r["ratio"]) if timed and mine else None

        # Lesson 16's kernel on the same tokens, quantised; speed against bf16 SDPA.
        kq, ks = quantize_fp8(case["k_cache"])
        vq, vs = quantize_fp8(case["v_cache"])
        per_seq = case["tables"].shape[1]
        deq = lambda c, s: (c.float() * s[..., None]).to(case["q"].dtype)  # noqa: E731
        k_deq = deq(kq, ks)[case["tables"].long()].view(batch, per_seq * dims["block_size"],
                                                        dims["n_kv_heads"], dims["d_head"])
        v_deq = deq(vq, vs)[case["tables"].long()].view_as(k_deq)
        dense8 = sdpa_decode(case["q"], k_deq[:, :tokens].transpose(1, 2).contiguous(),
                             v_deq[:, :tokens].transpose(1, 2).contiguous())
        del k_deq, v_deq
        fp8_bytes = 2 * batch * tokens * dims["n_kv_heads"] * (dims["d_head"] + 4)
        fp8_cfgs = [dict(num_splits=None, block_n=None, num_warps=None, num_stages=None)]
        if best:
            fp8_cfgs.append({k: best[k] for k in ("num_splits", "block_n", "num_warps",
                                                  "num_stages")})
        for cfg in fp8_cfgs:
            def run8(cfg=cfg):
                return fp8.paged_decode_fp8_triton(case["q"], kq, vq, ks, vs, case["tables"],
                                                   case["lens"], **cfg)
            name = "defaults" if cfg["block_n"] is None else label(cfg)
            try:
                err = max_err(run8(), dense8)
                t = time_us(run8)
            except Exception as exc:
                print(f"{shape:>10} fp8 {name}: failed: {type(exc).__name__}")
                continue
            ok = err <= FP8_TOLERANCE
            if not ok:
                failures.append(f"{shape} fp8 {name}: max error {err:.3g}")
            fp8_rows.append(dict(shape=shape, config=name, kernel_us=t, bf16_sdpa_us=t_sdpa,
                                 ratio=t_sdpa / t if timed else math.nan,
                                 tb_per_s=fp8_bytes / (t * 1e-6) / 1e12 if timed else math.nan,
                                 max_err=err, ok=ok))
        del case, kq, vq, ks, vs
        if timed:
            torch.cuda.empty_cache()

    print("\nbest config per shape (lesson 12, bf16):")
    for batch, tokens in shapes:
        shape = f"{batch}x{tokens}"
        mine = [r for r in rows if r["shape"] == shape and r["ok"]]
        auto = [r for r in mine if r["num_splits"] is None
                and r["block_n"] == paged.DEFAULT_BLOCK_N
                and r["num_warps"] == paged.DEFAULT_NUM_WARPS
                and r["num_stages"] == paged.DEFAULT_NUM_STAGES]
        if not mine:
            print(f"{shape:>10} no correct config")
            continue
        best = max(mine, key=lambda r: (r["ratio"] if timed else 0))
        sms = paged.sm_count(torch.device(device))
        chosen = paged.choose_num_splits(batch, dims["n_kv_heads"], tokens, sms,
                                         paged.DEFAULT_BLOCK_N)
        extra = f"; defaults ({chosen} splits) {auto[0]['ratio']:.2f}x" if auto else ""
        print(f"{shape:>10} {best['config']:<30} {best['kernel_us']:>8.1f} us  "
              f"{best['ratio']:.2f}x SDPA  {best['tb_per_s']:.2f} TB/s{extra}")
    print("\nlesson 16, FP8 KV kernel against bf16 SDPA on the same tokens:")
    for r in fp8_rows:
        print(f"{r['shape']:>10} {r['config']:<30} {r['kernel_us']:>8.1f} us  "
              f"{r['ratio']:.2f}x bf16 SDPA  {r['tb_per_s']:.2f} TB/s  err {r['max_err']:.1e}"
              f"{'' if r['ok'] else '  WRONG'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name()
                                               if timed else "cpu", "torch": torch.__version__,
                                               "bf16": rows, "fp8": fp8_rows}, indent=1))
    print(f"\n{len(rows)} + {len(fp8_rows)} configs in {time.time() - began:.0f} s")
    if failures:
        print("\nWRONG OUTPUTS:\n  " + "\n  ".join(failures))
        return 1
    if not rows or not fp8_rows:
        print("\nno config ran (see the failures above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
