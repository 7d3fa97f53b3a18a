"""Colocated against disaggregated serving, simulated: who stalls whom.

A discrete-event simulator (given) with a stated cost model:

* a prefill of a batch of prompts takes ``prefill_s_per_token x`` (their tokens, summed):
  prefill is compute-bound, its time grows with the tokens;
* a decode step takes ``decode_step_s`` whatever the batch (memory-bound: it reads the weights
  once per step, lesson 03), and gives every running request one token;
* shipping a prompt's KV to the decode instance takes ``transfer_s_per_token x`` its tokens.

``colocated``: one instance. At each step it admits every request that has arrived and runs
their prefill IN THE SAME STEP as the running requests' decode (prompts first, no chunked
prefill): the step lasts the prefill plus the decode step, so a running request's next token
waits for every prompt that arrived.

``disaggregated``: a prefill instance and a decode instance. The prefill instance runs the
waiting prompts as a batch whenever it is free; each prompt's KV then crosses the link. The
decode instance runs steps back to back; a request joins at a step boundary once its KV has
arrived, and its first token is delivered then (one response stream, from the decode
instance), the next ones one step apart.

Both emit ``course.trace`` events (arrival, scheduled, first_token, token, finish).

Read: learning/lesson22.md#interference-simulated
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from course.trace import Event

MODES = ("colocated", "disaggregated")


@dataclass(frozen=True)
class CostModel:
    prefill_s_per_token: float
    decode_step_s: float
    transfer_s_per_token: float = 0.0

    def __post_init__(self) -> None:
        for name in ("prefill_s_per_token", "decode_step_s", "transfer_s_per_token"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "decode_step_s" and value == 0):
                raise ValueError(f"{name} must be finite and >= 0 (decode_step_s > 0), got {value}")


def poisson_arrivals(rate_per_s: float, n: int, seed: int) -> list[float]:
    """``n`` arrival times (s) of a Poisson process of ``rate_per_s``, starting after 0."""
    if not rate_per_s > 0 or n < 0:
        raise ValueError(f"need rate_per_s > 0 and n >= 0, got {rate_per_s}, {n}")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_per_s, size=n)
    return [float(t) for t in np.cumsum(gaps)]


def simulate(mode: str, arrivals: list[float], prompt_lens: list[int], out_lens: list[int],
             cost: CostModel) -> list[Event]:
    """The trace of serving request i (arriving at ``arrivals[i]`` with ``prompt_lens[i]`` prompt
    tokens, wanting ``out_lens[i] >= 1`` output tokens) in ``mode``; events sorted by time."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not len(arrivals) == len(prompt_lens) == len(out_lens):
        raise ValueError("arrivals, prompt_lens and out_lens must have one entry per request")
    if any(n < 1 for n in out_lens) or any(p < 1 for p in prompt_lens):
        raise ValueError("every request needs a prompt and at least one output token")
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i], i))
    events = [Event(i, "arrival", arrivals[i], prompt_lens[i]) for i in order]
    left: dict[int, int] = {}

    def deliver(i: int, t: float, kind: str, step: int) -> None:
        events.append(Event(i, kind, t, 1, step))
        left[i] -= 1
        if left[i] == 0:
            events.append(Event(i, "finish", t))

    waiting = deque(order)
    if mode == "colocated":
        t, step, running = 0.0, 0, []
        while waiting or running:
            if not running and arrivals[waiting[0]] > t:
                t = arrivals[waiting[0]]
            new = []
            while waiting and arrivals[waiting[0]] <= t:
                new.append(waiting.popleft())
            for i in new:
                events.append(Event(i, "scheduled", t))
            t += cost.prefill_s_per_token * sum(prompt_lens[i] for i in new) \
                + (cost.decode_step_s if running else 0.0)
            for i in running:
                deliver(i, t, "token", step)
            for i in new:
                left[i] = out_lens[i]
                deliver(i, t, "first_token", step)
            running = [i for i in running + new if left[i] > 0]
            step += 1
    else:
        ready: dict[int, float] = {}
        t_p = 0.0
        while waiting:  # the prefill instance
            t_p = max(t_p, arrivals[waiting[0]])
            batch = []
            while waiting and arrivals[waiting[0]] <= t_p:
                batch.append(waiting.popleft())
            for i in batch:
                events.append(Event(i, "scheduled", t_p))
            t_p += cost.prefill_s_per_token * sum(prompt_lens[i] for i in batch)
            for i in batch:
                ready[i] = t_p + cost.transfer_s_per_token * prompt_lens[i]
        pending = deque(sorted(ready, key=lambda i: (ready[i], i)))
        t, step, running = 0.0, 0, []
        while pending or running:  # the decode instance
            if not running:
                t = max(t, ready[pending[0]])
            while pending and ready[pending[0]] <= t:
                i = pending.popleft()
                left[i] = out_lens[i]
                deliver(i, t, "first_token", step)
                if left[i]:
                    running.append(i)
            if running:
                t += cost.decode_step_s
                step += 1
                for i in running:
                    deliver(i, t, "token", step)
                running = [i for i in running if left[i] > 0]
    events.sort(key=lambda e: e.time_s)  # stable: a request's own order is kept
    return events


