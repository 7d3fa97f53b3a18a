"""The kernel track's benchmark: each kernel's speed against its baseline, in one table.

Run it on a CUDA GPU, from the repository root::

    python -m course.kernel_bench                       # your kernels (exercises/)
    python -m course.kernel_bench --impl solutions      # the reference kernels
    python -m course.kernel_bench --impl PATH --json out.json --only paged w4a16 --quick

Rows, one per (kernel, shape), each timed with ``course.bench.cuda_time`` (CUDA events, L2
flushed before each call, and the GPU kept busy until the call's launches are queued, so that
a kernel's GPU time is compared, not its Python: ``course.bench.KERNEL_HOST_LEAD_S``; lesson
03's eager step against its CUDA graph keeps the host's time, which is what it is about) next
to its baseline in the same run:

* lesson 12 ``paged_decode_triton`` (bench ``paged``) against dense SDPA decode on the same
  tokens (bf16, 32 query heads over 8 KV heads, d_head 128, blocks of 16 in a permuted order),
  and lesson 12's torch ``paged_attention_decode`` (``paged_torch``) on the same inputs for
  contrast;
* lesson 16 ``paged_decode_fp8_triton`` (``paged_fp8``; FP8 cache with a scale per token and KV head) against
  bf16 SDPA on the dequantized tokens;
* lesson 15 ``w4a16_gemv_triton`` (``w4a16``) at batch 1 against torch's int4 kernel and the bf16 GEMV,
  both int4 kernels reading the same BF16 scales and zeros;
* lesson 10 ``split_kv_decode_triton`` (``split_kv``) against SDPA;
* lesson 03's batch-1 decode step (``graph``) of a SmolLM2-shaped model (random bf16 weights) replayed from
  a CUDA graph against the same step run eagerly, each also as a multiple of the weight-read
  floor (weight bytes / copy bandwidth measured in the same run).

``ratio`` is the baseline's time over the kernel's (above 1: the kernel is faster); ``target``
is the issue's goal for that row, where it sets one. Every output is checked against its
baseline's before it is timed; a wrong output is a failed row, not a time.

The kernels are loaded from ``<impl>/lessonNN/<module>.py`` by file, under private module names
(as ``course.engine`` loads its pieces), so a learner's kernels and the reference can be
benchmarked from one checkout. A kernel that is not written yet (its stub raises
NotImplementedError), or that needs Triton where Triton is missing, is a row saying so.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.machinery
import importlib.util
import json
import math
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

import torch

NO_GPU = ("course.kernel_bench: needs a CUDA GPU (torch sees none); the kernel track's tests run "
          "on the CPU instead: pytest exercises/lessonNN/test_triton_*.py")

# The goals (ratio = baseline time / kernel time).
PAGED_SHAPES = [(64, 4096), (256, 1024), (16, 16384), (4, 32768)]     # (sequences, tokens)
PAGED_TARGETS = {(64, 4096): 0.9, (256, 1024): 0.9, (16, 16384): 0.9, (4, 32768): 0.7}
FP8_SHAPES = [(16, 16384), (4, 32768)]
FP8_TARGET = 1.0                  # faster than bf16 SDPA at long context
GEMV_SHAPES = [(4096, 4096), (4096, 14336), (14336, 4096), (8192, 8192)]   # (N, K)
GEMV_TARGET = 1.0                 # at least as fast as torch's int4 kernel at batch 1
SPLIT_KV_SHAPES = [(1, 32, 32, 32768), (16, 32, 8, 16384)]  # (batch, heads, kv_heads, tokens)
HEADS, KV_HEADS, D_HEAD, BLOCK = 32, 8, 128, 16
GROUP = 128


class Missing(Exception):
    """The implementation lacks a kernel; the message says why, in one line."""


@dataclass
class Row:
    """One line of the table."""

    bench: str                    # the --only name
    kernel: str                   # what is timed
    shape: str
    baseline: str
    kernel_us: float | None = None
    baseline_us: float | None = None
    target: float | None = None
    status: str = "-"             # pass, FAIL, missing, error, wrong, - (no target)
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.kernel_us is None or self.baseline_us is None or self.kernel_us <= 0:
            return None
        return self.baseline_us / self.kernel_us

    def judge(self) -> Row:
        """Set status from ratio and target (no target: '-')."""
        if self.target is not None and self.ratio is not None:
            self.status = "pass" if self.ratio >= self.target else "FAIL"
        return self


@dataclass(frozen=True)
class Bench:
    """A family of rows: the modules it loads and the function that measures them."""

    name: str
    needs: tuple[tuple[str, str, str], ...]      # (lesson, module, attribute)
    shapes: tuple
    run: Callable                                # run(fns, shape, quick) -> list[Row]
    describe: Callable                           # describe(shape) -> (kernel, shape, baseline)


# ------------------------------------------------------------------------------------ loading

def impl_root(impl: str | Path) -> Path:
    """The folder holding lessonNN/ packages, resolved as the capstone's engine does."""
    from course.engine import EngineError, resolve_impl_root

    try:
        return resolve_impl_root(impl)
    except EngineError as err:
        raise SystemExit(f"course.kernel_bench: --impl {impl}: {err}") from err


