"""Lesson 10, part 1: merging two softmax states. Run: pytest exercises/lesson10"""

import math

import torch

from course.testing import assert_close
from exercises.lesson10.online_softmax import online_softmax_merge

REFERENCE = "the state of the union computed directly from its scores"


def state(scores, values):
    """(m, l, o) of one set of keys, straight from the definition; scores [..., n], values
    [..., n, d]. An empty set (n == 0) is (-inf, 0, zeros)."""
    if scores.shape[-1] == 0:
        return (torch.full(scores.shape[:-1], float("-inf")), torch.zeros(scores.shape[:-1]),
                torch.zeros(*scores.shape[:-1], values.shape[-1]))
    m = scores.amax(-1)
    p = torch.exp(scores - m[..., None])
    return m, p.sum(-1), (p[..., None] * values).sum(-2)


def random_keys(rows, n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, n, generator=g) * 3, torch.randn(rows, n, d, generator=g)


def test_worked_example_from_the_docstring():
    m, l, o = online_softmax_merge(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([[1.0]]),
                                   torch.tensor([math.log(3)]), torch.tensor([1.0]),
                                   torch.tensor([[2.0]]))
    assert math.isclose(m.item(), math.log(3), rel_tol=1e-6)
    assert math.isclose(l.item(), 1 / 3 + 1, rel_tol=1e-6)
    assert math.isclose(o.item(), 1 / 3 + 2, rel_tol=1e-6)
    assert math.isclose((o / l[..., None]).item(), 1.75, rel_tol=1e-6)


def test_merge_of_two_halves_is_the_state_of_the_whole():
    scores, values = random_keys(rows=4, n=10, d=3, seed=0)
    first, second = state(scores[:, :6], values[:, :6]), state(scores[:, 6:], values[:, 6:])
    want = state(scores, values)
    got = online_softmax_merge(*first, *second)
    for name, g, w in zip("mlo", got, want):
        assert_close(g, w, atol=1e-5, rtol=1e-5, what=f"merged {name}", reference=REFERENCE)
    attention = (torch.softmax(scores, -1)[..., None] * values).sum(-2)
    assert_close(got[2] / got[1][..., None], attention, atol=1e-5, what="o / l after the merge",
                 reference="softmax(scores) @ values")


def test_merge_is_commutative():
    scores, values = random_keys(rows=3, n=7, d=2, seed=1)
    a, b = state(scores[:, :2], values[:, :2]), state(scores[:, 2:], values[:, 2:])
    for x, y, name in zip(online_softmax_merge(*a, *b), online_softmax_merge(*b, *a), "mlo"):
        assert_close(x, y, atol=1e-6, what=f"{name} of merge(a, b)", reference="merge(b, a)")


def test_empty_states_merge_without_nan():
    scores, values = random_keys(rows=2, n=5, d=4, seed=2)
    full, empty = state(scores, values), state(scores[:, :0], values[:, :0])
    for got in (online_softmax_merge(*full, *empty), online_softmax_merge(*empty, *full)):
        for name, g, w in zip("mlo", got, full):
            assert_close(g, w, atol=1e-6, what=f"{name} after merging with an empty set",
                         reference="the non-empty state unchanged")
    m, l, o = online_softmax_merge(*empty, *empty)
    assert torch.all(m == float("-inf")), f"two empty sets must stay empty (m = -inf), got {m}"
    assert_close(l, torch.zeros(2), atol=0, what="l of two empty sets", reference="0")
    assert_close(o, torch.zeros(2, 4), atol=0, what="o of two empty sets (no NaN)",
                 reference="zeros")
