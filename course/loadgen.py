"""A load generator for the capstone's server: open-loop Poisson arrivals, streamed requests,
and the latency table of lesson 17.

    python -m course.loadgen --url http://127.0.0.1:8000 --rate 4 --requests 64 --seed 0 \\
        --out results.json
    python -m course.loadgen --url http://127.0.0.1:8000 --rates 1,2,4,8 --requests 64 \\
        --out sweep.json --plot latency.png

What it does, per arrival rate:

1. The workload. By default a seeded synthetic set: request i's prompt is a list of token ids
   (sent as ``prompt`` to ``/v1/completions``), its length drawn uniformly from
   ``--prompt-tokens LO,HI`` (default 16,128), its ids uniformly from ``VOCAB_RANGE`` (ordinary
   tokens of SmolLM2's vocabulary), and its ``max_tokens`` uniformly from ``--output-tokens
   LO,HI`` (default 16,64), with ``ignore_eos`` so that it makes exactly that many. Or
   ``--prompts FILE``: JSON Lines, one ``{"prompt": "text" or [ids], "max_tokens": n}`` a
   line, replayed in order (cycled if shorter than ``--requests``).
2. Arrivals. An open loop: request i is sent at its scheduled time whatever happened to the
   others, the gaps between sends drawn from an exponential distribution of mean 1 / rate
   (a Poisson process), seeded with ``--seed`` (so a run is repeatable up to the server's own
   timing).
3. Streaming. Each request streams (server-sent events), and the client writes down, on one
   clock (``time.perf_counter``), the events of ``course.trace``: ``arrival`` at the scheduled
   send time, ``first_token`` at the first chunk, ``token`` at each later chunk (this server
   sends one chunk per token), ``finish`` at the chunk that carries the finish reason.
4. Metrics. TTFT, TPOT, ITL, E2E, their percentiles, throughput and SLO attainment come from
   lesson 17's functions (``request_metrics``, ``summarize``, ``slo_attainment``) of the
   implementation chosen with ``--impl`` (``exercises``, the default, is yours), applied to that
   trace: this module measures, lesson 17 computes. A request that fails (an HTTP error, a
   broken stream) is left out of the trace and counted as failed.

It prints a progress bar while a run goes, then a table, writes everything to ``--out`` (JSON),
optionally each run's trace (``--trace-out``, JSON Lines) and a plot of latency against the
arrival rate (``--plot``, through ``course.plot``). Goodput, in DistServe's sense (lesson 17):
the highest arrival rate at which the SLO attainment (``--slo-ttft-ms``, ``--slo-tpot-ms``)
stays at or above ``--slo-target``; a sweep reports the highest rate it tried that did.
The text: learning/capstone.md#serve-it-and-load-test-it.
"""

import argparse
import asyncio
import importlib.util
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workload", "synthetic_workload", "read_workload", "poisson_arrivals", "run_load",
           "load_lesson_module", "load_metrics", "knee_of", "main"]

VOCAB_RANGE = (1000, 40000)  # token ids of the synthetic prompts: ordinary words of SmolLM2's
QS = (50, 90, 99)             # the percentiles reported


@dataclass(frozen=True)
class Workload:
    """The requests of a run, in order: prompts (text or token ids) and their max_tokens."""

    prompts: tuple
    max_tokens: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.prompts)


def _range(text: str, name: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} is LO,HI (two whole numbers), got {text!r}")
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"{name} needs 1 <= LO <= HI, got {text!r}")
    return lo, hi


def synthetic_workload(n: int, seed: int, prompt_tokens: tuple[int, int] = (16, 128),
                       output_tokens: tuple[int, int] = (16, 64)) -> Workload:
    """`n` requests: prompt lengths and max_tokens uniform in the given ranges (inclusive),
    token ids uniform in ``VOCAB_RANGE``; the same `seed` gives the same requests."""
    rng = random.Random(seed)
    prompts, outs = [], []
    for _ in range(n):
        length = rng.randint(*prompt_tokens)
        prompts.append(tuple(rng.randrange(*VOCAB_RANGE) for _ in range(length)))
        outs.append(rng.randint(*output_tokens))
    return Workload(tuple(prompts), tuple(outs))


