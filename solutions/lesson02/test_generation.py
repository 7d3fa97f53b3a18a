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
