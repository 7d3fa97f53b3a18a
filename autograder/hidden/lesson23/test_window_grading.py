"""Hidden grader, lesson 23: window masks, window attention, the sink cache and H2O."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.testing import assert_close
from exercises.lesson23.window import (SinkCache, h2o_keep, sink_keep_indices,
                                       sliding_window_mask, window_attention)


def loop_mask(q_len, kv_len, window):
    mask = torch.zeros(q_len, kv_len, dtype=torch.bool)
    for t in range(q_len):
        i = kv_len - q_len + t
        for j in range(max(0, i - window + 1), i + 1):
            mask[t, j] = True
    return mask


@pytest.mark.points(3)
@settings(max_examples=40)
@given(q_len=st.integers(0, 6), extra=st.integers(0, 6), window=st.integers(1, 14))
def test_mask_equals_definition(q_len, extra, window):
    """Bugs: ``j >= i - window`` (a window of window + 1 keys), ``j < i`` (a query not seeing
    itself), queries placed at the first q_len positions instead of the last, a window
    counted from the first query for every row. Includes windows of 1, windows hitting the
    start exactly, windows longer than the cache, and q_len 0."""
    kv_len = q_len + extra
    got = sliding_window_mask(q_len, kv_len, window)
    want = loop_mask(q_len, kv_len, window)
    assert got.dtype == torch.bool and got.shape == want.shape, (
        f"sliding_window_mask({q_len}, {kv_len}, {window}): expected bool {tuple(want.shape)}, "
        f"got {got.dtype} {tuple(got.shape)}")
    bad = (got != want).nonzero()
    assert len(bad) == 0, (f"sliding_window_mask({q_len}, {kv_len}, {window}): {len(bad)} entries "
                           f"wrong, first at {bad[0].tolist()} (query i sees j when i - window < j <= i)")


@pytest.mark.points(1)
def test_mask_refuses_window_zero():
    """Bug: window 0 accepted (every query sees nothing: softmax over no keys is NaN)."""
    with pytest.raises(ValueError):
        sliding_window_mask(2, 4, 0)


@pytest.mark.points(3)
@settings(max_examples=25)
@given(T=st.integers(1, 5), extra=st.integers(0, 30), window=st.integers(1, 12),
       group=st.sampled_from([1, 3]), batch=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_window_attention_equals_masked_sdpa(T, extra, window, group, batch, seed):
    """Bugs: the slice one key short (``S - window - T + 1`` keys dropped one too many), the
    mask built for the whole cache applied to the slice (or the reverse), the mask left out
    for several queries, GQA heads paired the wrong way. Oracle: SDPA over the whole cache with
    the loop-built mask, K/V expanded with repeat_interleave."""
    S = T + extra
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, 2 * group, T, 8, generator=g)
    k, v = torch.randn(batch, 2, S, 8, generator=g), torch.randn(batch, 2, S, 8, generator=g)
    got = window_attention(q, k, v, window)
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1),
                                          v.repeat_interleave(group, 1),
                                          attn_mask=loop_mask(T, S, window))
    assert_close(got, want, atol=1e-5, what=f"window_attention (T={T}, S={S}, window={window})",
                 reference="SDPA over the whole cache with the window mask")


@pytest.mark.points(2)
@pytest.mark.parametrize("T", [1, 4])
def test_window_attention_never_reads_outside_the_window(T):
    """Bug: the right numbers at the wrong cost - the whole cache masked instead of sliced,
    so a decode at 32k tokens reads 32k tokens of KV. Keys and values outside every query's
    window are NaN here: a computation that reads them (even masked: 0 x NaN is NaN)
    returns NaN."""
    g = torch.Generator().manual_seed(3)
    S, window = 64, 8
    q = torch.randn(1, 4, T, 16, generator=g)
    k, v = torch.randn(1, 2, S, 16, generator=g), torch.randn(1, 2, S, 16, generator=g)
    clean = window_attention(q, k, v, window)
    start = S - (window + T - 1)
    k[:, :, :start], v[:, :, :start] = float("nan"), float("nan")
    got = window_attention(q, k, v, window)
    assert torch.isfinite(got).all(), (
        f"{int((~torch.isfinite(got)).sum())} NaN outputs: window_attention read keys or values "
        f"before position {start}, which no query's window of {window} reaches")
    assert_close(got, clean, atol=0, what="window attention", reference="the same cache without NaN")


@pytest.mark.points(1)
def test_window_attention_keeps_bf16_and_scale():
    """Bugs: a float32 result for bf16 inputs; the ``scale`` argument ignored."""
    g = torch.Generator().manual_seed(4)
    q = torch.randn(1, 2, 2, 8, generator=g)
    k, v = torch.randn(1, 2, 10, 8, generator=g), torch.randn(1, 2, 10, 8, generator=g)
    got = window_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 3, scale=0.7)
    assert got.dtype == torch.bfloat16, f"bf16 inputs gave {got.dtype}"
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=loop_mask(2, 10, 3), scale=0.7)
    assert_close(got.float(), want, atol=3e-2, what="bf16 window attention with scale=0.7",
                 reference="float32 SDPA with the window mask and scale 0.7")


@pytest.mark.points(3)
@settings(max_examples=60)
@given(cache_len=st.integers(0, 40), n_sink=st.integers(0, 5), window=st.integers(1, 10))
def test_sink_keep_indices_definition(cache_len, n_sink, window):
    """Bugs: sinks dropped once the cache wraps, the window one short or one long
    (``cache_len - window - 1``), a position kept twice when the cache is just full, negative
    indices for a cache of 0 tokens, a float or unsorted result."""
    got = sink_keep_indices(cache_len, n_sink, window)
    if cache_len <= n_sink + window:
        want = list(range(cache_len))
    else:
        want = list(range(n_sink)) + list(range(cache_len - window, cache_len))
    assert got.dtype == torch.int64, f"indices must be int64, got {got.dtype}"
    assert got.tolist() == want, (f"sink_keep_indices({cache_len}, n_sink={n_sink}, "
                                  f"window={window}) = {got.tolist()}, expected {want}")


@pytest.mark.points(3)
@settings(max_examples=20)
@example(chunks=[1] * 7, n_sink=2, window=2, seed=0)     # one token at a time, through the wrap
@example(chunks=[2, 9, 3], n_sink=3, window=2, seed=1)   # chunks longer than the window
@given(chunks=st.lists(st.integers(1, 9), min_size=1, max_size=8), n_sink=st.integers(0, 3),
       window=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_sink_cache_over_chunks(chunks, n_sink, window, seed):
    """Bugs: sinks evicted once the window wraps (the sinks taken as the first n_sink HELD
    tokens after an eviction is fine only while they are the originals), a chunk longer than
    the window evicting the sinks, eviction before concatenation (the new chunk not counted),
    values not moved with their keys, ``seen`` not counting every token. Batch and heads
    differ so a gather on the wrong axis shows."""
    g = torch.Generator().manual_seed(seed)
    cache = SinkCache(n_sink, window)
    total = sum(chunks)
    k_all = torch.randn(2, 3, total, 4, generator=g)
    v_all = torch.randn(2, 3, total, 4, generator=g)
    seen = 0
    for t in chunks:
        cache.append(k_all[:, :, seen:seen + t], v_all[:, :, seen:seen + t])
        seen += t
        keep = list(range(seen)) if seen <= n_sink + window else \
            list(range(n_sink)) + list(range(seen - window, seen))
        assert cache.seen == seen and len(cache) == len(keep), (
            f"after chunks {chunks[:chunks.index(t) + 1]}: seen {cache.seen}, held {len(cache)}; "
            f"expected seen {seen}, held {len(keep)}")
        assert torch.equal(cache.k, k_all[:, :, keep]) and torch.equal(cache.v, v_all[:, :, keep]), (
            f"after {seen} tokens (n_sink={n_sink}, window={window}) the cache must hold "
            f"positions {keep}")
    assert cache.positions().tolist() == list(range(len(cache)))


def h2o_oracle(row, budget, n_recent, n_sink):
    S = len(row)
    if S <= budget:
        return list(range(S))
    fixed = set(range(n_sink)) | set(range(S - n_recent, S))
    rest = sorted((i for i in range(S) if i not in fixed), key=lambda i: (-row[i], i))
    return sorted(fixed | set(rest[:budget - len(fixed)]))


@pytest.mark.points(3)
@settings(max_examples=40)
@given(R=st.integers(1, 3), S=st.integers(1, 16), budget=st.integers(0, 12),
       n_recent=st.integers(0, 4), n_sink=st.integers(0, 3), seed=st.integers(0, 2**16),
       vector=st.booleans())
def test_h2o_keep_equals_definition(R, S, budget, n_recent, n_sink, seed, vector):
    """Bugs: the LOWEST scores kept, a top-k over the whole batch instead of per row, the
    recent positions counted again among the heavy hitters (fewer than budget kept), sinks
    dropped, ties broken toward the later position or unstably (scores are small integers,
    so ties are common), the result unsorted or not int64."""
    budget = max(budget, n_recent + n_sink)
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (R, S), generator=g).float() * (1 + torch.arange(R))[:, None]
    if vector:
        scores = scores[0]
    got = h2o_keep(scores, budget, n_recent, n_sink)
    rows = [scores.tolist()] if vector else scores.tolist()
    want = [h2o_oracle(r, budget, n_recent, n_sink) for r in rows]
    want = torch.tensor(want[0] if vector else want, dtype=torch.int64)
    assert got.dtype == torch.int64 and got.shape == want.shape, (
        f"h2o_keep(budget={budget}, n_recent={n_recent}, n_sink={n_sink}) on {tuple(scores.shape)}: "
        f"expected int64 {tuple(want.shape)}, got {got.dtype} {tuple(got.shape)}")
    assert torch.equal(got, want), (
        f"h2o_keep(budget={budget}, n_recent={n_recent}, n_sink={n_sink}) on scores "
        f"{scores.tolist()}: got {got.tolist()}, expected {want.tolist()} (largest scores, "
        "earlier position first on ties, per row, ascending)")


@pytest.mark.points(1)
def test_h2o_refuses_a_budget_below_the_fixed_positions():
    """Bug: a budget smaller than n_sink + n_recent accepted (a negative top-k count)."""
    with pytest.raises(ValueError):
        h2o_keep(torch.rand(10), budget=3, n_recent=2, n_sink=2)
