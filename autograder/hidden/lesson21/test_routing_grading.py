"""Hidden grader, lesson 21: the router (softmax, top-k, ties) and the load-balancing loss.

Reference: torch's float32 softmax per row, then a Python ``sorted`` of the experts by
(-probability, id): the k most probable, equal probabilities in increasing id. Independent of
the code under test. Logits are small integers (so ties are common), optionally scaled into
the hundreds (so an exp without subtracting the row maximum overflows).
"""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.testing import assert_close
from exercises.lesson21.routing import load_balance_loss, topk_route

REFERENCE = "softmax over the experts (float32), then sorted by (-probability, expert id)"


def reference_route(logits, k, renormalize):
    probs = torch.softmax(logits.float(), dim=-1)
    ids, weights = [], []
    for row in probs.tolist():
        ranked = sorted(range(len(row)), key=lambda e: (-row[e], e))[:k]
        total = sum(row[e] for e in ranked) if renormalize else 1.0
        ids.append(ranked)
        weights.append([row[e] / total for e in ranked])
    return torch.tensor(ids, dtype=torch.int64), torch.tensor(weights, dtype=torch.float32)


def check_route(logits, k, renormalize):
    ids, weights = topk_route(logits, k, renormalize)
    want_ids, want_weights = reference_route(logits, k, renormalize)
    assert isinstance(ids, torch.Tensor) and ids.dtype == torch.int64, (
        f"expert_ids must be an int64 tensor, got {getattr(ids, 'dtype', type(ids))}")
    assert ids.shape == want_ids.shape, f"expert_ids shape {tuple(ids.shape)}, expected {tuple(want_ids.shape)}"
    if not torch.equal(ids, want_ids):
        bad = (ids != want_ids).nonzero()[0].tolist()
        raise AssertionError(
            f"topk_route(k={k}, renormalize={renormalize}) chose experts {ids[bad[0]].tolist()} "
            f"for token {bad[0]} with logits {logits[bad[0]].tolist()}; expected "
            f"{want_ids[bad[0]].tolist()} (decreasing probability, ties to the lowest id)")
    assert_close(weights, want_weights, atol=1e-6, rtol=1e-5,
                 what=f"topk_route weights (k={k}, renormalize={renormalize})", reference=REFERENCE)


@pytest.mark.points(3)
@settings(max_examples=40)
@example(n_tokens=3, n_experts=4, k=2, scale=1.0, renormalize=False, seed=1)
@example(n_tokens=2, n_experts=5, k=1, scale=1.0, renormalize=False, seed=2)
@example(n_tokens=4, n_experts=3, k=3, scale=1.0, renormalize=True, seed=3)
@example(n_tokens=3, n_experts=4, k=2, scale=1.0, renormalize=True, seed=4)
@given(n_tokens=st.integers(1, 6), n_experts=st.integers(1, 6), k=st.integers(1, 6),
       scale=st.sampled_from([1.0, 0.5]), renormalize=st.booleans(), seed=st.integers(0, 2**16))
def test_topk_route_equals_sorted_reference(n_tokens, n_experts, k, scale, renormalize, seed):
    """Bugs: softmax over the top-k logits instead of before the top-k (differs without
    renormalisation); renormalisation forgotten or always applied; the softmax over the token
    axis (rows that differ expose it); k = 1 special-cased to weight 1."""
    k = min(k, n_experts)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randint(-3, 4, (n_tokens, n_experts), generator=g).float() * scale
    check_route(logits, k, renormalize)


@pytest.mark.points(2)
def test_ties_go_to_the_lowest_expert_id():
    """Bugs: ``torch.topk`` (no promise on ties; on CPU it returns the highest id first), an
    ascending sort read backwards, an unstable sort: equal probabilities must come out in
    increasing expert id."""
    logits = torch.tensor([[0.0] * 8, [1.0, 2.0, 2.0, 1.0, 2.0, 0.0, 2.0, 1.0],
                           [5.0, 5.0, 5.0, 4.0, 4.0, 4.0, 4.0, 4.0]])
    for k in (1, 2, 3, 5, 8):
        for renormalize in (True, False):
            check_route(logits, k, renormalize)


@pytest.mark.points(1)
def test_logits_in_the_hundreds_and_bf16():
    """Bugs: exp() without subtracting the row maximum (overflows to inf/inf = NaN at logits in
    the hundreds); weights returned in bf16 for bf16 logits instead of float32."""
    logits = torch.tensor([[300.0, 299.0, 0.0, -300.0], [-250.0, -251.0, -249.0, -250.0]])
    check_route(logits, 2, True)
    check_route(logits, 2, False)
    bf16 = torch.randn(5, 6, generator=torch.Generator().manual_seed(0)).bfloat16() * 4
    ids, weights = topk_route(bf16, 2)
    assert weights.dtype == torch.float32, (
        f"weights must be float32 whatever the logits' dtype; got {weights.dtype} for bf16 logits")
    check_route(bf16, 2, True)


def reference_loss(logits, ids):
    n_tokens, n_experts = logits.shape
    probs = torch.softmax(logits.double(), dim=-1)
    counts = [0] * n_experts
    for e in ids.reshape(-1).tolist():
        counts[e] += 1
    return n_experts * sum(counts[i] / ids.numel() * probs[:, i].mean().item()
                           for i in range(n_experts))


@pytest.mark.points(2)
@settings(max_examples=20)
@example(n_tokens=3, n_experts=4, k=2, seed=0)
@given(n_tokens=st.integers(1, 8), n_experts=st.integers(2, 6), k=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_load_balance_loss_equals_switch_formula(n_tokens, n_experts, k, seed):
    """Bugs: f_i divided by the number of tokens instead of tokens x k (HF's convention, k times
    larger); P_i averaged over the expert axis or softmax over the token axis; the coefficient
    n_experts forgotten."""
    k = min(k, n_experts)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_tokens, n_experts, generator=g) * 2
    ids = torch.stack([torch.randperm(n_experts, generator=g)[:k] for _ in range(n_tokens)])
    got = load_balance_loss(logits, ids)
    assert isinstance(got, torch.Tensor) and got.numel() == 1, "the loss is a scalar tensor"
    want = reference_loss(logits, ids)
    assert math.isclose(float(got), want, rel_tol=1e-5), (
        f"load_balance_loss = {float(got):.6f}, expected n_experts x sum f_i P_i = {want:.6f} "
        f"({n_tokens} tokens, {n_experts} experts, top-{k}; f_i over tokens x k assignments)")


@pytest.mark.points(1)
def test_load_balance_loss_by_hand():
    """Bug: any of the above, on the lesson's example: probabilities [0.75, 0.25] and
    [0.5, 0.5], both tokens top-1 to expert 0: 2 x (1 x 0.625 + 0 x 0.375) = 1.25; and
    perfectly even top-2 routing gives exactly 1.0."""
    got = load_balance_loss(torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]]), torch.tensor([[0], [0]]))
    assert abs(float(got) - 1.25) < 1e-6, f"expected 1.25, got {float(got)}"
    even = load_balance_loss(torch.zeros(3, 3), torch.tensor([[0, 1], [1, 2], [2, 0]]))
    assert abs(float(even) - 1.0) < 1e-6, f"even routing must give 1.0, got {float(even)}"
