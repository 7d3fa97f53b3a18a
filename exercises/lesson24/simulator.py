"""A discrete-event simulator of one serving engine under open-loop Poisson load (given).

Nothing here is for you to write. Requests arrive at seeded Poisson times; the engine runs one
step at a time. Before each step it admits waiting requests (first come, first served, up to
``max_running`` in the batch), asks a *policy* (``chunked_prefill_plan`` or the
``prefill_first_plan`` baseline) which decodes and prefill chunks to run, and advances its clock
by what the step costs: ``step_cost(tokens, kv_tokens)`` seconds, where ``tokens`` is the number
of tokens fed in the step and ``kv_tokens`` the cached tokens its attention reads (a decode
reads its whole context; a chunk reads the prompt up to its own end). The cost is any callable:
lesson 03's roofline time model with a GPU's fixture numbers, or a table of step times measured
on a GPU (``measured_step_cost``).

It writes a ``course.trace`` of the run (arrival, scheduled, first_token, token, finish), so
lesson 17's metrics apply to it, and keeps its own record of each request's latencies. It checks
the policy as it goes (``InvariantError``): a plan within the token budget, chunks that start
where each request's cache ends and do not run past its prompt, decodes of running requests only.

Read: learning/lesson24.md#the-simulator
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from course.trace import Event

from .chunking import PrefillWork, StepPlan

Policy = Callable[[list, list, int, int], StepPlan]
StepCost = Callable[[int, int], float]


class InvariantError(AssertionError):
    """The policy broke a rule of the simulation; the message says which, and when."""


@dataclass(frozen=True)
class SimRequest:
    """A request of the workload: arrival time (s), prompt tokens, output tokens."""

    id: int
    arrival_s: float
    prompt_len: int
    n_out: int

    def __post_init__(self):
        if self.prompt_len < 1 or self.n_out < 1:
            raise ValueError(f"request {self.id}: prompt_len and n_out must be >= 1, got "
                             f"{self.prompt_len} and {self.n_out}")


def poisson_requests(rate_per_s: float, n: int, prompt_lens: Sequence[int],
                     out_lens: Sequence[int], seed: int = 0) -> list[SimRequest]:
    """``n`` requests with exponential gaps of mean ``1 / rate_per_s`` seconds (a Poisson
    process), the first at time 0; each prompt and output length drawn uniformly from the
    given lists (repeat a value to weight it). Seeded: the same arguments give the same list."""
    if not rate_per_s > 0 or n < 1 or not prompt_lens or not out_lens:
        raise ValueError(f"need rate_per_s > 0, n >= 1 and non-empty length lists, got "
                         f"{rate_per_s}, {n}, {len(prompt_lens)}, {len(out_lens)}")
    rng = random.Random(seed)
    t, out = 0.0, []
    for i in range(n):
        out.append(SimRequest(i, t, rng.choice(list(prompt_lens)), rng.choice(list(out_lens))))
        t += rng.expovariate(rate_per_s)
    return out


@dataclass(frozen=True)
class Latency:
    """One finished request's latencies, in seconds (TPOT ``None`` for a 1-token output)."""

    ttft_s: float
    tpot_s: float | None
    max_itl_s: float
    e2e_s: float


@dataclass
class SimResult:
    events: list[Event]  # the trace, in time order
    latencies: dict[int, Latency]  # request id -> its latencies
    step_times_s: list[float] = field(default_factory=list)
    stalls: int = 0  # decode-phase requests left out of a step, summed over steps
    output_tokens: int = 0

    @property
    def makespan_s(self) -> float:
        return self.events[-1].time_s - self.events[0].time_s

    @property
    def throughput_tokens_per_s(self) -> float:
        """Output tokens per second, first arrival to last finish."""
        return self.output_tokens / self.makespan_s

    def p99(self, which: str) -> float:
        """The 99th percentile (``numpy.percentile``, linear interpolation) of ``ttft_s``,
        ``tpot_s``, ``max_itl_s`` or ``e2e_s`` over the finished requests (TPOT: those with
        one)."""
        values = [v for lat in self.latencies.values() if (v := getattr(lat, which)) is not None]
        if not values:
            raise ValueError(f"no request has a {which}")
        return float(np.percentile(values, 99))


def measured_step_cost(tokens: Sequence[int], seconds: Sequence[float]) -> StepCost:
    """A step cost from times measured at a few token counts: linear between them, the last
    segment's slope beyond the largest, the smallest time below the smallest count. Ignores
    ``kv_tokens`` (the measured steps include their own attention)."""
    if len(tokens) < 2 or len(tokens) != len(seconds) or list(tokens) != sorted(set(tokens)):
        raise ValueError("need at least two strictly increasing token counts, one time each")
    xs, ys = [float(t) for t in tokens], [float(s) for s in seconds]

    def cost(n: int, kv_tokens: int) -> float:
        if n <= xs[0]:
            return ys[0]
        i = min(bisect.bisect_left(xs, n), len(xs) - 1)
        return ys[i - 1] + (n - xs[i - 1]) * (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])

    return cost