def read_workload(path: str | Path, n: int) -> Workload:
    """`n` requests from a JSON Lines file of ``{"prompt": ..., "max_tokens": ...}`` rows,
    in order, cycled when the file has fewer."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt, max_tokens = row["prompt"], row["max_tokens"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}, line {i}: expected a JSON object with 'prompt' (text or "
                             f"token ids) and 'max_tokens', got {line.strip()[:80]!r}") from None
        if not (isinstance(prompt, str) or isinstance(prompt, list)) or not prompt \
                or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"{path}, line {i}: 'prompt' must be non-empty text or token ids "
                             f"and 'max_tokens' a whole number >= 1")
        rows.append((prompt if isinstance(prompt, str) else tuple(prompt), max_tokens))
    if not rows:
        raise ValueError(f"{path}: no requests in the file")
    rows = [rows[i % len(rows)] for i in range(n)]
    return Workload(tuple(r[0] for r in rows), tuple(r[1] for r in rows))


def poisson_arrivals(n: int, rate: float, seed: int) -> list[float]:
    """Send times (s from the start) of `n` requests arriving as a Poisson process of `rate`
    requests per second: exponential gaps of mean 1 / rate, the first one included."""
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"the arrival rate is requests per second > 0, got {rate!r}")
    rng = random.Random(seed)
    t, times = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        times.append(t)
    return times


_metrics_modules: dict = {}


def load_lesson_module(impl: str, lesson: str, filename: str):
    """``lessonNN/<filename>`` of the implementation `impl`: ``exercises``, ``solutions`` or a
    folder laid out like ``exercises/``.

    The file is loaded under a private module name, as the engine loads its pieces, so this
    does not touch ``exercises.lessonNN`` in ``sys.modules`` (the tests' own selection).
    """
    from course.engine import EngineError, resolve_impl_root  # resolved as the engine does

    try:
        root = resolve_impl_root(impl)
    except EngineError as err:
        raise SystemExit(f"course.loadgen: {err}") from err
    file = root / lesson / filename
    if not file.is_file():
        raise SystemExit(f"--impl {impl}: there is no {file}; give 'exercises', 'solutions' or "
                         f"a folder that holds {lesson}/ (laid out like exercises/)")
    module = _metrics_modules.get(file)
    if module is None:
        name = f"_course_loadgen_{lesson}_{len(_metrics_modules)}"
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        _metrics_modules[file] = module
    return module


def load_metrics(impl: str):
    """Lesson 17's ``metrics`` module of the implementation `impl`."""
    return load_lesson_module(impl, "lesson17", "metrics.py")


def knee_of(impl: str, runs: list[dict], key: str = "ttft_ms", q: int = 99):
    """(knee rate, note): lesson 24's ``find_knee`` of the selected implementation on the
    sweep's p99 TTFT against the arrival rate; the rate is None, with the reason in the note,
    when the sweep has fewer than 3 finished rates or lesson 24's function is not usable."""
    done = [r for r in runs if r.get("summary") and r["summary"][key].get(q, 0) > 0]
    if len(done) < 3:
        return None, "knee: a sweep of at least 3 rates (--rates) is needed to find one"
    try:
        find_knee = load_lesson_module(impl, "lesson24", "load.py").find_knee
        knee = find_knee([r["rate_rps"] for r in done], [r["summary"][key][q] for r in done])
    except SystemExit as err:
        return None, f"knee: not marked ({err})"
    except NotImplementedError as err:
        return None, f"knee: not marked, lesson 24's find_knee is not written yet ({err})"
    except ValueError as err:
        return None, f"knee: none found on this sweep ({err})"
    return float(knee), (f"knee: {float(knee):g} req/s (lesson 24's find_knee on p{q} "
                         f"{key.split('_')[0].upper()})")


# ---------------------------------------------------------------------------------------------
# One run


@dataclass
class _Outcome:
    request: int
    arrival_s: float
    prompt_tokens: int
    deliveries: list  # times (s) of the chunks that carried a token
    finish_s: float | None = None
    error: str | None = None


async def _one(http, url: str, model: str | None, i: int, prompt, max_tokens: int,
               send_at: float, clock) -> _Outcome:
    delay = send_at - clock()
    if delay > 0:
        await asyncio.sleep(delay)
    out = _Outcome(i, send_at, len(prompt) if not isinstance(prompt, str) else 0, [])
    body = {"prompt": prompt if isinstance(prompt, str) else list(prompt),
            "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True,
            "stream_options": {"include_usage": True}}
    if model:
        body["model"] = model
    try:
        async with http.stream("POST", url + "/v1/completions", json=body) as r:
            if r.status_code != 200:
                text = (await r.aread()).decode(errors="replace")
                try:
                    text = json.loads(text)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    pass
                out.error = f"HTTP {r.status_code}: {text}"
                return out
            async for line in r.aiter_lines():
                now = clock()
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    out.error = f"stream error: {chunk['error'].get('message')}"
                    return out
                if chunk.get("usage") and not out.prompt_tokens:
                    out.prompt_tokens = chunk["usage"]["prompt_tokens"]
                if not chunk.get("choices"):
                    continue
                out.deliveries.append(now)
                if chunk["choices"][0].get("finish_reason") is not None:
                    out.finish_s = now
    except Exception as err:  # connection refused, reset, timeout
        out.error = f"{type(err).__name__}: {err}"
        return out
    if out.finish_s is None:
        out.error = "the stream ended without a finish reason"
    return out


def _trace(outcomes: list[_Outcome]):
    """The trace (``course.trace`` events, sorted by time) of the requests that finished."""
    from course.trace import Event

    events = []
    for o in outcomes:
        if o.error is not None:
            continue
        mine = [Event(o.request, "arrival", o.arrival_s, o.prompt_tokens)]
        mine += [Event(o.request, "first_token" if k == 0 else "token", t)
                 for k, t in enumerate(o.deliveries)]
        mine.append(Event(o.request, "finish", o.finish_s))
        events.extend(mine)
    # a stable sort by time keeps each request's own order (its times never go backwards)
    return sorted(events, key=lambda e: e.time_s)


async def _run(url: str, workload: Workload, arrivals: list[float], model: str | None,
               progress_desc: str | None, timeout_s: float):
    import httpx

    bar = None
    if progress_desc is not None:
        from tqdm import tqdm
        bar = tqdm(total=len(workload), desc=progress_desc, unit="req", file=sys.stderr)
    clock = time.perf_counter
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), limits=limits) as http:
        start = clock() + 0.05

        async def tracked(i):
            o = await _one(http, url, model, i, workload.prompts[i], workload.max_tokens[i],
                           start + arrivals[i], clock)
            if bar is not None:
                bar.update(1)
            return o

        outcomes = await asyncio.gather(*(tracked(i) for i in range(len(workload))))
    if bar is not None:
        bar.close()
    return list(outcomes)