def latencies(events: list[Event]) -> tuple[list[float], list[float]]:
    """``(ttfts, itls)`` of a trace, in seconds.

    TTFT of a request: its ``first_token`` time minus its ``arrival`` time (queueing, prefill
    and, disaggregated, the KV transfer all count). ITLs: the gaps between consecutive output
    tokens of the same request (``first_token`` to the next ``token``, then token to token),
    never across requests and never from the arrival. TTFTs in order of first appearance of
    each request in the trace, ITLs request by request. About 12 lines.

    Read: learning/lesson22.md#interference-simulated
    """
    ### BEGIN SOLUTION
    arrival: dict = {}
    last: dict = {}
    ttfts, itls_of = {}, {}
    for e in events:
        if e.kind == "arrival":
            arrival[e.request] = e.time_s
            itls_of[e.request] = []
        elif e.kind == "first_token":
            ttfts[e.request] = e.time_s - arrival[e.request]
            last[e.request] = e.time_s
        elif e.kind == "token":
            itls_of[e.request].append(e.time_s - last[e.request])
            last[e.request] = e.time_s
    order = [r for r in itls_of if r in ttfts]
    return [ttfts[r] for r in order], [gap for r in order for gap in itls_of[r]]
    ### END SOLUTION


def colocated_vs_disagg(arrival_rate: float, n_requests: int, prompt_len: int, out_len: int,
                        cost: CostModel, seed: int = 0) -> dict[str, dict[str, float]]:
    """Serve the same seeded Poisson workload both ways; summarise each.

    ``n_requests`` arrivals from ``poisson_arrivals(arrival_rate, n_requests, seed)``, each with
    ``prompt_len`` prompt and ``out_len`` output tokens, through ``simulate`` in each mode. Returns
    ``{"colocated": s, "disaggregated": s}`` where ``s`` has ``p99_ttft_s``, ``p99_itl_s``
    (``numpy.percentile(..., 99)``, linear interpolation, over all requests' TTFTs or ITLs) and
    ``max_itl_s``; an ITL figure is 0.0 when no request has a second token. About 10 lines.

    Read: learning/lesson22.md#interference-simulated
    """
    if n_requests < 1 or prompt_len < 1 or out_len < 1:
        raise ValueError(f"need n_requests, prompt_len and out_len >= 1, got {n_requests}, "
                         f"{prompt_len}, {out_len}")
    ### BEGIN SOLUTION
    arrivals = poisson_arrivals(arrival_rate, n_requests, seed)
    summary = {}
    for mode in MODES:
        events = simulate(mode, arrivals, [prompt_len] * n_requests, [out_len] * n_requests, cost)
        ttfts, itls = latencies(events)
        summary[mode] = {"p99_ttft_s": float(np.percentile(ttfts, 99)),
                         "p99_itl_s": float(np.percentile(itls, 99)) if itls else 0.0,
                         "max_itl_s": max(itls, default=0.0)}
    return summary
    ### END SOLUTION