_loaded: dict[tuple[str, str, str], ModuleType] = {}
_roots: dict[str, int] = {}


def load_module(root: Path, lesson: str, module: str) -> ModuleType:
    """``<root>/<lesson>/<module>.py`` as ``<private package>.<module>``: a private package per
    (root, lesson), so the module's relative imports (``from .w4a16 import ...``) resolve inside
    the same lesson folder and nothing touches ``exercises.*`` in ``sys.modules``."""
    folder = root / lesson
    file = folder / f"{module}.py"
    if not file.is_file():
        raise Missing(f"no {lesson}/{module}.py in {root}")
    key = (str(root), lesson, module)
    if key in _loaded:
        return _loaded[key]
    index = _roots.setdefault(str(root), len(_roots))
    pkg = f"_course_kernel_bench_impl{index}_{lesson}"
    if pkg not in sys.modules:
        spec = importlib.machinery.ModuleSpec(pkg, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        sys.modules[pkg] = importlib.util.module_from_spec(spec)
    name = f"{pkg}.{module}"
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except ModuleNotFoundError as err:
        sys.modules.pop(name, None)
        if err.name and err.name.split(".")[0] == "triton":
            raise Missing("Triton is not installed (the optional kernels extra: "
                          "pip install -e \".[kernels]\")") from err
        raise Missing(f"importing {lesson}/{module}.py failed: {err}") from err
    except Exception as err:  # noqa: BLE001 - any import failure is a row, not a crash
        sys.modules.pop(name, None)
        raise Missing(f"importing {lesson}/{module}.py failed: {type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}") from err
    _loaded[key] = mod
    return mod


def load_functions(root: Path, needs) -> dict[str, Callable]:
    """attribute -> function for each (lesson, module, attribute); raises Missing."""
    fns = {}
    for lesson, module, attr in needs:
        mod = load_module(root, lesson, module)
        if not hasattr(mod, attr):
            raise Missing(f"{lesson}/{module}.py defines no {attr}")
        fns[attr] = getattr(mod, attr)
    return fns


def _first_line(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}"[:160]


def run_bench(bench: Bench, root: Path, quick: bool = False) -> list[Row]:
    """Every row of one bench; a missing kernel or an error becomes rows that say so."""
    shapes = bench.shapes[:1] if quick else bench.shapes
    try:
        fns = load_functions(root, bench.needs)
    except Missing as why:
        return [Row(bench.name, *bench.describe(s), status="missing", note=str(why))
                for s in shapes]
    rows: list[Row] = []
    for shape in shapes:
        try:
            rows.extend(bench.run(fns, shape, quick))
        except NotImplementedError as err:
            rows.append(Row(bench.name, *bench.describe(shape), status="missing",
                            note=f"not written yet ({_first_line(err)})"))
        except Missing as why:
            rows.append(Row(bench.name, *bench.describe(shape), status="missing", note=str(why)))
        except Exception as err:  # noqa: BLE001 - one broken kernel must not stop the table
            rows.append(Row(bench.name, *bench.describe(shape), status="error",
                            note=_first_line(err)))
            if torch.cuda.is_available():
                try:
                    torch.cuda.synchronize()
                except Exception:  # noqa: BLE001
                    pass
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------------------------ output

COLUMNS = ("kernel", "shape", "kernel us", "baseline", "baseline us", "ratio", "target", "status")


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def format_table(rows: list[Row]) -> str:
    """The table as text: one line per row, notes under the rows that have one."""
    cells = [COLUMNS] + [
        (r.kernel, r.shape, _num(r.kernel_us, ".1f"), r.baseline, _num(r.baseline_us, ".1f"),
         _num(r.ratio, ".2f") + ("x" if r.ratio is not None else ""),
         (">= " + _num(r.target, ".2f") + "x") if r.target is not None else "-", r.status)
        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    right = {2, 4, 5, 6}
    lines = []
    for i, c in enumerate(cells):
        lines.append("  ".join(v.rjust(w) if j in right else v.ljust(w)
                               for j, (v, w) in enumerate(zip(c, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
        elif rows[i - 1].note:
            lines.append(f"    {rows[i - 1].note}")
    lines.append("ratio = baseline us / kernel us (above 1: faster than the baseline); "
                 "target: the goal of the kernel track's issue")
    return "\n".join(lines)


def to_json(rows: list[Row], meta: dict) -> dict:
    """The run as a JSON-able dict: meta plus one object per row (ratio included)."""
    out = []
    for r in rows:
        d = asdict(r)
        d["ratio"] = r.ratio
        out.append(d)
    return {**meta, "rows": out}


# ------------------------------------------------------------------------------------ timing

def _time_us(fn, quick: bool, gpu_only: bool = True) -> float:
    """Median microseconds of fn. ``gpu_only``: leave the host's launch time out (kernels
    against kernels); False where it is what is compared (eager launches against a graph)."""
    from course.bench import KERNEL_HOST_LEAD_S, cuda_time
    warmup, iters = (3, 10) if quick else (10, 50)
    lead = KERNEL_HOST_LEAD_S if gpu_only else 0.0
    return cuda_time(fn, warmup=warmup, iters=iters, host_lead_s=lead).median_s * 1e6


def _check(got: torch.Tensor, want: torch.Tensor, what: str, tol: float = 2e-2) -> None:
    """Raise _Wrong unless got is close to want (relative Frobenius error, bf16 tolerance)."""
    got, want = got.float(), want.float()
    if got.shape != want.shape:
        raise _Wrong(f"{what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    rel = ((got - want).norm() / want.norm().clamp_min(1e-30)).item()
    if not rel < tol:
        raise _Wrong(f"{what}: wrong output, relative error {rel:.3g} (allowed {tol})")


class _Wrong(Exception):
    pass


def _wrong_row(bench: str, described, err: _Wrong) -> Row:
    return Row(bench, *described, status="wrong", note=str(err))


# ------------------------------------------------------------------------------------ benches

def _paged_inputs(batch: int, tokens: int, seed: int = 0):
    """Dense and paged copies of the same bf16 K and V: q ``[batch, 32, d]``, dense k, v
    ``[batch, 8, tokens, d]``, caches ``[blocks, 16, 8, d]`` whose blocks are permuted."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(batch, HEADS, D_HEAD, device="cuda", generator=gen).bfloat16()
    k = torch.randn(batch, KV_HEADS, tokens, D_HEAD, device="cuda", generator=gen).bfloat16()
    v = torch.randn(batch, KV_HEADS, tokens, D_HEAD, device="cuda", generator=gen).bfloat16()
    per_seq = tokens // BLOCK
    n_blocks = batch * per_seq
    perm = torch.randperm(n_blocks, device="cuda", generator=gen)
    tables = perm.view(batch, per_seq).to(torch.int32)
    k_cache = torch.empty(n_blocks, BLOCK, KV_HEADS, D_HEAD, device="cuda", dtype=torch.bfloat16)
    v_cache = torch.empty_like(k_cache)
    k_cache[perm] = k.transpose(1, 2).reshape(n_blocks, BLOCK, KV_HEADS, D_HEAD)
    v_cache[perm] = v.transpose(1, 2).reshape(n_blocks, BLOCK, KV_HEADS, D_HEAD)
    lens = torch.full((batch,), tokens, device="cuda", dtype=torch.int32)
    return q, k, v, k_cache, v_cache, tables, lens


def _sdpa(q4, k, v):
    import torch.nn.functional as F
    return F.scaled_dot_product_attention(q4, k, v, enable_gqa=q4.shape[1] != k.shape[1])


def _describe_paged(shape):
    return ("lesson12 paged_decode_triton", f"{shape[0]} x {shape[1]}", "dense SDPA")


def _describe_paged_torch(shape):
    return ("lesson12 paged_attention_decode (torch)", f"{shape[0]} x {shape[1]}", "dense SDPA")


def _paged_rows(bench, fn, described, target, shape, quick):
    batch, tokens = shape
    q, k, v, k_cache, v_cache, tables, lens = _paged_inputs(batch, tokens)
    q4 = q[:, :, None]
    want = _sdpa(q4, k, v)[:, :, 0]
    try:
        _check(fn(q, k_cache, v_cache, tables, lens), want, described[0])
    except _Wrong as err:
        return [_wrong_row(bench, described, err)]
    t = _time_us(lambda: fn(q, k_cache, v_cache, tables, lens), quick)
    t_sdpa = _time_us(lambda: _sdpa(q4, k, v), quick)
    return [Row(bench, *described, kernel_us=t, baseline_us=t_sdpa, target=target).judge()]


def _run_paged(fns, shape, quick):
    return _paged_rows("paged", fns["paged_decode_triton"], _describe_paged(shape),
                       PAGED_TARGETS.get(shape), shape, quick)


def _run_paged_torch(fns, shape, quick):
    return _paged_rows("paged_torch", fns["paged_attention_decode"],
                       _describe_paged_torch(shape), None, shape, quick)


def _describe_fp8(shape):
    return ("lesson16 paged_decode_fp8_triton", f"{shape[0]} x {shape[1]}", "bf16 SDPA")


def _run_fp8(fns, shape, quick):
    batch, tokens = shape
    q, k, v, k_cache, v_cache, tables, lens = _paged_inputs(batch, tokens, seed=1)
    del k, v
    gen = torch.Generator(device="cuda").manual_seed(2)
    # an FP8 cache with a scale per token and KV head; the scales are powers of two, so the
    # tokens they stand for are exact in bf16 (torch.ldexp) and SDPA sees the same numbers
    k8 = k_cache.to(torch.float8_e4m3fn)
    v8 = v_cache.to(torch.float8_e4m3fn)
    del k_cache, v_cache
    k_exp = torch.randint(-1, 2, k8.shape[:3], device="cuda", generator=gen)
    v_exp = torch.randint(-1, 2, v8.shape[:3], device="cuda", generator=gen)
    ks, vs = torch.exp2(k_exp.float()), torch.exp2(v_exp.float())
    n_blocks = k8.shape[0]
    per_seq = tokens // BLOCK

    def dense(c8, exps):          # [blocks, 16, kv, d] in table order -> [batch, kv, tokens, d]
        order = tables.long().view(-1)
        x = torch.ldexp(c8.to(torch.bfloat16)[order], exps[order].unsqueeze(-1).to(torch.bfloat16))
        return x.view(batch, per_seq * BLOCK, KV_HEADS, D_HEAD).transpose(1, 2).contiguous()

    kd, vd = dense(k8, k_exp), dense(v8, v_exp)
    assert n_blocks == batch * per_seq
    q4 = q[:, :, None]
    want = _sdpa(q4, kd, vd)[:, :, 0]
    fn = fns["paged_decode_fp8_triton"]
    try:
        _check(fn(q, k8, v8, ks, vs, tables, lens), want, "paged_decode_fp8_triton")
    except _Wrong as err:
        return [_wrong_row("paged_fp8", _describe_fp8(shape), err)]
    t = _time_us(lambda: fn(q, k8, v8, ks, vs, tables, lens), quick)
    t_sdpa = _time_us(lambda: _sdpa(q4, kd, vd), quick)
    return [Row("paged_fp8", *_describe_fp8(shape), kernel_us=t, baseline_us=t_sdpa,
                target=FP8_TARGET).judge()]


def _describe_gemv(shape):
    return ("lesson15 w4a16_gemv_triton", f"1 x {shape[1]} -> {shape[0]}",
            "torch int4 / bf16")


def _run_gemv(fns, shape, quick):
    n, k = shape
    W4Linear, int4pack_mm = fns["W4Linear"], fns["int4pack_mm"]
    gemv, repack = fns["w4a16_gemv_triton"], fns["repack_for_gemv"]
    gen = torch.Generator(device="cuda").manual_seed(0)
    w = (torch.randn(n, k, device="cuda", generator=gen) / k**0.5).bfloat16()
    x = torch.randn(1, k, device="cuda", generator=gen).bfloat16()
    lin = W4Linear.from_weight(w, group_size=GROUP)
    # both kernels read BF16 scales and zeros (torch's in its own layout): the same bytes. The
    # layer keeps them rounded to BF16, so that every product below computes the same thing.
    lin = dataclasses.replace(lin, scales=lin.scales.bfloat16().float(),
                              zeros=lin.zeros.bfloat16().float())
    scales, zeros = lin.scales.bfloat16(), lin.zeros.bfloat16()
    weight, sz = lin.int4pack(inner_k_tiles=8, dtype=torch.bfloat16)
    want = x.float() @ lin.dequantize().T
    label = f"1 x {k} -> {n}"
    try:
        packed = repack(lin.packed, GROUP)          # once per weight, as a layer would
        _check(gemv(x, packed, scales, zeros, GROUP, repacked=True), want, "w4a16_gemv_triton")
    except _Wrong as err:
        return [_wrong_row("w4a16", _describe_gemv(shape), err)]
    t = _time_us(lambda: gemv(x, packed, scales, zeros, GROUP, repacked=True), quick)
    t_int4 = _time_us(lambda: int4pack_mm(x, weight, sz, GROUP), quick)
    t_bf16 = _time_us(lambda: x @ w.T, quick)
    gb = lambda nbytes, us: f"{nbytes / (us * 1e-6) / 1e9:.0f} GB/s"  # noqa: E731
    nbytes = n * k // 2 + n * (k // GROUP) * 4             # nibbles + BF16 scale and zero
    note = (f"weights read at {gb(nbytes, t)} (Triton), {gb(nbytes, t_int4)} (torch int4), "
            f"{gb(2 * n * k, t_bf16)} (bf16)")
    return [
        Row("w4a16", "lesson15 w4a16_gemv_triton", label, "torch int4 kernel", kernel_us=t,
            baseline_us=t_int4, target=GEMV_TARGET, note=note).judge(),
        Row("w4a16", "lesson15 w4a16_gemv_triton", label, "bf16 GEMV", kernel_us=t,
            baseline_us=t_bf16),
    ]


def _describe_split(shape):
    b, h, kvh, s = shape
    return ("lesson10 split_kv_decode_triton", f"{b} x {s}, {h}/{kvh} heads", "SDPA")


def _run_split(fns, shape, quick):
    batch, heads, kv_heads, tokens = shape
    fn = fns["split_kv_decode_triton"]
    gen = torch.Generator(device="cuda").manual_seed(3)
    q = torch.randn(batch, heads, 1, D_HEAD, device="cuda", generator=gen).bfloat16()
    k = torch.randn(batch, kv_heads, tokens, D_HEAD, device="cuda", generator=gen).bfloat16()
    v = torch.randn(batch, kv_heads, tokens, D_HEAD, device="cuda", generator=gen).bfloat16()
    want = _sdpa(q, k, v)
    try:
        _check(fn(q, k, v), want, "split_kv_decode_triton")
    except _Wrong as err:
        return [_wrong_row("split_kv", _describe_split(shape), err)]
    t = _time_us(lambda: fn(q, k, v), quick)
    t_sdpa = _time_us(lambda: _sdpa(q, k, v), quick)
    return [Row("split_kv", *_describe_split(shape), kernel_us=t, baseline_us=t_sdpa)]


def _describe_graph(shape):
    return ("lesson03 decode step, CUDA graph", f"SmolLM2-135M shape, {shape} cached tokens",
            "eager step")


def _run_graph(fns, shape, quick):
    from course.bench import capture_cuda_graph, measure_copy_bandwidth
    from course.config import SMOLLM2_135M as cfg
    from course.model import weight_shapes
    prefill, decode_step = fns["prefill"], fns["decode_step"]
    gen = torch.Generator(device="cuda").manual_seed(0)
    w = {}
    for name, shp in weight_shapes(cfg).items():
        if name == "lm_head.weight" and cfg.tie_embeddings:
            continue
        t = torch.randn(shp, generator=gen, device="cuda", dtype=torch.bfloat16)
        w[name] = 1.0 + 0.1 * t if len(shp) == 1 else (
            t if name == "model.embed_tokens.weight" else t / shp[1] ** 0.5)
    if cfg.tie_embeddings:
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    ids = torch.randint(0, cfg.vocab_size, (1, shape + 1), device="cuda", generator=gen)
    with torch.no_grad():
        _, cache = prefill(w, cfg, ids[:, :-1])
        token = ids[:, -1].clone()
        eager_logits, _ = decode_step(w, cfg, token, cache)

        def step():
            return decode_step(w, cfg, token, cache)[0]

        graph, replayed = capture_cuda_graph(step)
        graph.replay()
        torch.cuda.synchronize()
        _check(replayed, eager_logits, "decode step replayed from a CUDA graph", tol=1e-2)
        t_graph = _time_us(graph.replay, quick, gpu_only=False)
        t_eager = _time_us(step, quick, gpu_only=False)
    # bytes a step reads: every weight once (the LM head is the embedding when tied), except
    # the embedding table of an untied model, of which a step reads one row
    seen, weight_bytes = set(), 0
    for name, t in w.items():
        if name == "model.embed_tokens.weight" and not cfg.tie_embeddings:
            continue
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            weight_bytes += t.nbytes
    copy_bw = measure_copy_bandwidth(1 << 28 if quick else 1 << 30, iters=10 if quick else 20)
    floor_us = weight_bytes / copy_bw * 1e6
    note = (f"eager {t_eager / floor_us:.1f}x, graph {t_graph / floor_us:.1f}x the weight-read "
            f"floor ({weight_bytes / 1e6:.0f} MB / {copy_bw / 1e9:.0f} GB/s copy bandwidth = "
            f"{floor_us:.1f} us)")
    return [Row("graph", *_describe_graph(shape), kernel_us=t_graph, baseline_us=t_eager,
                note=note, extra={"weight_bytes": weight_bytes, "copy_bytes_per_s": copy_bw,
                                  "floor_us": floor_us, "eager_over_floor": t_eager / floor_us,
                                  "graph_over_floor": t_graph / floor_us})]


BENCHES = (
    Bench("paged", (("lesson12", "triton_paged", "paged_decode_triton"),),
          tuple(PAGED_SHAPES), _run_paged, _describe_paged),
    Bench("paged_torch", (("lesson12", "paged_attention", "paged_attention_decode"),),
          tuple(PAGED_SHAPES), _run_paged_torch, _describe_paged_torch),
    Bench("paged_fp8", (("lesson16", "triton_kv_fp8", "paged_decode_fp8_triton"),),
          tuple(FP8_SHAPES), _run_fp8, _describe_fp8),
    Bench("w4a16", (("lesson15", "triton_w4a16", "w4a16_gemv_triton"),
                    ("lesson15", "triton_w4a16", "repack_for_gemv"),
                    ("lesson15", "w4a16", "W4Linear"), ("lesson15", "w4a16", "int4pack_mm")),
          tuple(GEMV_SHAPES), _run_gemv, _describe_gemv),
    Bench("split_kv", (("lesson10", "triton_decode", "split_kv_decode_triton"),),
          tuple(SPLIT_KV_SHAPES), _run_split, _describe_split),
    Bench("graph", (("lesson03", "phases", "prefill"), ("lesson03", "phases", "decode_step")),
          (64,), _run_graph, _describe_graph),
)


# ------------------------------------------------------------------------------------ command

def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m course.kernel_bench",
                                 description="Time the kernel track's kernels against their "
                                             "baselines on a CUDA GPU; print one table.")
    ap.add_argument("--impl", default="exercises",
                    help="exercises (default), solutions, or a folder of lessonNN/ packages")
    ap.add_argument("--json", metavar="FILE", help="also write the rows to FILE as JSON")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=[b.name for b in BENCHES],
                    help="only these benches: " + ", ".join(b.name for b in BENCHES))
    ap.add_argument("--quick", action="store_true",
                    help="the first shape of each bench and fewer timed calls")
    return ap.parse_args(argv)


def main(argv=None, benches=BENCHES) -> int:
    args = parse(argv)
    if not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    root = impl_root(args.impl)
    rows: list[Row] = []
    for bench in benches:
        if args.only and bench.name not in args.only:
            continue
        try:
            rows.extend(run_bench(bench, root, args.quick))
        except Exception:  # noqa: BLE001 - should not happen: run_bench catches per shape
            traceback.print_exc()
    meta = {"impl": str(root), "device": torch.cuda.get_device_name(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "quick": args.quick}
    print(f"{meta['device']}, torch {meta['torch']}, implementation {root}")
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(rows, meta), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