def run_load(url: str, workload: Workload, rate: float, seed: int, metrics_module, *,
             model: str | None = None, slo_ttft_ms: float = 1000.0, slo_tpot_ms: float = 200.0,
             progress: bool = True, timeout_s: float = 600.0,
             trace_path: str | Path | None = None) -> tuple[dict, list]:
    """Send `workload` to the server at `url` at `rate` requests/s; return (result, trace).

    ``result`` holds the rate, the counts, lesson 17's summary (``summarize``: percentiles in
    ms, keyed by percent), requests/s, SLO attainment, and the first failures' reasons. The
    trace is written to `trace_path` (JSON Lines) before lesson 17's functions see it.
    """
    arrivals = poisson_arrivals(len(workload), rate, seed)
    outcomes = asyncio.run(_run(url.rstrip("/"), workload, arrivals, model,
                                f"{rate:g} req/s" if progress else None, timeout_s))
    events = _trace(outcomes)
    failed = [o for o in outcomes if o.error is not None]
    result = {"rate_rps": rate, "sent": len(outcomes), "finished": len(outcomes) - len(failed),
              "failed": len(failed), "failures": [f"request {o.request}: {o.error}"
                                                  for o in failed[:5]]}
    if events and trace_path is not None:
        from course.trace import write_jsonl
        write_jsonl(events, trace_path)
        result["trace"] = str(trace_path)
    if events:
        try:
            m = metrics_module.request_metrics(events)
            summary = metrics_module.summarize(m, QS)
            attained = metrics_module.slo_attainment(m, slo_ttft_ms / 1e3, slo_tpot_ms / 1e3)
        except NotImplementedError as err:
            raise SystemExit(f"the load test ran, but lesson 17's metrics are not written yet: "
                             f"{err}. Write them, or pass --impl solutions."
                             + (f" The trace is in {trace_path}." if trace_path else "")) from None
        result["summary"] = summary
        d = summary["duration_s"]
        result["requests_per_s"] = len(m) / d if d > 0 else math.inf
        result["slo_attainment"] = attained
    return result, events


