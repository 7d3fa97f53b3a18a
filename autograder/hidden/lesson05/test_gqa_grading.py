"""Hidden grader, lesson 05: repeat_kv and grouped-query attention, any shape, and cost.

The reference is torch's SDPA on K/V expanded with ``repeat_interleave`` and an explicit
bottom-right causal mask (query t at position S - T + t): a path independent of the code under
test. Cost is checked by counting bytes allocated (course.counting.AllocationCounter).
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

from course.counting import AllocationCounter
from course.testing import assert_close
from exercises.lesson05.grouped_attention import gqa_attention, repeat_kv

REFERENCE = "SDPA on K/V expanded with repeat_interleave (bottom-right causal mask)"


def reference(q, k, v, causal, scale=None):
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    T, S = q.shape[2], k.shape[2]
    mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T) if causal else None
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                          scale=scale).to(q.dtype)


def qkv(batch, n_heads, n_kv_heads, T, S, d_head, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    make = lambda h, n: torch.randn(batch, h, n, d_head, generator=g).to(dtype)  # noqa: E731
    return make(n_heads, T), make(n_kv_heads, S), make(n_kv_heads, S)


@pytest.mark.points(1)
@given(batch=st.integers(1, 3), n_kv=st.integers(1, 4), n_rep=st.integers(1, 5),
       tokens=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_repeat_kv_equals_repeat_interleave(batch, n_kv, n_rep, tokens, seed):
    """Bugs: tiling the heads ([a, b, a, b], torch.repeat / expand on the wrong axis) instead of
    interleaving them ([a, a, b, b]): query head h must meet KV head h // n_rep; a copy for
    ``n_rep == 1``, where the docstring promises x itself."""
    x = torch.randn(batch, n_kv, tokens, 3, generator=torch.Generator().manual_seed(seed))
    got = repeat_kv(x, n_rep)
    assert_close(got, torch.repeat_interleave(x, n_rep, dim=1), atol=0,
                 what=f"repeat_kv(n_kv={n_kv}, n_rep={n_rep})",
                 reference="torch.repeat_interleave(x, n_rep, dim=1)")
    assert repeat_kv(x, 1) is x, "repeat_kv(x, 1) must return x itself, as its docstring says"


@pytest.mark.points(4)
@example(batch=2, n_kv=2, group=1, T=2, extra=3, causal=True, seed=1, strided_q=False)
@example(batch=2, n_kv=2, group=3, T=3, extra=2, causal=True, seed=2, strided_q=False)
@example(batch=3, n_kv=1, group=2, T=2, extra=1, causal=False, seed=3, strided_q=False)
@example(batch=2, n_kv=2, group=2, T=3, extra=1, causal=True, seed=4, strided_q=True)
@given(batch=st.integers(1, 3), n_kv=st.integers(1, 4), group=st.integers(1, 4),
       T=st.integers(1, 6), extra=st.integers(0, 9), causal=st.booleans(),
       seed=st.integers(0, 2**16), strided_q=st.booleans())
def test_gqa_equals_expanded_sdpa(batch, n_kv, group, T, extra, causal, seed, strided_q):
    """Bugs: query head h reading KV head h % n_kv (groups strided instead of consecutive);
    a top-left causal mask (``is_causal=True`` with T < S: decode queries then see too few
    keys); a query that does not see its own key (mask one diagonal short); the grouped mask
    repeated row by row (``repeat_interleave``) instead of once per head, which only a chunk of
    several queries shows; MHA (group 1) or MQA (one KV head) special cases that break (an MHA
    shortcut through ``is_causal=True``); the sequences of a batch attending to each other's
    keys (only rows that differ show it); ``q.view`` that fails on the transposed view a
    projection gives (``strided_q``)."""
    q, k, v = qkv(batch, n_kv * group, n_kv, T, T + extra, 8, seed)
    if strided_q:  # same values, laid out [batch, T, n_heads, d_head] as a projection gives
        q = q.transpose(1, 2).contiguous().transpose(1, 2)
    assert_close(gqa_attention(q, k, v, causal=causal), reference(q, k, v, causal),
                 atol=2e-5, rtol=2e-5,
                 what=f"gqa_attention(heads {n_kv * group}/{n_kv}, T {T}, S {T + extra}, "
                      f"causal={causal})", reference=REFERENCE)


@pytest.mark.points(1)
def test_custom_scale_and_bfloat16():
    """Bugs: ignoring ``scale`` (always 1/sqrt(d_head)); ``scale or 1/sqrt(d_head)``, which
    takes scale 0 for the default; returning float32 for bf16 inputs;
    a softmax written as ``exp(scores) / sum`` without subtracting the row maximum, which
    overflows to inf/nan once a score passes about 88 (float32): queries 30x larger give scores
    past 100, a legal input whose attention is nearly one-hot."""
    q, k, v = qkv(2, 6, 2, 4, 11, 16, seed=3)
    big = q * 30
    assert_close(gqa_attention(big, k, v, causal=True), reference(big, k, v, True),
                 atol=1e-4, rtol=1e-4, what="gqa_attention with scores in the hundreds",
                 reference=REFERENCE)
    assert_close(gqa_attention(q, k, v, causal=True, scale=0.3),
                 reference(q, k, v, True, scale=0.3), atol=2e-5, rtol=2e-5,
                 what="gqa_attention(scale=0.3)", reference=REFERENCE)
    # scale 0 is a scale (uniform weights over the visible keys), not "use the default"
    assert_close(gqa_attention(q, k, v, causal=True, scale=0.0),
                 reference(q, k, v, True, scale=0.0), atol=2e-5, rtol=2e-5,
                 what="gqa_attention(scale=0.0)", reference=REFERENCE)
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    assert_close(gqa_attention(qb, kb, vb, causal=True), reference(qb, kb, vb, True),
                 atol=2e-2, rtol=2e-2, what="gqa_attention in bfloat16", reference=REFERENCE)


@pytest.mark.points(2)
@pytest.mark.parametrize("T,causal", [(1, False), (1, True), (4, True)],
                         ids=["decode", "decode-causal", "prefill-chunk"])
def test_never_allocates_repeated_kv(T, causal):
    """Bug: ``repeat_kv`` (or repeat_interleave, or ``expand(...).contiguous()``) on K and V
    before attention: n_heads / n_kv_heads times the KV bytes, copied every decode step. All
    the allocations together must stay below the size of ONE repeated K."""
    q, k, v = qkv(2, 16, 2, T, 128, 32, seed=5)
    expanded = 2 * 16 * 128 * 32 * 4  # [batch, n_heads, S, d_head] float32, bytes
    with AllocationCounter() as counter:
        gqa_attention(q, k, v, causal=causal)
    assert counter.total_bytes < expanded, (
        f"gqa_attention allocated {counter.total_bytes:,} B in total; one repeated K alone is "
        f"{expanded:,} B. Fold each group of query heads into the query axis instead of "
        f"repeating K/V.\n{counter.report()}")
