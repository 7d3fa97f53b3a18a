"""Hidden grader, lesson 21: capacity, dispatch, combine and the whole MoE layer.

References, written here independently of the code under test: a Python loop over the
assignments in priority order (every token's first choice in token order, then every second
choice, ...) with a counter per expert, for dispatch and combine; and for the layer, that loop
followed by a loop over experts (gather the expert's kept tokens, SwiGLU in float32, add
weight x output). Cost is checked by counting torch ops (course.counting.count_ops), never by
timing.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.counting import count_ops
from course.testing import assert_close
from exercises.lesson21.dispatch import combine, dispatch, expert_capacity, moe_layer

PRIORITY = "first choices of all tokens in token order, then second choices, ..."


def reference_slots(expert_ids, n_experts, capacity):
    n_tokens, k = expert_ids.shape
    slots = [[-1] * k for _ in range(n_tokens)]
    served = [0] * n_experts
    for j in range(k):
        for t in range(n_tokens):
            e = int(expert_ids[t, j])
            if capacity is None or served[e] < capacity:
                slots[t][j] = served[e]
                served[e] += 1
    return torch.tensor(slots, dtype=torch.int64).view(n_tokens, k)


def random_ids(n_tokens, n_experts, k, g):
    rows = [torch.randperm(n_experts, generator=g)[:k] for _ in range(n_tokens)]
    return torch.stack(rows) if rows else torch.zeros(0, k, dtype=torch.int64)


@pytest.mark.points(2)
@pytest.mark.parametrize("n_tokens,n_experts,k,factor,want", [
    (8, 4, 2, 1.25, 5), (6, 4, 1, 1.0, 2), (7, 4, 1, 1.0, 2), (9, 4, 2, 1.0, 5),
    (45, 3, 2, 1.1, 33), (90, 3, 1, 0.7, 21), (10, 2, 2, 4.0, 10), (1, 8, 1, 1.0, 1),
    (0, 4, 2, 1.0, 0), (7, 4, 2, None, 7), (4, 3, 2, 0.75, 2)])
def test_expert_capacity(n_tokens, n_experts, k, factor, want):
    """Bugs: floor (or round) instead of ceil; ceil of a float product that is a whole number
    plus rounding noise (1.1 x 45 x 2 / 3 = 33.00000000000001 gives 34); no cap at n_tokens;
    None not treated as unbounded; k left out of the product."""
    got = expert_capacity(n_tokens, n_experts, k, factor)
    assert got == want and isinstance(got, int), (
        f"expert_capacity({n_tokens} tokens, {n_experts} experts, k={k}, factor={factor}) = "
        f"{got!r}, expected {want}: ceil(factor x tokens x k / experts), at most tokens")


def check_dispatch(x, ids, n_experts, capacity):
    buffers, slots, dropped = dispatch(x, ids, n_experts, capacity)
    want_slots = reference_slots(ids, n_experts, capacity)
    assert tuple(buffers.shape) == (n_experts, capacity, x.shape[1]) and buffers.dtype == x.dtype, (
        f"buffers: shape {tuple(buffers.shape)} {buffers.dtype}, expected "
        f"{(n_experts, capacity, x.shape[1])} {x.dtype}")
    assert slots.dtype == torch.int64 and slots.shape == want_slots.shape
    if not torch.equal(slots, want_slots):
        bad = (slots != want_slots).nonzero()[0].tolist()
        raise AssertionError(
            f"dispatch with capacity {capacity}: {int((slots != want_slots).sum())} of "
            f"{slots.numel()} slots wrong; first at token {bad[0]}, choice {bad[1]} (expert "
            f"{int(ids[bad[0], bad[1]])}): got {int(slots[bad[0], bad[1]])}, expected "
            f"{int(want_slots[bad[0], bad[1]])} (-1 = dropped). Priority: {PRIORITY}.\n"
            f"expert_ids {ids.tolist()}")
    assert dropped.dtype == torch.bool and torch.equal(dropped, want_slots == -1), (
        f"dropped must be the bool mask slots == -1; got {dropped.tolist()}")
    want = torch.zeros(n_experts, capacity, x.shape[1], dtype=x.dtype)
    for t, j in (want_slots >= 0).nonzero().tolist():
        want[ids[t, j], want_slots[t, j]] = x[t]
    assert_close(buffers, want, atol=0, what=f"dispatch buffers (capacity {capacity})",
                 reference=f"each kept token copied to its expert's row, unused rows zero")
    return slots


@pytest.mark.points(4)
@settings(max_examples=40)
@example(n_tokens=4, n_experts=3, k=2, capacity=2, seed=0)
@example(n_tokens=0, n_experts=3, k=2, capacity=0, seed=0)
@example(n_tokens=5, n_experts=1, k=1, capacity=3, seed=0)
@example(n_tokens=6, n_experts=4, k=2, capacity=0, seed=1)
@given(n_tokens=st.integers(0, 12), n_experts=st.integers(1, 5), k=st.integers(1, 3),
       capacity=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_dispatch_equals_priority_loop(n_tokens, n_experts, k, capacity, seed):
    """Bugs: second choices served before (or interleaved with) first choices; tokens in
    reverse order; an expert allowed capacity + 1 rows (> instead of >=) or capacity - 1;
    dropped marked by something other than -1; zero tokens or capacity 0 crashing."""
    k, capacity = min(k, n_experts), min(capacity, n_tokens)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_tokens, 3, generator=g)
    check_dispatch(x, random_ids(n_tokens, n_experts, k, g), n_experts, capacity)


@pytest.mark.points(1)
def test_dispatch_worked_example_of_the_lesson():
    """Bug: token-order priority (token 0's two choices, then token 1's, ...): in the lesson's
    table token 1's second choice would take expert 0's last row and token 2's first choice
    would be dropped."""
    x = torch.arange(1.0, 5.0)[:, None].repeat(1, 2)
    ids = torch.tensor([[0, 1], [1, 0], [0, 2], [0, 1]])
    slots = check_dispatch(x, ids, 3, 2)
    assert slots.tolist() == [[0, 1], [0, -1], [1, 0], [-1, -1]]


def reference_combine(expert_out, ids, slots, weights):
    out = torch.zeros(ids.shape[0], expert_out.shape[2], dtype=torch.float64)
    for t, j in (slots >= 0).nonzero().tolist():
        out[t] += float(weights[t, j]) * expert_out[ids[t, j], slots[t, j]].double()
    return out


@pytest.mark.points(3)
@settings(max_examples=25)
@example(n_tokens=4, n_experts=3, k=2, capacity=1, seed=0)
@example(n_tokens=3, n_experts=2, k=1, capacity=0, seed=1)
@given(n_tokens=st.integers(1, 10), n_experts=st.integers(1, 4), k=st.integers(1, 3),
       capacity=st.integers(0, 10), seed=st.integers(0, 2**16))
def test_combine_equals_weighted_sum_of_kept_rows(n_tokens, n_experts, k, capacity, seed):
    """Bugs: weights ignored (a plain sum or mean of the rows); dropped assignments read from
    row -1 (the last row) instead of adding nothing; row 0 treated as dropped (``slots > 0`` or
    ``slots.bool()``); weights of dropped choices given to the kept ones; capacity 0 (nothing
    to gather) crashing."""
    k, capacity = min(k, n_experts), min(capacity, n_tokens)
    g = torch.Generator().manual_seed(seed)
    ids = random_ids(n_tokens, n_experts, k, g)
    slots = reference_slots(ids, n_experts, capacity)
    expert_out = torch.randn(n_experts, capacity, 5, generator=g)
    weights = torch.rand(n_tokens, k, generator=g)
    got = combine(expert_out, ids, slots, weights)
    want = reference_combine(expert_out, ids, slots, weights).float()
    assert_close(got, want, atol=1e-5, rtol=1e-5, what=f"combine (capacity {capacity})",
                 reference="sum over kept (t, j) of weight x expert row; dropped add nothing")


@pytest.mark.points(1)
def test_combine_keeps_bf16():
    """Bug: combine returns float32 (its float32 accumulator) for bf16 expert outputs."""
    g = torch.Generator().manual_seed(3)
    ids = torch.tensor([[0, 1], [1, 0]])
    slots = torch.tensor([[0, 0], [1, -1]])
    expert_out = torch.randn(2, 2, 4, generator=g).bfloat16()
    weights = torch.tensor([[0.6, 0.4], [0.7, 0.3]])
    got = combine(expert_out, ids, slots, weights)
    assert_close(got, reference_combine(expert_out, ids, slots, weights).bfloat16(), atol=2e-2,
                 rtol=2e-2, what="combine in bf16", reference="the float64 weighted sum, in bf16")


def reference_layer(x, router_w, w_gate, w_up, w_down, k, capacity, renormalize):
    """Route per row with sorted, drop in priority order, then loop over experts."""
    n_tokens, n_experts = x.shape[0], router_w.shape[0]
    probs = torch.softmax(x.float() @ router_w.float().T, dim=-1).tolist()
    ids, weights = [], []
    for row in probs:
        ranked = sorted(range(n_experts), key=lambda e: (-row[e], e))[:k]
        total = sum(row[e] for e in ranked) if renormalize else 1.0
        ids.append(ranked)
        weights.append([row[e] / total for e in ranked])
    ids, weights = torch.tensor(ids).view(n_tokens, k), torch.tensor(weights, dtype=torch.float64)
    slots = reference_slots(ids, n_experts, capacity)
    out = torch.zeros(n_tokens, x.shape[1], dtype=torch.float64)
    for e in range(n_experts):
        t, j = ((ids == e) & (slots >= 0)).nonzero(as_tuple=True)
        h = x[t].double()
        y = (F.silu(h @ w_gate[e].double().T) * (h @ w_up[e].double().T)) @ w_down[e].double().T
        out.index_add_(0, t, weights[t, j, None] * y)
    return out.to(x.dtype)


def make_layer(n_tokens, d_model, n_experts, d_ff, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=g) / s[-1] ** 0.5).to(dtype)  # noqa: E731
    return ((torch.randn(n_tokens, d_model, generator=g)).to(dtype), r(n_experts, d_model) * 3,
            r(n_experts, d_ff, d_model), r(n_experts, d_ff, d_model), r(n_experts, d_model, d_ff))


@pytest.mark.points(4)
@settings(max_examples=12)
@example(n_tokens=16, n_experts=4, k=2, factor=0.5, renormalize=True, seed=0)
@example(n_tokens=9, n_experts=3, k=1, factor=None, renormalize=False, seed=1)
@example(n_tokens=12, n_experts=4, k=2, factor=1.0, renormalize=False, seed=2)
@given(n_tokens=st.integers(1, 16), n_experts=st.integers(1, 5), k=st.integers(1, 3),
       factor=st.sampled_from([None, 0.5, 1.0, 1.25]), renormalize=st.booleans(),
       seed=st.integers(0, 2**16))
def test_moe_layer_equals_loop_over_experts(n_tokens, n_experts, k, factor, renormalize, seed):
    """Bugs: capacity_factor or renormalize not passed on; the experts' SwiGLU with gate and up
    swapped or w_down not transposed; combine weights dropped; drops not applied."""
    k = min(k, n_experts)
    x, router_w, w_gate, w_up, w_down = make_layer(n_tokens, 6, n_experts, 10, seed)
    capacity = expert_capacity(n_tokens, n_experts, k, factor)
    got = moe_layer(x, router_w, w_gate, w_up, w_down, k, factor, renormalize)
    want = reference_layer(x, router_w, w_gate, w_up, w_down, k, capacity, renormalize)
    assert_close(got, want, atol=1e-5, rtol=1e-4,
                 what=f"moe_layer(k={k}, capacity_factor={factor}, renormalize={renormalize})",
                 reference=f"a loop over experts with the drops of capacity {capacity}")


@pytest.mark.points(1)
def test_moe_layer_bf16_in_bf16_out():
    """Bug: a float32 result (or float32 buffers and matmuls) for bf16 activations and weights."""
    x, router_w, w_gate, w_up, w_down = make_layer(12, 8, 4, 16, seed=5, dtype=torch.bfloat16)
    got = moe_layer(x, router_w, w_gate, w_up, w_down, 2, 1.0)
    want = reference_layer(x, router_w, w_gate, w_up, w_down, 2,
                           expert_capacity(12, 4, 2, 1.0), True)
    assert_close(got, want, atol=3e-2, rtol=3e-2, what="moe_layer in bf16",
                 reference="the float64 loop over experts, in bf16")


@pytest.mark.points(2)
def test_no_python_loop_over_experts_or_tokens():
    """Bugs: a Python loop over experts in moe_layer (three matmuls per expert instead of three
    batched ones) or over assignments in dispatch: the number of torch ops grows with the
    number of experts or tokens."""
    def layer_ops(n_experts):
        x, router_w, w_gate, w_up, w_down = make_layer(16, 8, n_experts, 8, seed=0)
        return count_ops(lambda: moe_layer(x, router_w, w_gate, w_up, w_down, 2, 1.0))

    few, many = layer_ops(2), layer_ops(16)
    assert many <= few + 8, (
        f"moe_layer issued {few} torch ops with 2 experts and {many} with 16: run all experts as "
        "three batched matmuls over the [E, C, d_model] buffers, not a loop over experts")

    def dispatch_ops(n_tokens):
        g = torch.Generator().manual_seed(0)
        x, ids = torch.randn(n_tokens, 4, generator=g), random_ids(n_tokens, 4, 2, g)
        return count_ops(lambda: dispatch(x, ids, 4, n_tokens // 2))

    short, long = dispatch_ops(8), dispatch_ops(64)
    assert long <= short + 8, (
        f"dispatch issued {short} torch ops for 8 tokens and {long} for 64: rank the assignments "
        "with a cumsum over a one-hot, not a Python loop")
