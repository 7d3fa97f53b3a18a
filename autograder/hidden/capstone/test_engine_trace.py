"""Hidden graders, capstone: the engine over the submission's pieces on a fixed trace of a
tiny random Llama (HF transformers on the same weights is the oracle): every request finishes
with the oracle's tokens, every block comes back, the trace is valid, aborts and bad requests
are handled, and the run takes no more engine steps than the reference pieces need."""

from __future__ import annotations

import pytest
import torch

from course.engine import Engine, SamplingParams
from course.trace import validate

BLOCK_SIZE = 4
NUM_BLOCKS = 24
TOKEN_BUDGET = 16
MAX_RUNNING = 4


def _prompts():
    g = torch.Generator().manual_seed(7)
    def rand(n):
        return torch.randint(1, 256, (n,), generator=g).tolist()
    shared = rand(48)  # twelve blocks that three later requests reuse
    prompts = {
        "a": [0] + rand(20),  # token id 0 is a token like any other
        "b": rand(7),
        "c": shared + rand(5),
        "d": rand(1),  # a one-token prompt
        "e": shared + rand(3),
        "f": rand(33),
        "g": shared + rand(9),
        "h": rand(16),  # exactly four blocks
    }
    prompts["i"] = list(prompts["h"])  # h again, once h is cached: a full hit on whole blocks
    return prompts


# (arrival step, request, max_tokens): requests arrive while others run; e and g share c's
# 48-token prefix and arrive after c has computed it; i repeats h's 16 tokens (four whole
# blocks, all cached: the last one must be computed again, for the logits).
TRACE = [(0, "a", 10), (0, "b", 6), (0, "c", 5), (2, "d", 8), (8, "e", 6), (9, "f", 9),
         (12, "g", 4), (14, "h", 7), (40, "i", 3)]

# The throughput trace: a system prompt of 64 tokens (16 blocks) that seven requests share.
# The first computes it; the others arrive once it is cached and prefill only their own few
# tokens, so most of the work is prefill that the prefix cache saves (without it the run takes
# about three times the steps).
THROUGHPUT_BLOCKS = 48
THROUGHPUT_TRACE = [(0, "s0", 3)] + [(6, f"s{i}", 3) for i in range(1, 7)]
# Engine steps the reference pieces take on THROUGHPUT_TRACE (deterministic: no clock, no
# randomness; tests/test_capstone_engine.py recomputes it with solutions/ and fails if it drifts).
REFERENCE_STEPS = 16
STEP_SHARE = 1.25  # a learner's pieces may take at most this many times the reference's steps


def throughput_arrivals():
    g = torch.Generator().manual_seed(11)
    system = torch.randint(1, 256, (64,), generator=g).tolist()
    out: dict[int, list] = {}
    for i, (step, rid, n) in enumerate(THROUGHPUT_TRACE):
        prompt = system + torch.randint(1, 256, (2 + i,), generator=g).tolist()
        out.setdefault(step, []).append((rid, prompt, SamplingParams(max_tokens=n)))
    return out


def throughput_engine(impl, tiny_model, **kw):
    return _engine(impl, tiny_model, num_blocks=THROUGHPUT_BLOCKS, max_running=8, **kw)


def _arrivals():
    prompts = _prompts()
    out: dict[int, list] = {}
    for step, rid, n in TRACE:
        out.setdefault(step, []).append((rid, prompts[rid], SamplingParams(max_tokens=n)))
    return out


def _engine(impl, tiny_model, **kw):
    cfg, weights, _ = tiny_model
    args = dict(num_blocks=NUM_BLOCKS, block_size=BLOCK_SIZE, token_budget=TOKEN_BUDGET,
                max_running=MAX_RUNNING, weights=weights, cfg=cfg)
    args.update(kw)
    return Engine(impl, **args)


@pytest.fixture(scope="module")
def expected(tiny_model, greedy):
    _, _, hf = tiny_model
    prompts = _prompts()
    return {rid: greedy(hf, prompts[rid], n) for _, rid, n in TRACE}


