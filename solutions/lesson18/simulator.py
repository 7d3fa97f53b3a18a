"""A discrete-event simulator that drives a Scheduler and checks it at every step (given).

Nothing here is for you to write. The simulator plays the engine: each step it adds the
requests that arrive, asks the scheduler for a plan, "runs" it with a toy model, and hands the
sampled tokens back. It keeps its own record of the KV each sequence holds (a list of the
tokens it was fed; dropped when a sequence is preempted under ``recompute``, kept on the host
under ``swap``) and its own record of every token streamed to each client, and after every
step it checks the scheduler against them:

- the plan stays within the token budget, and feeds each sequence from where its cache ends;
- blocks are never over-committed and none leak: free + held by running sequences = all;
- a running sequence holds the blocks for every KV slot it is about to write;
- what a request streams equals what it would stream without any preemption (the toy model's
  next token is a function of all the tokens before it, so a sequence that resumes from the
  wrong place, or forgets what it already generated, streams something else);
- every request finishes, within ``max_latency`` steps of its arrival when one is given.

Read: learning/lesson18.md#the-simulator
"""

from __future__ import annotations

from dataclasses import dataclass

from .scheduler import Plan, Request, Scheduler, blocks_for

VOCAB = 1009  # a prime, so the toy model's tokens do not repeat with a short period


class InvariantError(AssertionError):
    """The scheduler broke a rule of the simulation; the message says which, and when."""


def toy_next_token(tokens: list[int]) -> int:
    """A deterministic stand-in for a model's greedy choice: depends on every token, in order."""
    h = 7
    for t in tokens:
        h = (h * 31 + t + 1) % VOCAB
    return h


def reference_output(request: Request) -> list[int]:
    """The tokens ``request`` streams when nothing ever interrupts it."""
    tokens = list(request.prompt)
    out = []
    for _ in range(request.max_new_tokens):
        out.append(toy_next_token(tokens))
        tokens.append(out[-1])
    return out


@dataclass
class SimResult:
    steps: int
    finish_step: dict[int, int]  # request id -> step in which it finished
    first_token_step: dict[int, int]
    preemptions: dict[int, int]  # request id -> times preempted
    plans: list[Plan]
    peak_blocks_used: int


