"""Lesson 18: the scheduler and its simulator. Run: pytest exercises/lesson18"""

import random

import pytest

from exercises.lesson18.scheduler import Plan, Request, Scheduler
from exercises.lesson18.simulator import simulate


def decoding(sched, *specs):
    """Admit and prefill sequences in one step (the budget must cover their prompts):
    spec = (id, prompt_len, max_new_tokens). Each then holds one generated token."""
    for rid, p, m in specs:
        sched.add(Request(rid, [rid + 1] * p, max_new_tokens=m))
    plan = sched.schedule()
    sampled = {rid: 100 + rid for rid in plan.tokens}
    sched.update(plan, sampled)
    return plan


def test_admission_control_rejects_a_request_larger_than_the_cache():
    s = Scheduler(num_blocks=4, block_size=4, token_budget=64)
    s.add(Request(0, [1] * 10, max_new_tokens=7))  # 16 slots = 4 blocks: fits exactly
    with pytest.raises(ValueError, match="block"):
        s.add(Request(1, [1] * 10, max_new_tokens=8))  # 17 slots = 5 blocks: never fits


def test_running_decodes_first_then_a_chunked_prefill():
    s = Scheduler(num_blocks=32, block_size=4, token_budget=8)
    decoding(s, (0, 3, 8), (1, 2, 8))
    s.add(Request(2, [5] * 10, max_new_tokens=4))
    plan = s.schedule()
    assert plan.tokens == {0: 1, 1: 1, 2: 6}, \
        "two decode tokens first, then 6 of the 10 prompt tokens: the budget is 8"
    assert plan.admitted == [2] and plan.preempted == []


def test_lifo_preempts_the_newest_and_it_keeps_its_tokens():
    # 3 blocks of 2: sequence 0 (3 slots after its decode) and 1 (2 slots) hold all of them
    s = Scheduler(num_blocks=3, block_size=2, token_budget=16)
    plan = decoding(s, (0, 2, 2), (1, 2, 2))
    assert plan.tokens == {0: 2, 1: 2} and s.free_blocks == 1
    plan = s.schedule()  # 0 writes slot 2 (block 2 of it); 1 writes slot 2: no block left
    assert plan.preempted == [1], "LIFO: the most recently admitted sequence is the victim"
    assert plan.tokens == {0: 1}
    victim = s.waiting[0]
    assert victim.id == 1 and victim.output == [101], "a preempted request keeps its output"
    assert victim.num_computed == 0 and victim.blocks == 0, "recompute: KV dropped, blocks freed"
    assert s.free_blocks == 1


@pytest.mark.parametrize("mode", ["recompute", "swap"])
@pytest.mark.parametrize("policy", ["lifo", "priority"])
def test_simulator_invariants_on_a_seeded_workload(mode, policy):
    rng = random.Random(18)
    requests = [Request(i, [rng.randrange(1000) for _ in range(rng.randint(1, 20))],
                        rng.randint(1, 20), arrival=rng.randint(0, 30), priority=rng.randint(0, 2))
                for i in range(20)]
    sched = Scheduler(num_blocks=12, block_size=4, token_budget=16, policy=policy, mode=mode)
    result = simulate(sched, requests)  # raises InvariantError on a broken rule
    assert sorted(result.finish_step) == list(range(20))
    assert sum(result.preemptions.values()) > 0, "this workload needs preemption"
    assert sched.free_blocks == 12