@pytest.fixture(scope="module")
def finished_run(impl, tiny_model, run_trace):
    """One run of TRACE (shared by the graders that only read its result)."""
    engine = _engine(impl, tiny_model)
    tokens, reasons = run_trace(engine, _arrivals())
    return engine, tokens, reasons


def _check_tokens(tokens, expected):
    wrong = {rid: (tokens.get(rid), exp) for rid, exp in expected.items()
             if tokens.get(rid) != exp}
    assert not wrong, (
        f"{len(wrong)} of {len(expected)} requests got other tokens than HF transformers' "
        f"greedy decode on the same weights; first: request {next(iter(wrong))!r} got "
        f"{wrong[next(iter(wrong))][0]}, expected {wrong[next(iter(wrong))][1]}")


@pytest.mark.points(3)
def test_fixed_trace_finishes_every_request_with_the_oracles_tokens(finished_run, expected):
    """Bug: any piece that corrupts a batched, paged, chunked, prefix-sharing run: write_kv
    into the wrong slot at a block boundary, a prefix match one block too long or too short, a
    chunk that feeds a token twice, decode attention reading one key too few, a request that
    never finishes. Every request must end ("length") with exactly the oracle's tokens."""
    engine, tokens, reasons = finished_run
    assert reasons == {rid: "length" for _, rid, _ in TRACE}, \
        f"finish reasons {reasons}; every request should end by its length"
    _check_tokens(tokens, expected)
    assert engine.stats["prefix_hits"] > 0, \
        "no prefix hit: requests e and g share 48 prompt tokens with c, computed before they arrive"


@pytest.mark.points(3)
def test_fixed_trace_frees_every_block_and_writes_a_valid_trace(finished_run):
    """Bug: blocks that leak or are freed twice (the scheduler not returning a finished or
    preempted sequence's blocks, the allocator double-freeing, the radix cache keeping a
    reference after release), or events out of order. At the end the allocator's free blocks
    plus the cache's unreferenced ones are all num_blocks; evicting the cache frees every block
    into the allocator; the trace validates, one finish per request."""
    engine, tokens, _ = finished_run
    assert engine.free_blocks() == NUM_BLOCKS, (
        f"after every request finished, {engine.free_blocks()} of {NUM_BLOCKS} blocks are free "
        f"or reclaimable ({engine.allocator.num_free} free in the allocator): blocks leaked")
    assert engine.scheduler.free_blocks == NUM_BLOCKS, (
        f"the scheduler counts {engine.scheduler.free_blocks} of {NUM_BLOCKS} blocks free after "
        "every request finished: it did not give some back")
    engine.clear_prefix_cache()
    assert engine.allocator.num_free == NUM_BLOCKS, (
        f"after evicting the prefix cache the allocator has {engine.allocator.num_free} of "
        f"{NUM_BLOCKS} blocks free")
    assert engine.cache.num_blocks == 0, f"the cache still holds {engine.cache.num_blocks} blocks"
    events = engine.trace()
    validate(events)
    finishes = [e.request for e in events if e.kind == "finish"]
    assert sorted(finishes) == sorted(tokens), f"finish events for {finishes}"
    delivered = {}
    for e in events:
        if e.kind in ("first_token", "token"):
            delivered[e.request] = delivered.get(e.request, 0) + e.tokens
    assert delivered == {rid: len(t) for rid, t in tokens.items()}, \
        "the trace's token events do not add up to the tokens each request received"