def simulate(scheduler: Scheduler, requests: list[Request], max_steps: int = 10_000,
             max_latency: int | None = None) -> SimResult:
    """Run ``requests`` through ``scheduler`` until all finish; raise InvariantError on the
    first broken rule. A request is added in the step of its ``arrival``."""
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError("request ids must be unique")
    pending = sorted(requests, key=lambda r: (r.arrival, r.id))
    want = {r.id: reference_output(r) for r in requests}
    arrival = {r.id: r.arrival for r in requests}
    kv: dict[int, list[int]] = {}  # what the engine holds for each sequence (GPU or host)
    streamed: dict[int, list[int]] = {r.id: [] for r in requests}
    finish, first, plans, peak = {}, {}, [], 0
    while pending or scheduler.has_unfinished():
        step = scheduler.steps
        if step >= max_steps:
            raise InvariantError(
                f"not finished after {max_steps} steps: {len(scheduler.waiting)} waiting "
                f"(ids {[s.id for s in scheduler.waiting][:8]}), {len(scheduler.running)} "
                "running: a request starves or the scheduler makes no progress")
        while pending and pending[0].arrival <= step:
            scheduler.add(pending.pop(0))
        plan = scheduler.schedule()
        plans.append(plan)
        where = f"step {step}"
        if plan.step != step:
            raise InvariantError(f"{where}: the plan says step {plan.step}")
        used = sum(plan.tokens.values())
        if used > scheduler.token_budget:
            raise InvariantError(f"{where}: the plan feeds {used} tokens; the token budget is "
                                 f"{scheduler.token_budget}")
        if scheduler.mode == "recompute":
            for sid in plan.preempted:
                kv[sid] = []  # its KV is gone: it must be computed again
        held = sum(s.blocks for s in scheduler.running)
        if scheduler.free_blocks < 0 or scheduler.free_blocks + held != scheduler.num_blocks:
            raise InvariantError(
                f"{where}: {scheduler.free_blocks} blocks free and {held} held by running "
                f"sequences, but the cache has {scheduler.num_blocks}: blocks are over-committed "
                "or leaked (a preempted or finished sequence must give back all its blocks)")
        if len(scheduler.running) > scheduler.max_running:
            raise InvariantError(f"{where}: {len(scheduler.running)} sequences running, "
                                 f"max_running is {scheduler.max_running}")
        running = {s.id: s for s in scheduler.running}
        waiting = {s.id for s in scheduler.waiting}
        if waiting & set(running):
            raise InvariantError(f"{where}: sequences {sorted(waiting & set(running))} are "
                                 "both waiting and running")
        for sid in plan.preempted:
            if sid not in waiting:
                raise InvariantError(f"{where}: preempted sequence {sid} is not back in the "
                                     "waiting queue")
            if streamed[sid] != scheduler_seq(scheduler, sid).output:
                raise InvariantError(
                    f"{where}: preempted sequence {sid} holds output "
                    f"{scheduler_seq(scheduler, sid).output[:6]}... but the client already has "
                    f"{streamed[sid][:6]}...: a preempted request keeps what it generated")
        sampled = {}
        for sid, n in plan.tokens.items():
            if sid not in running:
                raise InvariantError(f"{where}: the plan feeds sequence {sid}, which is not "
                                     "running")
            seq = running[sid]
            cache = kv.setdefault(sid, [])
            if n < 1 or seq.num_computed + n > len(seq.tokens):
                raise InvariantError(f"{where}: sequence {sid} is fed {n} tokens but has "
                                     f"{len(seq.tokens) - seq.num_computed} left to compute")
            if len(cache) != seq.num_computed:
                raise InvariantError(
                    f"{where}: sequence {sid} claims {seq.num_computed} tokens in its cache but "
                    f"the engine holds {len(cache)}: after preemption it must resume from where "
                    "its KV really ends (0 after recompute, all of it after swap)")
            if seq.blocks < blocks_for(seq.num_computed + n, scheduler.block_size):
                raise InvariantError(
                    f"{where}: sequence {sid} writes KV slot {seq.num_computed + n - 1} but "
                    f"holds only {seq.blocks} blocks of {scheduler.block_size}")
            cache += seq.tokens[seq.num_computed:seq.num_computed + n]
            if len(cache) == len(seq.tokens):
                sampled[sid] = toy_next_token(cache)
        for sid, token in sampled.items():
            streamed[sid].append(token)
            first.setdefault(sid, step)
            got, ref = streamed[sid], want[sid]
            if got != ref[:len(got)]:
                bad = next(i for i in range(len(got)) if i >= len(ref) or got[i] != ref[i])
                raise InvariantError(
                    f"{where}: request {sid} streamed {len(got)} tokens, the first wrong one at "
                    f"index {bad} (without preemption it streams {len(ref)} tokens): it resumed "
                    "from the wrong tokens or generated some twice")
        peak = max(peak, scheduler.num_blocks - scheduler.free_blocks)
        for sid in scheduler.update(plan, sampled):
            finish[sid] = step
            kv.pop(sid, None)
            if streamed[sid] != want[sid]:
                raise InvariantError(f"{where}: request {sid} finished with {len(streamed[sid])} "
                                     f"tokens streamed, want {len(want[sid])}")
            if max_latency is not None and step - arrival[sid] > max_latency:
                raise InvariantError(f"request {sid} arrived at step {arrival[sid]} and "
                                     f"finished at step {step}: more than {max_latency} steps "
                                     "(starvation)")
    missing = sorted(set(ids) - set(finish))
    if missing:
        raise InvariantError(f"requests {missing} never finished")
    preemptions = {s.id: s.preemptions for s in scheduler.finished}
    return SimResult(scheduler.steps, finish, first, preemptions, plans, peak)


def scheduler_seq(scheduler: Scheduler, sid: int):
    for seq in scheduler.waiting + scheduler.running + scheduler.finished:
        if seq.id == sid:
            return seq
    raise InvariantError(f"sequence {sid} is in none of waiting, running, finished")
