"""Hidden grader, lesson 02: the cached generation loop.

References: the course's reference Llama run on the whole sequence at every step (no cache),
scripted fake models whose next token is known, and HF transformers' generate() on the real
SmolLM2-135M. The cost check records what the loop feeds to forward_fn.
"""

import pytest
import torch

from course.config import tiny
from course.llama_reference import llama_forward
from course.model import random_weights
from exercises.lesson02.generation import generate


def cached_forward(weights, cfg, log=None):
    def forward_fn(ids, cache):
        if log is not None:
            log.append((tuple(ids.shape), cache is not None))
        cache = [] if cache is None else cache
        return llama_forward(weights, cfg, ids, cache), cache
    return forward_fn


def greedy(logits):
    return logits.argmax(-1)


def uncached_greedy(weights, cfg, ids, n):
    for _ in range(n):
        ids = torch.cat([ids, llama_forward(weights, cfg, ids)[:, -1].argmax(-1, keepdim=True)], 1)
    return ids


@pytest.mark.points(2)
@pytest.mark.parametrize("batch,prompt_len,n", [(1, 1, 4), (3, 5, 6), (2, 4, 1)])
def test_cached_greedy_equals_uncached(batch, prompt_len, n):
    """Bugs: sampling from the logits of the first position instead of the last, feeding
    the previous token again, dropping the first sampled token, an off-by-one in the count."""
    cfg = tiny(n_layers=2)
    w = random_weights(cfg, seed=batch)
    prompt = torch.randint(0, cfg.vocab_size, (batch, prompt_len),
                           generator=torch.Generator().manual_seed(prompt_len))
    got = generate(cached_forward(w, cfg), prompt, n, greedy)
    want = uncached_greedy(w, cfg, prompt, n)
    assert torch.equal(got, want), (f"generate (cached) gave {got.tolist()}, the uncached "
                                    f"greedy loop gives {want.tolist()}")


@pytest.mark.points(2)
def test_each_decode_step_feeds_exactly_one_token():
    """Bug: the cache ignored - the whole sequence re-fed every step (quadratic work), or a
    fresh cache each step; also an extra forward call for logits nobody samples."""
    cfg = tiny(n_layers=1)
    w = random_weights(cfg)
    log = []
    prompt = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(0))
    generate(cached_forward(w, cfg, log), prompt, 5, greedy)
    want = [((2, 6), False)] + [((2, 1), True)] * 4
    assert log == want, (
        "forward_fn calls as (input shape, was a cache passed): expected the prompt once, then "
        f"one token per step with the cache, {len(want)} calls: {want}; got {log}")


def scripted(script, vocab=16):
    """A fake model: after seeing t tokens, row b's logits point at script[b][t - T0]."""
    def forward_fn(ids, cache):
        seen = (0 if cache is None else cache) + ids.shape[1]
        logits = torch.zeros(ids.shape[0], ids.shape[1], vocab)
        for b, row in enumerate(script):
            logits[b, -1, row[min(seen - 4, len(row) - 1)]] = 10.0
            logits[b, :-1, 0] = 20.0  # earlier positions point elsewhere
        return logits, seen
    return forward_fn


@pytest.mark.points(2)
def test_eos_stops_each_row_and_pads_with_eos():
    """Bugs: ignoring eos_id, stopping the whole batch when the first row ends, tokens after a
    row's eos that are not eos, the loop running on after every row finished."""
    prompt = torch.ones(2, 4, dtype=torch.int64)
    eos = 9
    out = generate(scripted([[3, 4, eos, 5, 6, 7], [5, 6, 7, 8, eos, 2]]), prompt, 10, greedy, eos)
    assert out[:, 4:].tolist() == [[3, 4, eos, eos, eos], [5, 6, 7, 8, eos]], out.tolist()
    out = generate(scripted([[3, 4, 5]]), prompt[:1], 3, greedy, eos_id=eos)
    assert out[:, 4:].tolist() == [[3, 4, 5]]
    assert generate(scripted([[3]]), prompt[:1], 0, greedy).tolist() == prompt[:1].tolist()


@pytest.mark.model
@pytest.mark.points(3)
def test_greedy_matches_hf_generate_on_the_real_model():
    """The real model: greedy tokens from generate() over the course's reference forward must
    equal HF transformers' generate(do_sample=False) for two prompts. Bugs: sampling from the
    wrong position's logits or re-feeding tokens the cache holds, at real scale."""
    from course.model import load_config, load_hf_model, load_tokenizer, load_weights

    cfg, weights, hf, tok = load_config(), load_weights(), load_hf_model(), load_tokenizer()
    for text in ["The capital of France is", "def fibonacci(n):"]:
        ids = torch.tensor([tok.encode(text)])
        with torch.no_grad():
            want = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                               do_sample=False, eos_token_id=None, pad_token_id=0)
            got = generate(cached_forward(weights, cfg), ids, 6, greedy)
        assert torch.equal(got, want), (
            f"prompt {text!r}: generate gave {tok.decode(got[0, ids.shape[1]:])!r} "
            f"{got[0].tolist()}, HF gives {tok.decode(want[0, ids.shape[1]:])!r} {want[0].tolist()}")
