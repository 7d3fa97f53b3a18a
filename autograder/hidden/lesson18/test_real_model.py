"""Hidden grader, lesson 18: the scheduler drives SmolLM2-135M (HF transformers, float32,
greedy) with a cache too small for its requests; every request, preempted or not, must produce
exactly the tokens the model gives it alone, without a cache (each token the argmax of a full
forward over prompt + tokens so far), up to a near-tie in the logits that another CPU's
arithmetic may flip (course.testing.is_greedy_continuation)."""

import pytest
import torch

from course.testing import is_greedy_continuation
from exercises.lesson18.scheduler import Request, Scheduler

PROMPTS = [  # fixed token ids: no tokenizer needed
    [1, 9690, 314, 253, 4371, 28, 837, 314, 260],
    [1, 504, 3458, 282, 4649, 314],
    [1, 2683, 549, 1311, 30, 378, 5248, 4371, 253, 1015, 28],
]
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def model():
    from course.model import load_hf_model

    # One thread: dozens of tiny forwards, where two threads on a busy runner mostly wait on
    # each other.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_hf_model()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def expected(model):
    out = []
    with torch.no_grad():
        for p in PROMPTS:
            ids = list(p)
            for _ in range(NEW_TOKENS):
                ids.append(int(model(torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
            out.append(ids[len(p):])
    return out


def run_engine(model, sched):
    """A minimal engine: one HF cache per sequence; a preempted sequence's cache is dropped
    (recompute) or kept aside (swap); each planned chunk is fed on top of its cache."""
    from course.model import hf_forward_with_cache

    caches = {}  # sequence id -> transformers' cache object
    for i, p in enumerate(PROMPTS):
        sched.add(Request(i, list(p), NEW_TOKENS))
    preempted_with_output = 0
    with torch.no_grad():
        while sched.has_unfinished():
            assert sched.steps < 500, "the engine did not finish in 500 steps"
            plan = sched.schedule()
            for sid in plan.preempted:
                victim = next(s for s in sched.waiting if s.id == sid)
                preempted_with_output += bool(victim.output)
                if sched.mode == "recompute":
                    caches.pop(sid, None)
            sampled = {}
            by_id = {s.id: s for s in sched.running}
            for sid, n in plan.tokens.items():
                seq = by_id[sid]
                cache = caches.get(sid)
                held = 0 if cache is None else cache.get_seq_length()
                assert held == seq.num_computed, (
                    f"sequence {sid}: the scheduler says {seq.num_computed} tokens are cached, "
                    f"the model's cache holds {held}")
                chunk = torch.tensor([seq.tokens[seq.num_computed:seq.num_computed + n]])
                logits, caches[sid] = hf_forward_with_cache(model, chunk, cache)
                if seq.num_computed + n == len(seq.tokens):
                    sampled[sid] = int(logits[0, -1].argmax())
            for sid in sched.update(plan, sampled):
                caches.pop(sid, None)
    return {s.id: s.output for s in sched.finished}, preempted_with_output


@pytest.mark.model
@pytest.mark.points(3)
def test_preempted_and_recomputed_request_produces_the_same_tokens(model, expected):
    """Bugs: a recomputed request resumes from its prompt only (its generated tokens lost: the
    model continues from the wrong context, or the client sees tokens twice); num_computed
    left as it was after the KV was dropped (the model attends to nothing and drifts);
    the recompute fed from a wrong offset."""
    # worst case 11 + 6 - 1 = 16 slots = 4 blocks for the longest; 5 blocks for all three
    # force preemptions, and a budget of 8 tokens chunks the prompts
    mode = "recompute"
    sched = Scheduler(num_blocks=5, block_size=4, token_budget=8, policy="lifo", mode=mode)
    got, preempted_with_output = run_engine(model, sched)
    assert preempted_with_output > 0, "the test must preempt a request that has generated"
    for i, want in enumerate(expected):
        same = got[i] == want or (len(got[i]) == len(want)
                                  and is_greedy_continuation(model, PROMPTS[i], got[i]))
        assert same, (f"request {i} ({mode}): {got[i]} but the model without a cache or "
                      f"preemption gives {want}")
