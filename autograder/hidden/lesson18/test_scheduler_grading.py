"""Hidden grader, lesson 18: the scheduler's rules on small hand-built cases."""

import pytest

from exercises.lesson18.scheduler import Request, Scheduler


def step(sched, sampled_base=100):
    plan = sched.schedule()
    sched.update(plan, {sid: sampled_base + sid for sid in plan.tokens})
    return plan


def seq(sched, sid):
    return next(s for s in sched.waiting + sched.running + sched.finished if s.id == sid)


@pytest.mark.points(2)
def test_admission_control_boundary_and_message():
    """Bug: a request that can never fit is queued and waits forever (no admission control),
    or the check is off by one (counting max_new_tokens slots instead of max_new_tokens - 1,
    or refusing a request that fits the cache exactly)."""
    s = Scheduler(num_blocks=3, block_size=4, token_budget=32)
    s.add(Request(0, [7] * 5, max_new_tokens=8))  # 12 slots = 3 blocks: the whole cache
    assert [q.id for q in s.waiting] == [0], "a request that fits exactly must be queued"
    with pytest.raises(ValueError) as err:
        s.add(Request(1, [7] * 5, max_new_tokens=9))  # 13 slots = 4 blocks
    assert "1" in str(err.value) and "4" in str(err.value) and "3" in str(err.value), \
        "the error names the request, the blocks it needs and the blocks the cache has"
    assert [q.id for q in s.waiting] == [0], "a refused request must not be queued"


@pytest.mark.points(2)
def test_token_budget_is_used_exactly_and_never_exceeded():
    """Bug: the budget compared with < instead of <= (a step that needs exactly the budget
    leaves a token unused, or runs one token over it)."""
    s = Scheduler(num_blocks=64, block_size=4, token_budget=10)
    s.add(Request(0, [1] * 4, max_new_tokens=5))
    s.add(Request(1, [2] * 6, max_new_tokens=5))
    s.add(Request(2, [3] * 3, max_new_tokens=5))
    plan = step(s)
    assert plan.tokens == {0: 4, 1: 6}, (
        f"prompts of 4 and 6 fill a budget of 10 exactly; got {plan.tokens}")
    plan = step(s)
    assert plan.tokens == {0: 1, 1: 1, 2: 3}, f"two decodes then a 3-token prompt, got {plan.tokens}"
    s2 = Scheduler(num_blocks=64, block_size=4, token_budget=5)
    s2.add(Request(0, [1] * 12, max_new_tokens=2))
    chunks = [step(s2).tokens for _ in range(3)]
    assert chunks == [{0: 5}, {0: 5}, {0: 2}], f"a 12-token prompt in chunks of 5, got {chunks}"
    assert seq(s2, 0).output == [100]
    s3 = Scheduler(num_blocks=64, block_size=4, token_budget=3)
    for i in range(3):
        s3.add(Request(i, [i] * 1, max_new_tokens=4))
    plans = [step(s3).tokens for _ in range(2)]
    assert plans == [{0: 1, 1: 1, 2: 1}, {0: 1, 1: 1, 2: 1}], \
        f"one-token prompts fill a budget of 3 exactly, then three decodes: got {plans}"
    s3.add(Request(3, [3], max_new_tokens=4))
    plan = step(s3).tokens
    assert plan == {0: 1, 1: 1, 2: 1}, \
        f"the budget is spent by the three decodes: nothing else runs, not even for 0 tokens: {plan}"


@pytest.mark.points(2)
def test_exact_fit_does_not_preempt():
    """Bug: blocks compared with >= instead of > (a sequence that needs exactly the free
    blocks preempts a victim it did not need to)."""
    s = Scheduler(num_blocks=4, block_size=2, token_budget=16)
    s.add(Request(0, [1] * 2, max_new_tokens=3))
    s.add(Request(1, [2] * 2, max_new_tokens=3))
    step(s)  # each holds 1 block; 2 free
    plan = step(s)  # each writes slot 2: one new block each, exactly the 2 free
    assert plan.preempted == [] and plan.tokens == {0: 1, 1: 1}, plan
    assert s.free_blocks == 0


