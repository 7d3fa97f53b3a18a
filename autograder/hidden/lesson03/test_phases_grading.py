"""Hidden grader, lesson 03: prefill + decode steps against a full forward, and prefill's cost.

The reference is ``course.llama_reference.llama_forward`` run on the whole sequence with no
cache (an independent path: it never sees the learner's cache), on tiny seeded configs (MHA,
GQA, MQA) and, once, on the real SmolLM2-135M weights.
"""

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.config import tiny
from course.counting import count_flops
from course.llama_reference import llama_forward
from course.model import random_weights
from course.testing import assert_close
from exercises.lesson03.phases import decode_step, prefill, run_layers

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


@pytest.mark.points(2)
@pytest.mark.parametrize("batch,prompt_len,chunk", [(1, 1, 4), (3, 5, 3)])
def test_a_chunk_of_new_tokens_and_the_cache_contents(batch, prompt_len, chunk):
    """Bugs (several new tokens at once): the new K/V placed BEFORE the cached ones. One decode
    token sees every key, so the order of keys is invisible to it; a chunk of several new
    tokens (causal among themselves) and the cache's own contents are not. Also a batch of
    one (``hidden.squeeze()`` drops the batch axis), and the final RMSNorm with a hard-coded
    eps instead of ``cfg.rms_eps`` (this config's eps is 0.05).
    Reference: the course's reference forward with its own cache over the whole sequence."""
    cfg = dataclasses.replace(tiny(n_heads=4, n_kv_heads=2), rms_eps=0.05)
    w = random_weights(cfg, seed=prompt_len)
    ids = _ids(cfg, batch, prompt_len + chunk + 2, seed=chunk)
    want_cache = []
    full = llama_forward(w, cfg, ids, want_cache)
    logits, cache = prefill(w, cfg, ids[:, :prompt_len])
    assert logits.shape == (batch, cfg.vocab_size), (
        f"prefill of a batch of {batch} returned logits of shape {tuple(logits.shape)}, "
        f"expected {(batch, cfg.vocab_size)}")
    end = prompt_len + chunk
    hidden, cache = run_layers(w, cfg, ids[:, prompt_len:end], cache)
    assert_close(hidden @ w["lm_head.weight"].T, full[:, prompt_len:end], atol=2e-4, rtol=2e-4,
                 what=f"run_layers over a chunk of {chunk} new tokens after {prompt_len} cached",
                 reference=REFERENCE)
    for t in (end, end + 1):
        logits, cache = decode_step(w, cfg, ids[:, t], cache)
        assert_close(logits, full[:, t], atol=2e-4, rtol=2e-4,
                     what=f"decode step at position {t} after a chunk", reference=REFERENCE)
    for i, ((k, v), (k0, v0)) in enumerate(zip(cache, want_cache)):
        assert_close(k, k0, atol=1e-5, rtol=1e-5, what=f"layer {i}'s cached keys (token t at index t)",
                     reference="the reference forward's cache of the whole sequence")
        assert_close(v, v0, atol=1e-5, rtol=1e-5, what=f"layer {i}'s cached values",
                     reference="the reference forward's cache of the whole sequence")


@pytest.mark.points(1)
def test_new_tensors_are_made_on_the_inputs_device():
    """Bug (devices): positions built with ``torch.arange(S, S + T)`` and no ``device=``: a
    CPU tensor meets GPU activations and the first CUDA run fails. Checked without a GPU on
    PyTorch's meta device (shapes only): any tensor made on the CPU collides with it."""
    cfg = tiny()
    w = {k: v.to("meta") for k, v in random_weights(cfg, seed=0).items()}
    ids = torch.zeros(2, 5, dtype=torch.int64, device="meta")
    try:
        logits, cache = prefill(w, cfg, ids)
        logits, cache = decode_step(w, cfg, ids[:, 0], cache)
    except RuntimeError as err:
        if "device" not in str(err):
            raise
        raise AssertionError(f"prefill/decode_step mixed devices ({err}); make every new "
                             "tensor on input_ids.device, e.g. torch.arange(..., "
                             "device=input_ids.device)") from None
    assert logits.device.type == "meta" and cache[0][0].device.type == "meta"
    assert logits.shape == (2, cfg.vocab_size) and cache[0][0].shape[2] == 6