# ---------------------------------------------------------------------------------------------
# Reporting


def _ms(table: dict, q) -> str:
    v = table.get(q) if table else None
    return f"{v:9.1f}" if v is not None else f"{'-':>9}"


def format_table(result: dict, slo_ttft_ms: float, slo_tpot_ms: float) -> str:
    """One run as text: the counts, the percentile table (ms), throughput and SLO attainment."""
    lines = [f"arrival rate {result['rate_rps']:g} req/s: {result['finished']} of "
             f"{result['sent']} requests finished, {result['failed']} failed"]
    lines += [f"  failed: {f}" for f in result["failures"]]
    s = result.get("summary")
    if s is None:
        return "\n".join(lines + ["  no request finished: nothing to measure"])
    lines.append(f"{'':10}" + "".join(f"{'p' + str(q):>9}" for q in QS))
    for key, name in (("ttft_ms", "TTFT ms"), ("tpot_ms", "TPOT ms"), ("itl_ms", "ITL ms"),
                      ("e2e_ms", "E2E ms")):
        lines.append(f"{name:10}" + "".join(_ms(s[key], q) for q in QS))
    lines.append(f"throughput: {result['requests_per_s']:.2f} requests/s, "
                 f"{s['output_tokens_per_s']:.1f} output tokens/s "
                 f"({s['output_tokens']} tokens in {s['duration_s']:.2f} s)")
    lines.append(f"SLO attainment (TTFT <= {slo_ttft_ms:g} ms and TPOT <= {slo_tpot_ms:g} ms): "
                 f"{100 * result['slo_attainment']:.1f}% of requests")
    return "\n".join(lines)


def _plot(path: str, runs: list[dict], knee: float | None = None):
    from course.plot import Line, Marker, plot

    done = [r for r in runs if r.get("summary")]
    lines, points = [], []
    for key, name in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT")):
        for q in (50, 99):
            xy = [(r["rate_rps"], r["summary"][key][q]) for r in done
                  if r["summary"][key].get(q, 0) > 0]
            label = f"{name} p{q}"
            if len(xy) >= 2:
                lines.append(Line(label, [x for x, _ in xy], [y for _, y in xy]))
            elif len(xy) == 1:
                points.append(Marker(label, *xy[0]))
    if not lines and not points:
        raise SystemExit("--plot: no run finished a request; nothing to draw")
    if knee is not None:
        at = next(r for r in done if r["rate_rps"] == knee)
        points.append(Marker("knee (p99 TTFT)", knee, at["summary"]["ttft_ms"][99]))
    return plot(path, lines=lines, points=points, title="Latency against load",
                xlabel="arrival rate (requests/s)", ylabel="latency (ms)")


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rates is a comma-separated list of numbers, got "
                                         f"{text!r}")
    if not rates or not all(r > 0 and math.isfinite(r) for r in rates):
        raise argparse.ArgumentTypeError(f"--rates: each rate is requests/s > 0, got {text!r}")
    return rates