def simulate(requests: Sequence[SimRequest], policy: Policy, step_cost: StepCost, *,
             token_budget: int, chunk_size: int, max_running: int = 64,
             max_steps: int = 2_000_000) -> SimResult:
    """Serve ``requests`` until all finish; return the trace and the latencies."""
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("request ids must be unique")
    if not requests:
        raise ValueError("nothing to simulate: no requests")
    pending = deque(sorted(requests, key=lambda r: (r.arrival_s, r.id)))
    by_id = {r.id: r for r in requests}
    waiting: deque = deque()
    prefilling: dict[int, int] = {}  # id -> prompt tokens done, in admission order
    decoding: list[int] = []  # in the order they entered the decode phase
    context: dict[int, int] = {}  # id -> tokens in its KV cache
    times: dict[int, list[float]] = {}  # id -> times its tokens were delivered
    events: list[Event] = []
    result = SimResult(events, {})
    t = pending[0].arrival_s
    for step in range(max_steps):
        if not (pending or waiting or prefilling or decoding):
            break
        if not (waiting or prefilling or decoding):
            t = max(t, pending[0].arrival_s)
        while pending and pending[0].arrival_s <= t:
            r = pending.popleft()
            events.append(Event(r.id, "arrival", r.arrival_s, r.prompt_len))
            waiting.append(r)
        while waiting and len(prefilling) + len(decoding) < max_running:
            prefilling[waiting.popleft().id] = 0
        work = [PrefillWork(i, done, by_id[i].prompt_len) for i, done in prefilling.items()]
        plan = policy(list(decoding), work, token_budget, chunk_size)
        where = f"step {step} at {t:.6f} s"
        if plan.num_tokens > token_budget:
            raise InvariantError(f"{where}: the plan feeds {plan.num_tokens} tokens; the token "
                                 f"budget is {token_budget}")
        if plan.num_tokens == 0:
            raise InvariantError(f"{where}: the plan feeds nothing while {len(prefilling)} "
                                 f"requests prefill and {len(decoding)} decode")
        fed = list(plan.decodes) + [c.id for c in plan.chunks]
        if len(set(fed)) != len(fed):
            raise InvariantError(f"{where}: a request is fed twice in one step: {fed}")
        stray = [d for d in plan.decodes if d not in context or d in prefilling]
        if stray:
            raise InvariantError(f"{where}: decodes {stray} are not in the decode phase")
        kv_read = sum(context[d] for d in plan.decodes)
        for c in plan.chunks:
            if c.id not in prefilling:
                raise InvariantError(f"{where}: a chunk for request {c.id}, which is not "
                                     "prefilling")
            done, prompt = prefilling[c.id], by_id[c.id].prompt_len
            if c.start != done or c.length < 1 or c.start + c.length > prompt:
                raise InvariantError(
                    f"{where}: request {c.id} has {done} of {prompt} prompt tokens cached but "
                    f"the plan feeds tokens [{c.start}, {c.start + c.length}): a chunk starts "
                    "where the cache ends, holds at least one token and stops at the prompt's "
                    "end (else a token is fed twice or skipped)")
            kv_read += c.start + c.length
        result.stalls += len(decoding) - len(plan.decodes)
        for c in plan.chunks:
            if prefilling[c.id] == 0:
                events.append(Event(c.id, "scheduled", t))
        dt = float(step_cost(plan.num_tokens, kv_read))
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"step_cost({plan.num_tokens}, {kv_read}) = {dt!r}: a step takes "
                             "a positive, finite number of seconds")
        t += dt
        result.step_times_s.append(dt)
        delivered = []
        for d in plan.decodes:
            context[d] += 1
            delivered.append(d)
        for c in plan.chunks:
            prefilling[c.id] += c.length
            if prefilling[c.id] == by_id[c.id].prompt_len:
                del prefilling[c.id]
                context[c.id] = by_id[c.id].prompt_len
                decoding.append(c.id)
                delivered.append(c.id)
        for i in delivered:
            got = times.setdefault(i, [])
            got.append(t)
            events.append(Event(i, "first_token" if len(got) == 1 else "token", t))
            if len(got) == by_id[i].n_out:
                events.append(Event(i, "finish", t))
                decoding.remove(i)
                del context[i]
                r = by_id[i]
                gaps = [b - a for a, b in zip(got, got[1:])]
                result.latencies[i] = Latency(
                    ttft_s=got[0] - r.arrival_s,
                    tpot_s=(got[-1] - got[0]) / (len(got) - 1) if len(got) > 1 else None,
                    max_itl_s=max(gaps, default=0.0), e2e_s=got[-1] - r.arrival_s)
                result.output_tokens += len(got)
    else:
        raise InvariantError(f"not finished after {max_steps} steps")
    events.sort(key=lambda e: e.time_s)  # stable: a request's own events keep their order
    return result


def sweep(rates: Sequence[float], policy: Policy, step_cost: StepCost, *, n: int,
          prompt_lens: Sequence[int], out_lens: Sequence[int], seed: int = 0,
          token_budget: int, chunk_size: int, max_running: int = 64) -> list[SimResult]:
    """One open-loop run per arrival rate (requests/s), each with the same seed."""
    return [simulate(poisson_requests(rate, n, prompt_lens, out_lens, seed), policy, step_cost,
                     token_budget=token_budget, chunk_size=chunk_size, max_running=max_running)
            for rate in rates]
