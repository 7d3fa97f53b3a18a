"""Lesson 03, part 1: prefill and decode steps. Run: pytest exercises/lesson03"""

import torch

from course.config import tiny
from course.model import hf_model_from_weights, random_weights
from course.testing import assert_close
from exercises.lesson03.phases import decode_step, prefill, run_layers

REFERENCE = "a full forward of the whole sequence (HF transformers' LlamaForCausalLM)"


@torch.no_grad()
def llama_forward(weights, cfg, ids):
    """Logits [B, T, vocab] of the whole sequence, no cache: the independent oracle."""
    return hf_model_from_weights(cfg, weights)(input_ids=ids, use_cache=False).logits


def test_run_layers_returns_hidden_and_a_full_cache():
    cfg = tiny()
    w = random_weights(cfg, seed=0)
    ids = torch.randint(0, cfg.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    hidden, cache = run_layers(w, cfg, ids, [])
    assert hidden.shape == (2, 5, cfg.d_model)
    assert len(cache) == cfg.n_layers
    assert cache[0][0].shape == (2, cfg.n_kv_heads, 5, cfg.d_head)


def test_prefill_logits_are_the_last_position_of_a_full_forward():
    cfg = tiny()
    w = random_weights(cfg, seed=1)
    ids = torch.randint(0, cfg.vocab_size, (2, 7), generator=torch.Generator().manual_seed(1))
    logits, cache = prefill(w, cfg, ids)
    assert_close(logits, llama_forward(w, cfg, ids)[:, -1], atol=1e-4, rtol=1e-4,
                 what="prefill logits", reference=REFERENCE)
    assert cache[0][1].shape == (2, cfg.n_kv_heads, 7, cfg.d_head)


def test_decode_steps_agree_with_a_full_forward():
    cfg = tiny()
    w = random_weights(cfg, seed=2)
    ids = torch.randint(0, cfg.vocab_size, (2, 9), generator=torch.Generator().manual_seed(2))
    full = llama_forward(w, cfg, ids)
    logits, cache = prefill(w, cfg, ids[:, :6])
    for t in range(6, 9):
        logits, cache = decode_step(w, cfg, ids[:, t], cache)
        assert_close(logits, full[:, t], atol=1e-4, rtol=1e-4,
                     what=f"decode step logits at position {t}", reference=REFERENCE)
    assert cache[-1][0].shape[2] == 9, "each decode step must add one token to every layer"


def test_a_chunk_of_tokens_after_a_prefill_continues_the_sequence():
    # Several new tokens at once (causal among themselves) see the order of the keys, which a
    # single decode token cannot: the cached keys come first, the new ones after them.
    cfg = tiny()
    w = random_weights(cfg, seed=3)
    ids = torch.randint(0, cfg.vocab_size, (2, 7), generator=torch.Generator().manual_seed(3))
    whole, whole_cache = run_layers(w, cfg, ids, [])
    _, cache = prefill(w, cfg, ids[:, :4])
    hidden, cache = run_layers(w, cfg, ids[:, 4:], cache)
    assert_close(hidden, whole[:, 4:], atol=1e-5, rtol=1e-5,
                 what="hidden states of 3 tokens run after a 4-token prefill",
                 reference="the same 7 tokens run in one call")
    for i, ((k, v), (k0, v0)) in enumerate(zip(cache, whole_cache)):
        assert_close(k, k0, atol=1e-5, rtol=1e-5, what=f"layer {i}'s keys after the chunk",
                     reference="the keys of the 7 tokens run in one call")
        assert_close(v, v0, atol=1e-5, rtol=1e-5, what=f"layer {i}'s values after the chunk",
                     reference="the values of the 7 tokens run in one call")


def test_a_batch_of_one_keeps_its_batch_axis():
    cfg = tiny()
    w = random_weights(cfg, seed=4)
    logits, cache = prefill(w, cfg, torch.tensor([[5]]))
    assert logits.shape == (1, cfg.vocab_size), f"prefill logits {tuple(logits.shape)}"
    logits, cache = decode_step(w, cfg, torch.tensor([7]), cache)
    assert logits.shape == (1, cfg.vocab_size), f"decode_step logits {tuple(logits.shape)}"
    assert cache[0][0].shape == (1, cfg.n_kv_heads, 2, cfg.d_head)


def test_new_tensors_are_made_on_the_inputs_device():
    # The meta device holds shapes only and refuses to mix with CPU tensors: a stand-in for
    # a GPU. torch.arange(S, S + T) without device= fails here as it would on CUDA.
    cfg = tiny()
    w = {k: v.to("meta") for k, v in random_weights(cfg, seed=0).items()}
    ids = torch.zeros(2, 5, dtype=torch.int64, device="meta")
    logits, cache = prefill(w, cfg, ids)
    logits, cache = decode_step(w, cfg, ids[:, 0], cache)
    assert logits.device.type == "meta" and cache[0][0].shape[2] == 6
