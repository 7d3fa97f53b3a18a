"""Lesson 02, part 2: the cached generation loop. Run: pytest exercises/lesson02"""

import torch

from course.config import tiny
from course.llama_reference import llama_forward
from course.model import random_weights
from exercises.lesson02.generation import generate


def cached_forward(weights, cfg):
    """forward_fn for generate(): course.llama_reference with its list-of-(k, v) cache."""
    def forward_fn(ids, cache):
        cache = [] if cache is None else cache
        return llama_forward(weights, cfg, ids, cache), cache
    return forward_fn


def greedy(logits):
    return logits.argmax(-1)


def test_cached_greedy_equals_recomputing_everything():
    cfg = tiny()
    w = random_weights(cfg, seed=1)
    prompt = torch.randint(0, cfg.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    got = generate(cached_forward(w, cfg), prompt, 6, greedy)
    want = prompt
    for _ in range(6):  # no cache: run the whole sequence again every step
        want = torch.cat([want, llama_forward(w, cfg, want)[:, -1].argmax(-1, keepdim=True)], 1)
    assert got.shape == (2, 11)
    assert torch.equal(got, want), f"cached greedy {got.tolist()} != uncached {want.tolist()}"
