"""Lesson 24, part 1: stall-free plans with chunked prefill. Run: pytest exercises/lesson24

Expected plans are worked out by hand in the comments. The simulation tests use a step cost
written here (lesson 03's roofline shape with the H200 fixture's numbers), not your lesson 03.
"""

import pytest

from exercises.lesson24.chunking import (Chunk, PrefillWork, chunked_prefill_plan,
                                         prefill_first_plan)
from exercises.lesson24.simulator import poisson_requests, simulate
from hardware_fixtures import load

H200 = load("h200_sxm")
PARAMS, KV_BYTES = 7e9, 131_072  # a 7B-parameter bf16 model with Llama-3-8B's KV per token


def step_cost(tokens, kv_tokens):
    """Roofline: max(FLOPs / peak, bytes / bandwidth), weights read once per step."""
    flops = 2 * PARAMS * tokens
    nbytes = 2 * PARAMS + KV_BYTES * kv_tokens
    return max(flops / H200.peak_flops("bf16"), nbytes / H200.memory_bandwidth_bytes_per_s)


def test_docstring_example():
    # 2 decodes take 2 of 16 tokens; the partial prefill (id 5, 10 left) goes first: 8
    # (chunk_size); the new one (id 3) gets the 6 left.
    plan = chunked_prefill_plan([7, 8], [PrefillWork(3, 0, 100), PrefillWork(5, 40, 50)],
                                token_budget=16, chunk_size=8)
    assert plan.decodes == [7, 8], "every running decode runs first, in the given order"
    assert plan.chunks == [Chunk(5, 40, 8), Chunk(3, 0, 6)]
    assert plan.num_tokens == 16


def test_budget_filled_exactly_and_not_beyond():
    # budget 10, 1 decode: 9 left; prompts of 4 and 5 fit exactly, the third gets nothing
    plan = chunked_prefill_plan([0], [PrefillWork(1, 0, 4), PrefillWork(2, 0, 5),
                                      PrefillWork(3, 0, 7)], token_budget=10, chunk_size=64)
    assert plan.chunks == [Chunk(1, 0, 4), Chunk(2, 0, 5)], \
        "no chunk of 0 tokens; stop when the budget is used up"
    assert plan.num_tokens == 10


def test_too_many_decodes_is_an_error():
    with pytest.raises(ValueError):
        chunked_prefill_plan(list(range(5)), [], token_budget=4, chunk_size=4)


def test_no_stalls_and_itl_bounded_in_simulation():
    reqs = poisson_requests(20.0, 60, prompt_lens=[100, 100, 3000], out_lens=[20, 40], seed=1)
    got = simulate(reqs, chunked_prefill_plan, step_cost, token_budget=256, chunk_size=256)
    assert got.stalls == 0, "a decode was left out of a step: chunked prefill is stall-free"
    assert len(got.latencies) == len(reqs)
    # every gap between two tokens is one step, and no step costs more than a full budget
    # reading every cached token of the largest possible batch
    bound = step_cost(256, 64 * (3000 + 40))
    worst = max(lat.max_itl_s for lat in got.latencies.values())
    assert worst <= bound, f"max ITL {worst * 1e3:.2f} ms > one full step {bound * 1e3:.2f} ms"
    base = simulate(reqs, prefill_first_plan, step_cost, token_budget=4096, chunk_size=256)
    assert base.p99("max_itl_s") > 3 * got.p99("max_itl_s"), \
        "a 3000-token prefill stalls every decode when prompts are not chunked"


def test_the_trace_agrees_with_the_latencies():
    # lesson 17's definitions on the simulator's trace: TTFT = first_token - arrival,
    # E2E = finish - arrival, n_out tokens delivered
    from course.trace import validate

    reqs = poisson_requests(50.0, 30, prompt_lens=[64, 600], out_lens=[1, 5, 12], seed=2)
    got = simulate(reqs, chunked_prefill_plan, step_cost, token_budget=128, chunk_size=64)
    validate(got.events)
    times = {}
    for e in got.events:
        times.setdefault(e.request, {}).setdefault(e.kind, []).append(e.time_s)
    for r in reqs:
        lat, t = got.latencies[r.id], times[r.id]
        assert lat.ttft_s == pytest.approx(t["first_token"][0] - t["arrival"][0])
        assert lat.e2e_s == pytest.approx(t["finish"][0] - t["arrival"][0])
        assert 1 + len(t.get("token", [])) == r.n_out