def build_parser() -> argparse.ArgumentParser:
    """The command line (README's commands are checked against it)."""
    parser = argparse.ArgumentParser(
        prog="python -m course.loadgen",
        description="Load-test an OpenAI-compatible server (course.server) with Poisson "
                    "arrivals; print and save TTFT, TPOT, ITL, throughput and SLO attainment.")
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="the server (default http://127.0.0.1:8000)")
    parser.add_argument("--impl", default="exercises",
                        help="whose lesson 17 metrics compute the numbers: exercises (yours, the "
                             "default), solutions, or a folder laid out like exercises/")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rate", type=float, default=4.0,
                       help="arrival rate, requests per second (default 4)")
    group.add_argument("--rates", type=_rates, help="a sweep: comma-separated rates, one run each")
    parser.add_argument("--requests", type=int, default=64, help="requests per run (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the workload and arrivals")
    parser.add_argument("--prompt-tokens", type=lambda t: _range(t, "--prompt-tokens"),
                        default=(16, 128), help="synthetic prompt length range LO,HI (16,128)")
    parser.add_argument("--output-tokens", type=lambda t: _range(t, "--output-tokens"),
                        default=(16, 64), help="synthetic max_tokens range LO,HI (16,64)")
    parser.add_argument("--prompts", help="JSON Lines of {prompt, max_tokens} to replay instead")
    parser.add_argument("--model", default=None, help="model name to send (default: none)")
    parser.add_argument("--slo-ttft-ms", type=float, default=1000.0,
                        help="TTFT target, ms (default 1000)")
    parser.add_argument("--slo-tpot-ms", type=float, default=200.0,
                        help="TPOT target, ms (default 200)")
    parser.add_argument("--slo-target", type=float, default=0.9,
                        help="SLO attainment a rate must reach to count for goodput (0.9)")
    parser.add_argument("--out", default="loadgen_results.json", help="JSON results file")
    parser.add_argument("--trace-out", help="write each run's trace (JSON Lines) here; with "
                                            "--rates, one file per rate (name.RATE.jsonl)")
    parser.add_argument("--plot", help="PNG of latency against arrival rate")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per-request timeout (s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error(f"--requests must be >= 1, got {args.requests}")
    if not 0 < args.slo_target <= 1:
        parser.error(f"--slo-target is a fraction in (0, 1], got {args.slo_target}")
    if not (args.slo_ttft_ms > 0 and args.slo_tpot_ms > 0):
        parser.error("--slo-ttft-ms and --slo-tpot-ms are milliseconds > 0")
    if args.rates is None and not (args.rate > 0 and math.isfinite(args.rate)):
        parser.error(f"--rate is requests per second > 0, got {args.rate}")
    if args.plot and not args.plot.lower().endswith(".png"):
        parser.error(f"--plot writes a PNG: name it *.png, got {args.plot!r}")

    metrics = load_metrics(args.impl)
    workload = (read_workload(args.prompts, args.requests) if args.prompts else
                synthetic_workload(args.requests, args.seed, args.prompt_tokens,
                                   args.output_tokens))
    rates = args.rates or [args.rate]
    runs = []
    for rate in rates:
        path = Path(args.trace_out) if args.trace_out else None
        if path is not None and len(rates) > 1:
            path = path.with_name(f"{path.stem}.{rate:g}{path.suffix or '.jsonl'}")
        result, _ = run_load(args.url, workload, rate, args.seed, metrics, model=args.model,
                             slo_ttft_ms=args.slo_ttft_ms, slo_tpot_ms=args.slo_tpot_ms,
                             progress=not args.no_progress, timeout_s=args.timeout_s,
                             trace_path=path)
        print(format_table(result, args.slo_ttft_ms, args.slo_tpot_ms), flush=True)
        runs.append(result)
    met = [r["rate_rps"] for r in runs if r.get("slo_attainment", 0) >= args.slo_target]
    goodput = max(met) if met else None
    if goodput is None:
        print(f"goodput: no rate tried kept {100 * args.slo_target:g}% of requests within the "
              "SLO")
    else:
        print(f"goodput: {goodput:g} req/s, the highest rate tried at which at least "
              f"{100 * args.slo_target:g}% of requests met the SLO")
    report = {"url": args.url, "impl": args.impl, "seed": args.seed, "requests": args.requests,
              "workload": ({"prompts": args.prompts} if args.prompts else
                           {"prompt_tokens": list(args.prompt_tokens),
                            "output_tokens": list(args.output_tokens),
                            "vocab_range": list(VOCAB_RANGE)}),
              "slo": {"ttft_ms": args.slo_ttft_ms, "tpot_ms": args.slo_tpot_ms,
                      "target": args.slo_target},
              "runs": runs, "goodput_rps": goodput}
    if len(runs) > 1:
        knee, note = knee_of(args.impl, runs)
        report["knee_rps"] = knee
        print(note)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out}")
    if args.plot:
        _plot(args.plot, runs, report.get("knee_rps"))
        print(f"plot: {args.plot}")
    return report


if __name__ == "__main__":
    main()
    raise SystemExit(0)