@pytest.mark.points(3)
def test_lifo_victim_is_the_newest_and_frees_all_its_blocks():
    """Bugs: the oldest running sequence is preempted instead of the newest; the victim's
    blocks are not given back (a leak); the victim's generated tokens are lost (it restarts
    from the prompt); under recompute its num_computed is not reset."""
    s = Scheduler(num_blocks=5, block_size=2, token_budget=16)
    for i in range(3):
        s.add(Request(i, [i + 1] * 3, max_new_tokens=4))  # 6 slots = 3 blocks at most
    plan = step(s)  # 0 and 1 admitted with 2 blocks each, 2 waits (1 block free)
    assert plan.admitted == [0, 1] and s.free_blocks == 1
    step(s)  # slot 3: no new block
    plan = s.schedule()  # slot 4: both need one, 1 free: 0 takes it, 1 is preempted
    assert plan.preempted == [1], f"LIFO must preempt the newest (1), got {plan.preempted}"
    victim = seq(s, 1)
    assert victim.blocks == 0 and s.free_blocks == 2, \
        "the victim's 2 blocks must all go back to the free pool"
    assert victim.output == [101, 101], "the victim keeps the 2 tokens it generated"
    assert victim.num_computed == 0 and victim.tokens == [2, 2, 2, 101, 101]
    assert plan.admitted == [], "nobody is admitted in a step that preempted"


@pytest.mark.points(2)
def test_victim_already_scheduled_gives_back_its_tokens():
    """Bug: a victim that was already scheduled earlier in the step keeps its place in the
    plan (the engine would run a sequence that has no blocks), or its tokens stay charged to
    the budget."""
    s = Scheduler(num_blocks=4, block_size=2, token_budget=16, policy="priority",
                  aging_steps=None)
    s.add(Request(0, [1] * 2, max_new_tokens=4, priority=5))  # least important, runs first
    step(s)  # 0 holds 1 block
    s.add(Request(1, [2] * 2, max_new_tokens=3, priority=0, arrival=1))
    s.add(Request(2, [3] * 2, max_new_tokens=3, priority=0, arrival=1))
    step(s)  # 0 writes slot 2 (2 blocks); 1 and 2 admitted (1 block each): none free
    plan = s.schedule()  # 0 is scheduled first (slot 3, no new block); 1 needs a block:
    # the victim is 0, whose token this step must leave the plan
    assert plan.preempted == [0] and plan.tokens == {1: 1, 2: 1}, plan
    assert s.free_blocks == 0 and seq(s, 0).blocks == 0


@pytest.mark.points(2)
def test_priority_victim_ages_and_breaks_ties_by_recency():
    """Bugs: the priority victim ignores aging (a request that waited long is still the first
    to go); ties between equal priorities broken towards the oldest admission."""
    s = Scheduler(num_blocks=64, block_size=4, token_budget=64, policy="priority",
                  aging_steps=2)
    s.add(Request(0, [1] * 2, max_new_tokens=30, priority=1))
    s.add(Request(1, [1] * 2, max_new_tokens=30, priority=1))
    step(s)
    assert s.choose_victim().id == 1, "equal priority: the most recently admitted goes"
    s.add(Request(2, [1] * 2, max_new_tokens=30, arrival=s.steps, priority=0))
    step(s)
    # at step 2: 0 and 1 have priority 1 - 2 // 2 = 0, request 2 has 0 - 0 = 0: newest goes
    assert s.choose_victim().id == 2
    for _ in range(3):
        step(s)
    # at step 5: 0 and 1 at 1 - 5 // 2 = -1, request 2 (arrived at 1) at 0 - 4 // 2 = -2
    assert s.choose_victim().id == 1, "aging: the older requests are now less important"


@pytest.mark.points(2)
def test_swap_keeps_the_kv_and_copies_it_back():
    """Bugs: swap mode resets num_computed (it recomputes after paying for the copy); the
    blocks copied out or back are not recorded; a swapped sequence is not marked."""
    s = Scheduler(num_blocks=3, block_size=2, token_budget=16, mode="swap")
    plan = None
    s.add(Request(0, [1] * 2, max_new_tokens=2))
    s.add(Request(1, [2] * 2, max_new_tokens=2))
    step(s)
    plan = s.schedule()
    assert plan.preempted == [1] and plan.swap_out == {1: 1}
    victim = seq(s, 1)
    assert victim.swapped and victim.num_computed == 2 and victim.blocks == 0
    s.update(plan, {0: 9})  # 0 finishes: its 2 blocks are free
    plan = s.schedule()
    assert plan.admitted == [1] and plan.swap_in == {1: 1} and plan.tokens == {1: 1}, \
        "the swapped sequence comes back with its 2 tokens of KV: it feeds only its last token"
    assert not seq(s, 1).swapped


@pytest.mark.points(1)
def test_single_token_requests_and_id_zero():
    """Bug: a request with max_new_tokens=1 is decoded once more after its prefill, or a
    one-token prompt is treated as empty; request id 0 is treated as missing."""
    s = Scheduler(num_blocks=1, block_size=1, token_budget=4)
    s.add(Request(0, [0], max_new_tokens=1))
    plan = step(s, sampled_base=0)
    assert plan.tokens == {0: 1} and [q.id for q in s.finished] == [0]
    assert s.finished[0].output == [0] and s.free_blocks == 1 and not s.has_unfinished()
