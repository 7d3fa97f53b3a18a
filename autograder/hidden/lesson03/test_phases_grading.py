"""Hidden grader, lesson 03: prefill + decode steps against a full forward, and prefill's cost.

The reference is ``course.llama_reference.llama_forward`` run on the whole sequence with no
cache (an independent path: it never sees the learner's cache), on tiny seeded configs (MHA,
GQA, MQA) and, once, on the real SmolLM2-135M weights.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.config import tiny
from course.counting import count_flops
from course.llama_reference import llama_forward
from course.model import random_weights
from course.testing import assert_close
from exercises.lesson03.phases import decode_step, prefill

REFERENCE = "a full forward of the whole sequence without a cache"
CONFIGS = {"MHA": tiny(n_heads=4, n_kv_heads=4), "GQA": tiny(n_heads=4, n_kv_heads=2),
           "MQA": tiny(n_layers=3, d_model=48, n_heads=6, n_kv_heads=1)}


def _ids(cfg, batch, length, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (batch, length), generator=gen)


def _check_generation(w, cfg, ids, prompt_len, atol):
    full = llama_forward(w, cfg, ids)
    logits, cache = prefill(w, cfg, ids[:, :prompt_len])
    assert_close(logits, full[:, prompt_len - 1], atol=atol, rtol=atol,
                 what=f"prefill logits (prompt of {prompt_len})", reference=REFERENCE)
    for t in range(prompt_len, ids.shape[1]):
        logits, cache = decode_step(w, cfg, ids[:, t], cache)
        assert_close(logits, full[:, t], atol=atol, rtol=atol,
                     what=f"decode step at position {t} (prompt of {prompt_len})",
                     reference=REFERENCE)
    lengths = {k.shape[2] for k, _ in cache} | {v.shape[2] for _, v in cache}
    assert lengths == {ids.shape[1]}, (
        f"after prefill and {ids.shape[1] - prompt_len} steps every layer's K and V must hold "
        f"{ids.shape[1]} tokens; found lengths {sorted(lengths)}")


@pytest.mark.points(3)
@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(sorted(CONFIGS)), batch=st.integers(1, 3),
       prompt_len=st.integers(1, 12), steps=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_prefill_then_decode_equals_full_forward(kind, batch, prompt_len, steps, seed):
    """Bugs: decode tokens rotated by RoPE from position 0 instead of the cache length; the
    new K/V not appended to the cache (or appended before the cached ones); a cache that
    stops growing after prefill; a prompt of one token mishandled."""
    cfg = CONFIGS[kind]
    w = random_weights(cfg, seed=seed)
    _check_generation(w, cfg, _ids(cfg, batch, prompt_len + steps, seed), prompt_len, 2e-4)


@pytest.mark.points(1)
def test_decode_leaves_the_given_cache_alone():
    """Bug: decode_step (or run_layers) writes the extended K/V back into the cache it was
    given, so branching two continuations from one prefill (beam search, parallel sampling)
    makes the second branch see the first branch's token."""
    cfg = CONFIGS["GQA"]
    w = random_weights(cfg, seed=7)
    ids = _ids(cfg, 2, 6, seed=7)
    _, cache = prefill(w, cfg, ids)
    before = [(k.clone(), v.clone()) for k, v in cache]
    for branch in (3, 11):
        token = torch.full((2,), branch)
        logits, _ = decode_step(w, cfg, token, cache)
        want = llama_forward(w, cfg, torch.cat([ids, token[:, None]], dim=1))[:, -1]
        assert_close(logits, want, atol=2e-4, rtol=2e-4,
                     what=f"branch with token {branch} from the same prefill cache",
                     reference=REFERENCE)
    assert len(cache) == cfg.n_layers and all(
        torch.equal(k, k0) and torch.equal(v, v0) for (k, v), (k0, v0) in zip(cache, before)), \
        "decode_step changed the cache it was given; return a new list instead"


@pytest.mark.points(2)
def test_prefill_projects_only_the_last_position():
    """Bug: prefill computes logits for every prompt position and then slices the last one:
    2 x (T - 1) x vocab x d_model FLOPs per sequence wasted (for a 32k-vocab model and a
    2k-token prompt, more than the rest of a small model's forward)."""
    cfg = tiny(vocab_size=4096)
    w = random_weights(cfg, seed=0)
    batch, T = 2, 32
    ids = _ids(cfg, batch, T, seed=0)
    d, q, kv, ff = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head, cfg.d_ff
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * ff  # linear weights of one layer
    linear = 2 * batch * T * cfg.n_layers * per_layer
    head = 2 * batch * cfg.vocab_size * d
    attention = 4 * batch * cfg.n_layers * q * T * T  # an upper bound, if it is counted at all
    flops = count_flops(prefill, w, cfg, ids)
    assert linear + head <= flops <= linear + head + attention, (
        f"prefill of {batch} x {T} tokens counted {flops:,} FLOPs; the layers need {linear:,}, "
        f"the last position's logits {head:,} (plus at most {attention:,} for attention). "
        f"Logits for all {T} positions would add {head * (T - 1):,}.")


@pytest.mark.model
@pytest.mark.points(1)
def test_real_model_prefill_and_decode():
    """Bug: anything above that only shows on the real SmolLM2-135M (30 layers, 9 query heads
    over 3 KV heads, RoPE base 100000): positions off by the cache length, a wrong layer order."""
    from course.model import load_config, load_weights

    cfg, w = load_config(), load_weights()
    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314, 11, 2512, 314, 253]])
    _check_generation(w, cfg, ids, 6, 2e-3)
