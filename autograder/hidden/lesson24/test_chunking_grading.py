"""Hidden grader, lesson 24: stall-free chunked-prefill plans.

Oracles: plans worked out by hand; for random inputs, the properties a stall-free plan must have
(every decode in, within the budget, each chunk from where its cache ends, the budget filled as
far as the work allows: min(budget, decodes + sum of min(remaining, chunk))); the simulator's own
checks and a step-cost formula written here; and an HF transformers Llama run with its own cache,
whose tokens and logits with the plan's chunks must equal those of the whole prompt at once.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.testing import assert_close, is_greedy_continuation, torch_threads
from exercises.lesson24.chunking import Chunk, PrefillWork, chunked_prefill_plan
from exercises.lesson24.simulator import SimRequest, simulate

PARAMS, KV_BYTES, PEAK, BW = 1e9, 32_768, 989.4e12, 4.8e12  # bf16 1B model on the H200 fixture


def step_cost(tokens, kv_tokens):
    return max(2 * PARAMS * tokens / PEAK, (2 * PARAMS + KV_BYTES * kv_tokens) / BW)


@pytest.mark.points(2)
def test_decodes_first_then_partial_then_new_prefills():
    """Bug: prefill chunks planned before the decodes (a decode stalls when the prompts use the
    budget), or new prefills served before the partially prefilled ones."""
    prefills = [PrefillWork(10, 0, 50), PrefillWork(11, 20, 30), PrefillWork(12, 0, 9),
                PrefillWork(13, 5, 6)]
    plan = chunked_prefill_plan([4, 2, 0], prefills, token_budget=20, chunk_size=8)
    # 3 decodes; then partials 11 (10 left -> 8) and 13 (1 left); then new 10 gets 20-3-8-1 = 8
    assert plan.decodes == [4, 2, 0]
    assert plan.chunks == [Chunk(11, 20, 8), Chunk(13, 5, 1), Chunk(10, 0, 8)], plan.chunks
    # a budget the prompts alone would fill: the decodes still all run
    plan = chunked_prefill_plan([1, 2], [PrefillWork(3, 0, 100)], token_budget=8, chunk_size=8)
    assert plan.decodes == [1, 2] and plan.chunks == [Chunk(3, 0, 6)], plan


@pytest.mark.points(2)
def test_budget_edges():
    """Bug: the last chunk takes one token more than the budget left (< vs <=), a chunk of 0
    tokens is planned when the budget is exactly used, or decodes that exactly fill the
    budget are refused."""
    plan = chunked_prefill_plan([0, 1, 2, 3], [PrefillWork(5, 0, 40)], token_budget=4,
                                chunk_size=16)
    assert plan.decodes == [0, 1, 2, 3] and plan.chunks == [], \
        "decodes that exactly fill the budget leave no room for a chunk, not even of 0 tokens"
    plan = chunked_prefill_plan([0], [PrefillWork(5, 3, 40), PrefillWork(6, 0, 2)],
                                token_budget=7, chunk_size=16)
    assert plan.chunks == [Chunk(5, 3, 6)] and plan.num_tokens == 7, plan
    with pytest.raises(ValueError):
        chunked_prefill_plan([0, 1, 2, 3, 4], [], token_budget=4, chunk_size=4)


work = st.lists(st.tuples(st.integers(0, 30), st.integers(1, 60)), max_size=6)


@pytest.mark.points(3)
@settings(max_examples=60)
@given(n_dec=st.integers(0, 12), work=work, budget=st.integers(12, 64),
       chunk=st.integers(1, 40))
def test_plan_properties(n_dec, work, budget, chunk):
    """Bug: a chunk that starts one token before or after where the cache ends (a token fed
    twice or skipped), the budget exceeded, or the budget left unused while work waits."""
    decodes = list(range(100, 100 + n_dec))
    prefills = [PrefillWork(i, min(d, p - 1), p) for i, (d, p) in enumerate(work)]
    plan = chunked_prefill_plan(decodes, prefills, budget, chunk)
    assert plan.decodes == decodes, "every running decode, in order"
    want = min(budget, n_dec + sum(min(p.remaining, chunk) for p in prefills))
    assert plan.num_tokens == want, \
        f"the plan feeds {plan.num_tokens} tokens; the budget and the work allow {want}"
    by_id = {p.id: p for p in prefills}
    for c in plan.chunks:
        p = by_id[c.id]
        assert c.start == p.done, f"request {c.id} has {p.done} tokens cached; its chunk " \
                                  f"starts at {c.start}"
        assert 1 <= c.length <= min(chunk, p.remaining), c


@pytest.mark.points(3)
@settings(max_examples=8, deadline=None)
@given(prompts=st.lists(st.integers(1, 700), min_size=2, max_size=10),
       outs=st.lists(st.integers(1, 30), min_size=10, max_size=10),
       gaps=st.lists(st.floats(0.0, 0.02), min_size=10, max_size=10),
       budget=st.integers(16, 128))
def test_itl_bounded_in_simulation(prompts, outs, gaps, budget):
    """Bug: a plan that lets prefills crowd a decode out of a step (a generation stall: the
    gap between two tokens spans several steps, one of them a long prefill)."""
    t, reqs = 0.0, []
    for i, p in enumerate(prompts):
        reqs.append(SimRequest(i, t, p, outs[i]))
        t += gaps[i]
    got = simulate(reqs, chunked_prefill_plan, step_cost, token_budget=budget,
                   chunk_size=budget, max_running=16)
    assert got.stalls == 0, f"{got.stalls} times a running decode was left out of a step"
    bound = step_cost(budget, 16 * (700 + 30))  # one full step at the largest KV read
    worst = max(lat.max_itl_s for lat in got.latencies.values())
    assert worst <= bound, f"max ITL {worst * 1e3:.3f} ms > one full step {bound * 1e3:.3f} ms"


@pytest.fixture(scope="module")
def tiny_model():
    from course.config import tiny
    from course.model import hf_model_from_weights, random_weights

    cfg = tiny(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, vocab_size=256)
    return hf_model_from_weights(cfg, random_weights(cfg, seed=24))


@pytest.mark.points(3)
def test_chunked_and_whole_prefill_give_the_same_tokens(tiny_model):
    """Bug: a chunk boundary off by one (a prompt token fed twice, or skipped): the model's
    cache then holds another sequence, and its logits and tokens differ from a prefill of the
    whole prompt at once."""
    from course.model import hf_forward_with_cache

    g = torch.Generator().manual_seed(0)
    prompts = {i: torch.randint(0, 256, (n,), generator=g).tolist()
               for i, n in enumerate([13, 5, 22, 9])}
    new_tokens = 5
    cache, done, out, first_logits = {}, {i: 0 for i in prompts}, {i: [] for i in prompts}, {}
    with torch.no_grad(), torch_threads(1):
        for _ in range(200):
            decoding = [i for i in prompts if done[i] == len(prompts[i])
                        and len(out[i]) < new_tokens]
            work = [PrefillWork(i, done[i], len(p)) for i, p in prompts.items()
                    if done[i] < len(p)]
            if not decoding and not work:
                break
            plan = chunked_prefill_plan(decoding, work, token_budget=8, chunk_size=4)
            for i in plan.decodes:
                logits, cache[i] = hf_forward_with_cache(tiny_model, torch.tensor([[out[i][-1]]]),
                                                         cache[i])
                out[i].append(int(logits[0, -1].argmax()))
            for c in plan.chunks:  # feed exactly what the plan says
                ids = torch.tensor([prompts[c.id][c.start:c.start + c.length]])
                logits, cache[c.id] = hf_forward_with_cache(tiny_model, ids, cache.get(c.id))
                done[c.id] += c.length
                if done[c.id] >= len(prompts[c.id]):
                    done[c.id] = len(prompts[c.id])
                    first_logits[c.id] = logits[0, -1]
                    out[c.id].append(int(logits[0, -1].argmax()))
        for i, prompt in prompts.items():
            whole = tiny_model(torch.tensor([prompt])).logits[0, -1]
            assert i in first_logits, f"request {i} never finished its prefill"
            assert_close(first_logits[i], whole, atol=1e-4,
                         what=f"last-position logits of request {i} after chunked prefill",
                         reference="the whole prompt in one forward")
            assert len(out[i]) == new_tokens
            assert is_greedy_continuation(tiny_model, prompt, out[i]), \
                f"request {i}: tokens {out[i]} are not the model's greedy continuation"