@pytest.mark.points(2)
def test_throughput_in_engine_steps_is_a_share_of_the_reference(impl, tiny_model, greedy,
                                                                 run_trace):
    """Bug: right tokens at a higher cost: a prefix cache that never hits (the shared prompt
    is prefilled again for every request), a scheduler that admits one request per step or
    leaves token budget unused. The throughput trace must take at most STEP_SHARE x the
    reference's engine steps, with the oracle's tokens (steps are counted, not timed: the grade
    does not depend on the machine)."""
    engine = throughput_engine(impl, tiny_model)
    arrivals = throughput_arrivals()
    tokens, _ = run_trace(engine, arrivals)
    _, _, hf = tiny_model
    expected = {rid: greedy(hf, prompt, p.max_tokens)
                for reqs in arrivals.values() for rid, prompt, p in reqs}
    _check_tokens(tokens, expected)
    assert engine.steps <= STEP_SHARE * REFERENCE_STEPS, (
        f"the throughput trace took {engine.steps} engine steps; the reference pieces take "
        f"{REFERENCE_STEPS} (at most {STEP_SHARE:g}x = {STEP_SHARE * REFERENCE_STEPS:g} allowed). "
        f"Prompt tokens served from the prefix cache: {engine.stats['prefix_hit_tokens']}; "
        f"prefilled: {engine.stats['prefill_tokens']}")


@pytest.mark.points(2)
def test_abort_frees_blocks_at_once(impl, tiny_model, expected, run_trace):
    """Bug: an aborted request that keeps its blocks (or frees them twice), or that breaks the
    requests still running (and, with a token budget that would admit all four at once, a
    scheduler that runs more than max_running). One running and one waiting request are aborted; the others finish
    with the oracle's tokens and every block comes back; aborting again changes nothing."""
    prompts = _prompts()
    engine = _engine(impl, tiny_model, max_running=2, token_budget=64)
    for rid in ("a", "f", "b", "h"):
        engine.add_request(rid, prompts[rid], SamplingParams(max_tokens=dict(
            (r, n) for _, r, n in TRACE)[rid]))
    got = {rid: [] for rid in ("a", "f", "b", "h")}
    for _ in range(3):
        for early in engine.step():
            got[early.request_id].append(early.token_id)
    before = engine.free_blocks()
    engine.abort("f")  # running (admitted in the first step)
    engine.abort("h")  # waiting
    engine.abort("f")  # again: nothing happens
    assert engine.free_blocks() > before, \
        "aborting a running request gave no block back"
    outs = []
    for _ in range(500):
        if not engine.has_unfinished():
            break
        outs += engine.step()
    assert not engine.has_unfinished(), "the engine did not finish after the aborts"
    aborted = [o.request_id for o in outs if o.finish_reason == "abort"]
    assert sorted(aborted) == ["f", "h"], f"abort outputs for {aborted}, expected f and h"
    for o in outs:
        if o.token_id is not None:
            got[o.request_id].append(o.token_id)
    for rid in ("a", "b"):
        assert got[rid] == expected[rid], f"request {rid!r} after the aborts: {got[rid]}"
    assert engine.free_blocks() == NUM_BLOCKS and engine.scheduler.free_blocks == NUM_BLOCKS, (
        f"after the aborts and the rest finished: {engine.free_blocks()} blocks free or "
        f"reclaimable, the scheduler counts {engine.scheduler.free_blocks}, of {NUM_BLOCKS}")
    validate(engine.trace())


@pytest.mark.points(1)
def test_bad_requests_get_a_clear_error_and_the_engine_goes_on(impl, tiny_model, expected):
    """Bug: a request that can never fit (or an empty one) accepted and left to stall the
    queue, or a refusal that leaves state behind. Each gets a ValueError naming the problem;
    the engine then serves a valid request with the oracle's tokens and frees its blocks."""
    engine = _engine(impl, tiny_model)
    too_long = list(range(1, NUM_BLOCKS * BLOCK_SIZE))
    with pytest.raises(ValueError, match="too long"):
        engine.add_request("long", too_long, SamplingParams(max_tokens=8))
    with pytest.raises(ValueError, match="empty"):
        engine.add_request("empty", [], SamplingParams(max_tokens=8))
    with pytest.raises(ValueError, match="max_tokens"):
        engine.add_request("zero", [1, 2], SamplingParams(max_tokens=0))
    assert not engine.has_unfinished(), "a refused request was queued"
    prompt = _prompts()["a"]
    assert engine.generate([prompt], SamplingParams(max_tokens=10)) == [expected["a"]]
    assert engine.free_blocks() == NUM_BLOCKS
