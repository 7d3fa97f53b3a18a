"""Lesson 02, part 2: the cached generation loop. Run: pytest exercises/lesson02"""

import torch

from course.config import tiny
from course.model import hf_forward_with_cache, hf_model_from_weights, random_weights
from exercises.lesson02.generation import generate


def cached_forward(model):
    """forward_fn for generate(): HF transformers' Llama with its own KV cache."""
    def forward_fn(ids, cache):
        return hf_forward_with_cache(model, ids, cache)
    return forward_fn


def greedy(logits):
    return logits.argmax(-1)


def test_cached_greedy_equals_recomputing_everything():
    cfg = tiny()
    model = hf_model_from_weights(cfg, random_weights(cfg, seed=1))
    prompt = torch.randint(0, cfg.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    got = generate(cached_forward(model), prompt, 6, greedy)
    want = prompt
    for _ in range(6):  # no cache: run the whole sequence again every step
        with torch.no_grad():
            logits = model(input_ids=want, use_cache=False).logits
        want = torch.cat([want, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert got.shape == (2, 11)
    assert torch.equal(got, want), f"cached greedy {got.tolist()} != uncached {want.tolist()}"


def plus_one_model(vocab=10):
    """A fake model: the logits at each position point at (that token + 1) % vocab."""
    def forward_fn(ids, cache):
        seen = (0 if cache is None else cache) + ids.shape[1]
        return torch.nn.functional.one_hot((ids + 1) % vocab, vocab).float(), seen
    return forward_fn


def test_the_sampler_picks_the_tokens_and_eos_id_0_stops_a_row():
    seen = []

    def skip_one(logits):  # not argmax: the model says last + 1, this picks last + 3
        seen.append(tuple(logits.shape))
        return (logits.argmax(-1) + 2) % 10

    prompt = torch.tensor([[1, 2], [3, 4]])
    out = generate(plus_one_model(), prompt, 4, skip_one, eos_id=0)
    assert seen[0] == (2, 10), f"the sampler gets the last position's [batch, vocab], got {seen[0]}"
    # row 0: 2 -> 5 -> 8 -> 1 -> 4; row 1: 4 -> 7 -> 0, then eos (token id 0) pads the row
    assert out.tolist() == [[1, 2, 5, 8, 1, 4], [3, 4, 7, 0, 0, 0]], out.tolist()
