"""Lesson 21, part 2: capacity, dispatch, combine, and the whole MoE layer.
Run: pytest exercises/lesson21"""

import torch

from course.testing import assert_close
from exercises.lesson21.dispatch import (combine, dispatch, expert_capacity, moe_layer,
                                         moe_layer_spec)

# The worked example of learning/lesson21.md: 4 tokens, 3 experts, top-2, capacity 2.
IDS = torch.tensor([[0, 1], [1, 0], [0, 2], [0, 1]])
SLOTS = [[0, 1], [0, -1], [1, 0], [-1, -1]]


def test_capacity_rounds_up():
    assert expert_capacity(8, 4, 2, 1.25) == 5
    assert expert_capacity(6, 4, 1, 1.0) == 2, "1.0 x 6 x 1 / 4 = 1.5 slots rounds UP to 2"
    assert expert_capacity(4, 3, 2, 0.75) == 2
    assert expert_capacity(45, 3, 2, 1.1) == 33, (
        "1.1 x 45 x 2 / 3 is 33.00000000000001 in floating point; the capacity is 33")
    assert expert_capacity(10, 2, 2, 4.0) == 10, "an expert never needs more than n_tokens rows"
    assert expert_capacity(7, 4, 2, None) == 7, "None: unbounded, n_tokens rows"


def test_dispatch_worked_example():
    x = torch.arange(1.0, 5.0)[:, None] * torch.ones(4, 3)  # token t is the row [t+1, t+1, t+1]
    buffers, slots, dropped = dispatch(x, IDS, n_experts=3, capacity=2)
    assert buffers.shape == (3, 2, 3) and buffers.dtype == x.dtype
    assert slots.tolist() == SLOTS, (
        f"slots {slots.tolist()}, expected {SLOTS}: first choices of all tokens (in token "
        "order) are served before any second choice")
    assert dropped.tolist() == [[s == -1 for s in row] for row in SLOTS]
    # expert 0 holds tokens 0 and 2, expert 1 tokens 1 and 0, expert 2 token 2 then a zero row
    assert buffers[:, :, 0].tolist() == [[1.0, 3.0], [2.0, 1.0], [3.0, 0.0]], (
        f"buffer rows (first channel) {buffers[:, :, 0].tolist()}")


def test_combine_weighs_kept_assignments_and_skips_dropped_ones():
    expert_out = torch.arange(1.0, 7.0).view(3, 2, 1)  # expert e, row c holds 2e + c + 1
    weights = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5]])
    out = combine(expert_out, IDS, torch.tensor(SLOTS), weights)
    expected = torch.tensor([[0.7 * 1 + 0.3 * 4], [0.6 * 3], [0.9 * 2 + 0.1 * 5], [0.0]])
    assert_close(out, expected, atol=1e-6, what="combine",
                 reference="sum of weight x expert row over kept assignments; token 3 all dropped")


def make_layer(n_tokens, d_model, n_experts, d_ff, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=g) / s[-1] ** 0.5).to(dtype)  # noqa: E731
    return (r(n_tokens, d_model) * d_model ** 0.5, r(n_experts, d_model), r(n_experts, d_ff, d_model),
            r(n_experts, d_ff, d_model), r(n_experts, d_model, d_ff))


def test_moe_layer_equals_the_loop_over_experts():
    x, router_w, w_gate, w_up, w_down = make_layer(12, 8, 4, 16)
    for k, factor in [(2, None), (1, None), (2, 1.0), (2, 0.5), (1, 0.5)]:
        capacity = expert_capacity(12, 4, k, factor)
        assert_close(moe_layer(x, router_w, w_gate, w_up, w_down, k, factor),
                     moe_layer_spec(x, router_w, w_gate, w_up, w_down, k, capacity), atol=1e-5,
                     rtol=1e-5, what=f"moe_layer(k={k}, capacity_factor={factor})",
                     reference=f"moe_layer_spec with capacity {capacity}")
