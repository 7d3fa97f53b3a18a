"""Hidden grader, lesson 04: generation on the preallocated cache - correct, and a decode step
whose cost does not grow with the prompt.

Correctness: ``course.llama_reference.greedy_generate`` (its own list-of-tensors cache) and
``llama_forward`` without any cache. Cost: torch's FlopCounterMode against the analytic count
2 x (linear weights) per token run + 2 x vocab x d_model for the one row of logits; attention
(4 x n_layers x n_heads x d_head per cached token) is allowed on top where it is counted.
"""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.config import tiny
from course.counting import count_flops
from course.llama_reference import greedy_generate, llama_forward
from course.model import random_weights
from course.testing import assert_close
from exercises.lesson04.decode import forward_cached, generate_greedy
from exercises.lesson04.kv_cache import KVCache

CFG = tiny(vocab_size=1024)


def _linear_weights(cfg):
    d, q, kv, ff = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head, cfg.d_ff
    return cfg.n_layers * (d * q + 2 * d * kv + q * d + 3 * d * ff)


def _flops_bounds(cfg, batch, new_tokens, cached_before):
    """(lowest, highest) FLOPs of forward_cached running new_tokens after cached_before."""
    base = 2 * batch * new_tokens * _linear_weights(cfg) + 2 * batch * cfg.vocab_size * cfg.d_model
    keys = sum(cached_before + t + 1 for t in range(new_tokens))
    return base, base + 4 * batch * cfg.n_layers * cfg.n_heads * cfg.d_head * keys


def _cache(cfg, batch, max_seq=256):
    return KVCache(cfg.n_layers, batch, max_seq, cfg.n_kv_heads, cfg.d_head)


