"""Lesson 23, part 1: sliding windows, attention sinks and H2O. Run: pytest exercises/lesson23"""

import pytest
import torch
import torch.nn.functional as F

from course.testing import assert_close
from exercises.lesson23.window import (SinkCache, h2o_keep, sink_keep_indices,
                                       sliding_window_mask, window_attention)


def loop_mask(q_len, kv_len, window):
    """The definition, one pair at a time: query i sees key j when i - window < j <= i."""
    mask = torch.zeros(q_len, kv_len, dtype=torch.bool)
    for t in range(q_len):
        i = kv_len - q_len + t
        for j in range(kv_len):
            mask[t, j] = i - window < j <= i
    return mask


def test_window_mask_boundary():
    got = sliding_window_mask(1, 5, 3)
    assert got.dtype == torch.bool and got.shape == (1, 5), \
        f"expected a bool [1, 5] mask, got {got.dtype} {tuple(got.shape)}"
    assert got[0].tolist() == [False, False, True, True, True], (
        f"query 4 with window 3 must see keys 2, 3, 4 (i - window < j <= i); got "
        f"{got[0].nonzero().flatten().tolist()}")


@pytest.mark.parametrize("q_len,kv_len,window", [(4, 4, 2), (3, 7, 3), (6, 6, 10), (0, 3, 2)])
def test_window_mask_matches_definition(q_len, kv_len, window):
    got = sliding_window_mask(q_len, kv_len, window)
    want = loop_mask(q_len, kv_len, window)
    assert got.shape == want.shape, f"shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    bad = (got != want).nonzero()
    assert len(bad) == 0, f"{len(bad)} entries differ from the definition; first at {bad[0].tolist()}"


def test_window_zero_is_refused():
    with pytest.raises(ValueError):
        sliding_window_mask(2, 4, 0)


@pytest.mark.parametrize("T", [1, 3])
def test_window_attention_equals_masked_full_attention(T):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, T, 8, generator=g)
    k, v = torch.randn(2, 2, 20, 8, generator=g), torch.randn(2, 2, 20, 8, generator=g)
    got = window_attention(q, k, v, window=5)
    mask = loop_mask(T, 20, 5)
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                          attn_mask=mask)
    assert_close(got, want, atol=1e-5, what="window_attention",
                 reference="SDPA over the whole cache with the window mask")


def test_sink_cache_keeps_sinks_and_window():
    assert sink_keep_indices(10, 2, 3).tolist() == [0, 1, 7, 8, 9]
    assert sink_keep_indices(5, 2, 3).tolist() == [0, 1, 2, 3, 4], \
        "a cache of n_sink + window tokens or fewer keeps all of them"
    cache = SinkCache(n_sink=2, window=3)
    for chunk in [1, 4, 1, 6, 1]:
        ids = torch.arange(cache.seen, cache.seen + chunk, dtype=torch.float32)
        cache.append(ids.view(1, 1, chunk, 1), -ids.view(1, 1, chunk, 1))
        held = cache.k[0, 0, :, 0].long().tolist()
        want = sink_keep_indices(cache.seen, 2, 3).tolist()
        assert held == want, f"after {cache.seen} tokens the cache holds {held}, expected {want}"
        assert torch.equal(cache.v, -cache.k), "values must be kept with their keys"
    assert len(cache) == 5 and cache.seen == 13
    assert cache.positions().tolist() == [0, 1, 2, 3, 4], "positions are places in the cache"


def test_h2o_keeps_recent_and_heavy_hitters():
    scores = torch.tensor([1.0, 5.0, 5.0, 2.0, 0.0, 3.0, 9.0])
    assert h2o_keep(scores, budget=4, n_recent=1).tolist() == [1, 2, 5, 6]
    assert h2o_keep(scores, budget=4, n_recent=1, n_sink=1).tolist() == [0, 1, 2, 6]
    assert h2o_keep(scores, budget=10, n_recent=2).tolist() == list(range(7))
