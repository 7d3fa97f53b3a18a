"""Hidden grader, lesson 18: the scheduler driven by the simulator over generated workloads,
and two workloads built to starve a request."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson18.scheduler import Request, Scheduler, blocks_for
from exercises.lesson18.simulator import simulate


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 14))
    return [Request(i, [draw(st.integers(0, 50)) for _ in range(draw(st.integers(1, 12)))],
                    draw(st.integers(1, 12)), arrival=draw(st.integers(0, 12)),
                    priority=draw(st.integers(0, 3)))
            for i in range(n)]


@pytest.mark.points(4)
@settings(max_examples=40)
@given(requests=workloads(), num_blocks=st.integers(3, 16), block_size=st.sampled_from([1, 2, 4]),
       token_budget=st.integers(1, 24), max_running=st.integers(1, 6),
       policy=st.sampled_from(["lifo", "priority"]), mode=st.sampled_from(["recompute", "swap"]))
def test_invariants_hold_on_every_step(requests, num_blocks, block_size, token_budget,
                                       max_running, policy, mode):
    """Bugs: blocks over-committed or leaked; the token budget exceeded; a sequence fed from
    the wrong place after preemption (num_computed not reset under recompute, or reset under
    swap); generated tokens lost or streamed twice; a request that never finishes."""
    requests = [r for r in requests
                if blocks_for(len(r.prompt) + r.max_new_tokens - 1, block_size) <= num_blocks]
    sched = Scheduler(num_blocks, block_size, token_budget, max_running=max_running,
                      policy=policy, mode=mode, aging_steps=4)
    result = simulate(sched, requests, max_steps=3000)
    assert sorted(result.finish_step) == sorted(r.id for r in requests)
    assert sched.free_blocks == num_blocks, "every block is free once all requests finished"


def hog_and_stream(priority_of_hog):
    """Request 0 (8 prompt tokens, 20 new: 7 of the 8 blocks at most) arrives first; then a
    short request (8 + 8 tokens, 4 blocks at most) every 4 steps for 400 steps. Two short ones
    run at a time and each takes 8 steps, so the stream alone keeps up with its arrivals."""
    hog = Request(0, [1] * 8, 20, arrival=0, priority=priority_of_hog)
    return [hog] + [Request(i, [2] * 8, 8, arrival=4 * i, priority=0) for i in range(1, 100)]


@pytest.mark.points(2)
def test_priority_with_aging_does_not_starve():
    """Bug: aging ignored (the victim or the queue order uses the raw priority): a
    low-priority request is preempted again and again while important ones keep arriving.
    Bound: the hog (priority 5) gains a level every 4 steps and a running short request
    (priority 0, arrived 8 steps earlier at most) stands at -2, so from step 28 on the hog is
    the most important; the short ones then running finish within 8 steps, and the hog needs
    28 steps of its own (8 prompt tokens, 20 decodes): 64 steps, under the 100 allowed.
    Without aging it finishes only when the stream ends, near step 400."""
    sched = Scheduler(num_blocks=8, block_size=4, token_budget=32, policy="priority",
                      aging_steps=4)
    result = simulate(sched, hog_and_stream(priority_of_hog=5), max_latency=100)
    assert result.finish_step[0] <= 100


@pytest.mark.points(1)
def test_lifo_under_a_steady_stream_serves_everyone():
    """Bug: anything that leaves a request behind under LIFO while the stream lasts (a
    preempted request queued behind later arrivals, a waiting request overtaken). Under LIFO
    with an FCFS queue the oldest running request is never a victim while others run, and a
    preempted one returns ahead of everyone who arrived after it: every request here finishes
    within 100 steps of its arrival (the hog in 20: 8 prompt tokens, 20 decodes, as the
    oldest it is never preempted)."""
    sched = Scheduler(num_blocks=8, block_size=4, token_budget=32, policy="lifo")
    result = simulate(sched, hog_and_stream(priority_of_hog=0), max_latency=100)
    assert result.finish_step[0] <= 100