def _ids(cfg, batch, n, seed=0):
    return torch.randint(0, cfg.vocab_size, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.points(3)
@settings(max_examples=12, deadline=None)
@example(heads=(4, 2), batch=3, prompt=5, max_new=4, seed=7)
@example(heads=(4, 1), batch=2, prompt=1, max_new=1, seed=1)
@given(heads=st.sampled_from([(4, 4), (4, 2), (4, 1)]), batch=st.integers(1, 3),
       prompt=st.integers(1, 10), max_new=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_generation_equals_the_reference(heads, batch, prompt, max_new, seed):
    """Bugs: decode tokens rotated from position 0; a step that attends only to its own token
    or to the whole max_seq buffer (zeros past the end); logits of the wrong position; one
    argmax over the whole batch (rows of a batch continue differently); the last token picked
    also run through the model (one past the end: the cache is sized exactly
    prompt + max_new - 1, and must end holding that many tokens)."""
    cfg = tiny(n_heads=heads[0], n_kv_heads=heads[1])
    w = random_weights(cfg, seed=seed)
    ids = _ids(cfg, batch, prompt, seed)
    exact = _cache(cfg, batch, prompt + max_new - 1)
    got = generate_greedy(w, cfg, ids, max_new, exact)
    want = greedy_generate(w, cfg, ids, max_new)
    assert torch.equal(got, want), f"greedy ids differ from the reference:\n{got}\n{want}"
    assert exact.length(0) == prompt + max_new - 1, (
        f"after generating {max_new} tokens from a {prompt}-token prompt the cache holds "
        f"{exact.length(0)} tokens; the prompt and the first {max_new - 1} picks went through "
        "the model (the last pick is never run)")
    cache = _cache(cfg, batch, 32)
    if prompt > 1:
        forward_cached(w, cfg, ids[:, :-1], cache)
    logits = forward_cached(w, cfg, ids[:, -1:], cache)
    assert_close(logits, llama_forward(w, cfg, ids)[:, -1], atol=2e-4, rtol=2e-4,
                 what="forward_cached logits of the last token",
                 reference="a full forward without a cache")


@pytest.mark.points(1)
def test_bfloat16_model_on_a_bfloat16_cache():
    """Bugs: the residual stream (the embeddings) upcast to float32 "to be safe" in a bf16
    model, which then meets bf16 weights in a matmul; logits returned in float32 where the
    docstring promises the weights' dtype. The prompt is run in two chunks, the second of
    several tokens after cached ones; the reference is a float32 forward of the same
    (bf16-rounded) weights."""
    cfg = tiny(n_heads=4, n_kv_heads=2)
    w = random_weights(cfg, seed=3, dtype=torch.bfloat16)
    ids = _ids(cfg, 2, 9, seed=1)
    cache = KVCache(cfg.n_layers, 2, 16, cfg.n_kv_heads, cfg.d_head, dtype=torch.bfloat16)
    forward_cached(w, cfg, ids[:, :5], cache)
    got = forward_cached(w, cfg, ids[:, 5:], cache)
    want = llama_forward({k: t.float() for k, t in w.items()}, cfg, ids)[:, -1]
    assert got.dtype == torch.bfloat16, f"logits of a bf16 model came back {got.dtype}"
    assert_close(got.float(), want, atol=0.1, rtol=0.05,
                 what="forward_cached logits of a bf16 model, prompt in chunks of 5 and 4",
                 reference="a float32 forward without a cache")


@pytest.mark.points(2)
@pytest.mark.parametrize("prompt", [16, 128])
def test_forward_cached_flops_match_the_formula(prompt):
    """Bugs: logits for every position of the prompt (2 x (T-1) x vocab x d_model wasted); a
    decode step whose cost grows with the prompt beyond attention's small linear term."""
    w = random_weights(CFG, seed=0)
    batch, cache = 2, _cache(CFG, 2)
    ids = _ids(CFG, batch, prompt)
    low, high = _flops_bounds(CFG, batch, prompt, 0)
    flops = count_flops(forward_cached, w, CFG, ids, cache)
    assert low <= flops <= high, (f"a {prompt}-token prompt counted {flops:,} FLOPs; the formula "
                                  f"gives {low:,} to {high:,}")
    low, high = _flops_bounds(CFG, batch, 1, prompt)
    flops = count_flops(forward_cached, w, CFG, _ids(CFG, batch, 1, seed=1), cache)
    assert low <= flops <= high, (
        f"a decode step after {prompt} cached tokens counted {flops:,} FLOPs; one token through "
        f"the layers and one row of logits is {low:,} (attention adds at most {high - low:,})")


@pytest.mark.points(3)
def test_generation_never_recomputes_the_prefix():
    """Bug: generation that re-runs the whole sequence at every step (reset the cache and
    forward everything): correct ids, but each step costs O(prompt length) instead of O(1).
    Counted: generate_greedy's FLOPs equal one prefill plus max_new - 1 one-token steps."""
    w = random_weights(CFG, seed=1)
    batch, max_new = 2, 6
    for prompt in (16, 128):
        ids = _ids(CFG, batch, prompt, seed=prompt)
        low, high = _flops_bounds(CFG, batch, prompt, 0)
        for s in range(1, max_new):
            step_low, step_high = _flops_bounds(CFG, batch, 1, prompt + s - 1)
            low, high = low + step_low, high + step_high
        flops = count_flops(generate_greedy, w, CFG, ids, max_new, _cache(CFG, batch))
        assert low <= flops <= high, (
            f"generating {max_new} tokens after a {prompt}-token prompt counted {flops:,} FLOPs; "
            f"one prefill plus {max_new - 1} cached steps is {low:,} to {high:,}. Each step "
            "must run only the newest token.")


@pytest.mark.model
@pytest.mark.points(1)
def test_real_model_generation():
    """Bug: anything above that shows only on the real SmolLM2-135M (GQA 9 over 3 heads,
    30 layers): the cache sized or indexed with query heads, positions off by one."""
    from course.model import load_config, load_weights

    cfg, w = load_config(), load_weights()
    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314]])
    cache = KVCache(cfg.n_layers, 1, 16, cfg.n_kv_heads, cfg.d_head)
    assert torch.equal(generate_greedy(w, cfg, ids, 4, cache), greedy_generate(w, cfg, ids, 4))
