"""Hidden grader, lesson 10: the online-softmax merge.

The oracle is the softmax state computed from its definition over the scores of the union
(``m = max s``, ``l = sum exp(s - m)``, ``o = sum exp(s - m) v``), independent of the merge.
Key sets are disjoint pieces of one random row of scores; any piece may be empty.
"""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.testing import assert_close
from exercises.lesson10.online_softmax import online_softmax_merge

REFERENCE = "the softmax state of the union, from its definition"
OFFSETS = st.sampled_from([0.0, 0.0, 500.0, -500.0, 3000.0, -3000.0])


def state(scores, values):
    """(m, l, o) from the definition; scores [rows, n], values [rows, n, d]; n may be 0."""
    rows, d = scores.shape[0], values.shape[-1]
    if scores.shape[-1] == 0:
        return torch.full((rows,), float("-inf")), torch.zeros(rows), torch.zeros(rows, d)
    m = scores.amax(-1)
    p = torch.exp(scores - m[:, None])
    return m, p.sum(-1), (p[..., None] * values).sum(-2)


def keys(rows, n, d, offsets, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, n, generator=g) * 4 + torch.tensor(offsets)[:, None]
    return scores, torch.randn(rows, n, d, generator=g)


def check_state(got, want, what):
    assert isinstance(got, tuple) and len(got) == 3, f"{what}: expected a tuple (m, l, o)"
    for name, g, w in zip(("m", "l", "o"), got, want):
        assert_close(g, w, atol=1e-5, rtol=1e-5, what=f"{name} of {what}", reference=REFERENCE)


@pytest.mark.points(3)
@settings(max_examples=40)
@example(rows=2, n=6, d=2, cut=3, offsets=[3000.0, -3000.0], seed=0)
@example(rows=1, n=4, d=1, cut=0, offsets=[0.0], seed=1)
@example(rows=1, n=4, d=1, cut=4, offsets=[-500.0], seed=2)
@example(rows=2, n=0, d=2, cut=0, offsets=[0.0, 0.0], seed=3)
@given(rows=st.integers(1, 4), n=st.integers(0, 9), d=st.integers(1, 4), cut=st.integers(0, 9),
       offsets=st.lists(OFFSETS, min_size=4, max_size=4), seed=st.integers(0, 2**16))
def test_merge_is_the_state_of_the_union(rows, n, d, cut, offsets, seed):
    """Bugs: rescaling by ``exp(m - m1)`` instead of ``exp(m1 - m)``; ``o`` not rescaled (only
    ``l``); one maximum for all rows (``m.max()``), which underflows rows thousands below it;
    NaN from ``exp(-inf - (-inf))`` when both sets are empty (``n == 0``) or one is."""
    cut = min(cut, n)
    scores, values = keys(rows, n, d, offsets[:rows], seed)
    first, second = state(scores[:, :cut], values[:, :cut]), state(scores[:, cut:], values[:, cut:])
    check_state(online_softmax_merge(*first, *second), state(scores, values),
                f"online_softmax_merge of keys [0, {cut}) and [{cut}, {n}) over {rows} rows")


@pytest.mark.points(2)
@settings(max_examples=40)
@example(rows=2, n=5, cuts=(0, 0), offsets=[3000.0, 0.0], seed=0)
@example(rows=1, n=3, cuts=(3, 3), offsets=[0.0], seed=1)
@given(rows=st.integers(1, 3), n=st.integers(0, 8),
       cuts=st.tuples(st.integers(0, 8), st.integers(0, 8)),
       offsets=st.lists(OFFSETS, min_size=3, max_size=3), seed=st.integers(0, 2**16))
def test_merge_is_associative_and_commutative(rows, n, cuts, offsets, seed):
    """Bugs: any of the above, seen through a different grouping or order of three states
    (some of them empty): keys may be visited in any order and merged in any tree."""
    a_end, b_end = sorted(min(c, n) for c in cuts)
    scores, values = keys(rows, n, 3, offsets[:rows], seed)
    a = state(scores[:, :a_end], values[:, :a_end])
    b = state(scores[:, a_end:b_end], values[:, a_end:b_end])
    c = state(scores[:, b_end:], values[:, b_end:])
    want = state(scores, values)
    check_state(online_softmax_merge(*online_softmax_merge(*a, *b), *c), want, "(a + b) + c")
    check_state(online_softmax_merge(*a, *online_softmax_merge(*b, *c)), want, "a + (b + c)")
    check_state(online_softmax_merge(*online_softmax_merge(*c, *a), *b), want, "(c + a) + b")
    ab, ba = online_softmax_merge(*a, *b), online_softmax_merge(*b, *a)
    for name, x, y in zip(("m", "l", "o"), ab, ba):
        assert_close(x, y, atol=1e-6, rtol=1e-6, what=f"{name} of merge(a, b)",
                     reference="merge(b, a)")


@pytest.mark.points(1)
def test_merge_leaves_its_inputs_unchanged():
    """Bug: rescaling ``l1``/``o1`` (or the second state) in place (``o1.mul_(...)``): the
    caller's states change, and a state merged twice (a tree of merges, a retry) is wrong."""
    scores, values = keys(3, 8, 4, [0.0, 500.0, -500.0], seed=7)
    first, second = state(scores[:, :5], values[:, :5]), state(scores[:, 5:], values[:, 5:])
    copies = [t.clone() for t in (*first, *second)]
    online_softmax_merge(*first, *second)
    for name, before, after in zip(("m1", "l1", "o1", "m2", "l2", "o2"), copies,
                                   (*first, *second)):
        assert torch.equal(before, after), (
            f"online_softmax_merge changed its input {name}; the docstring promises the inputs "
            "are left unchanged (no in-place ops on them)")
