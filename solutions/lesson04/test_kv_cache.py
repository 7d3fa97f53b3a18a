"""Lesson 04, part 2: a preallocated cache, and generation on it. Run: pytest exercises/lesson04"""

import torch

from course.config import tiny
from course.model import hf_model_from_weights, random_weights
from exercises.lesson04.decode import generate_greedy
from exercises.lesson04.kv_cache import KVCache


def test_append_then_get_returns_what_was_written():
    cache = KVCache(n_layers=2, max_batch=2, max_seq=10, n_kv_heads=3, d_head=4)
    k1, v1 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    k2, v2 = torch.randn(2, 3, 1, 4), torch.randn(2, 3, 1, 4)
    assert cache.append(1, k1, v1).tolist() == [0, 1, 2, 3]
    assert cache.append(1, k2, v2).tolist() == [4]
    k, v = cache.get(1)
    assert torch.equal(k, torch.cat([k1, k2], dim=2)) and torch.equal(v, torch.cat([v1, v2], dim=2))
    assert cache.length(1) == 5 and cache.length(0) == 0


def test_a_bfloat16_model_gives_bfloat16_logits():
    from exercises.lesson04.decode import forward_cached

    cfg = tiny()
    w = random_weights(cfg, seed=0, dtype=torch.bfloat16)
    ids = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(1))
    cache = KVCache(cfg.n_layers, 2, 8, cfg.n_kv_heads, cfg.d_head, dtype=torch.bfloat16)
    forward_cached(w, cfg, ids[:, :4], cache)
    logits = forward_cached(w, cfg, ids[:, 4:], cache)  # a chunk of 2 after 4 cached tokens
    assert logits.shape == (2, cfg.vocab_size) and logits.dtype == torch.bfloat16
    assert torch.isfinite(logits).all() and cache.length(0) == 6


def test_append_writes_in_place():
    cache = KVCache(n_layers=1, max_batch=1, max_seq=64, n_kv_heads=2, d_head=8)
    ptr = cache.k_buffer.data_ptr()
    for _ in range(10):
        cache.append(0, torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8))
    assert cache.k_buffer.data_ptr() == ptr, "append must write into the preallocated buffer"
    assert cache.get(0)[0].data_ptr() == ptr, "get must return a view of the buffer, not a copy"


def test_generate_greedy_matches_the_reference():
    cfg = tiny()
    w = random_weights(cfg, seed=0)
    ids = torch.randint(0, cfg.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    cache = KVCache(cfg.n_layers, 2, 32, cfg.n_kv_heads, cfg.d_head)
    got = generate_greedy(w, cfg, ids, 5, cache)
    model, want = hf_model_from_weights(cfg, w), ids
    for _ in range(5):  # the independent oracle, no cache: the whole sequence every step
        with torch.no_grad():
            logits = model(input_ids=want, use_cache=False).logits
        want = torch.cat([want, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(got, want), f"generated {got.tolist()}, expected {want.tolist()}"
    assert cache.length(0) == 7 + 4, "prompt + max_new - 1 tokens pass through the cache"
