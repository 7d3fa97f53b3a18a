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
    log.clear()
    assert torch.equal(generate(cached_forward(w, cfg, log), prompt, 0, greedy), prompt)
    assert log == [], f"max_new_tokens=0 needs no forward call at all; got {log}"


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
    # Token id 0 is a real id: `if eos_id:` treats it as "no eos" (special value).
    out = generate(scripted([[3, 0, 5, 6], [5, 6, 7, 8]]), prompt, 4, greedy, eos_id=0)
    assert out[:, 4:].tolist() == [[3, 0, 0, 0], [5, 6, 7, 8]], (
        f"with eos_id=0, row 0 must stop after its 0 and be padded with 0: {out.tolist()}")
    out = generate(scripted([[0, 5], [0, 6]]), prompt, 5, greedy, eos_id=0)
    assert out[:, 4:].tolist() == [[0], [0]], (
        f"with eos_id=0 and both rows emitting 0 first, generation stops at once: {out.tolist()}")


@pytest.mark.points(2)
@pytest.mark.parametrize("batch,prompt_len", [(1, 1), (3, 4)])
def test_the_sampler_chooses_every_token(batch, prompt_len):
    """Bugs: the sampler ignored (argmax taken inside the loop: every other grader samples
    greedily, so only a sampler that is not argmax exposes it), or called with the wrong
    logits: ``logits[:, -1:]`` ([batch, 1, vocab]) instead of the last position's
    ``[batch, vocab]``. Reference: the uncached loop with the same (deterministic) sampler."""
    cfg = tiny(n_layers=1)
    w = random_weights(cfg, seed=5)
    prompt = torch.randint(0, cfg.vocab_size, (batch, prompt_len),
                           generator=torch.Generator().manual_seed(3))
    seen = []

    def third_best(logits):  # deterministic and never the argmax
        seen.append(tuple(logits.shape))
        return logits.topk(3, dim=-1).indices[..., 2]

    got = generate(cached_forward(w, cfg), prompt, 4, third_best)
    assert seen == [(batch, cfg.vocab_size)] * 4, (
        f"the sampler must be called once per new token with the last position's logits "
        f"[batch, vocab] = {(batch, cfg.vocab_size)}; it saw shapes {seen}")
    want = prompt
    for _ in range(4):
        nxt = llama_forward(w, cfg, want)[:, -1].topk(3, dim=-1).indices[:, 2:3]
        want = torch.cat([want, nxt], 1)
    assert torch.equal(got, want), (f"generate with a third-best sampler gave {got.tolist()}, "
                                    f"the uncached loop with that sampler gives {want.tolist()}")


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
