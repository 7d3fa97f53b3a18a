"""Lesson 21, part 1: the router (softmax, top-k) and the load-balancing loss.
Run: pytest exercises/lesson21"""

import math

import torch

from course.testing import assert_close
from exercises.lesson21.routing import load_balance_loss, topk_route


def test_softmax_then_top2_renormalised():
    ids, weights = topk_route(torch.tensor([[0.0, 0.0, 1.0], [3.0, 1.0, 2.0]]), k=2)
    assert ids.tolist() == [[2, 0], [0, 2]], "experts in order of decreasing probability"
    e = math.e
    expected = torch.tensor([[e / (e + 1), 1 / (e + 1)], [e / (e + 1), 1 / (e + 1)]])
    assert_close(weights, expected, atol=1e-6, what="top-2 weights (renormalised)",
                 reference="softmax over all experts, kept probabilities divided by their sum")


def test_equal_probabilities_go_to_the_lowest_expert_id():
    ids, weights = topk_route(torch.zeros(2, 5), k=3)
    assert ids.tolist() == [[0, 1, 2], [0, 1, 2]], (
        f"five equal logits, k=3: expected experts [0, 1, 2] (ties to the lowest id), got "
        f"{ids.tolist()}")
    ids, _ = topk_route(torch.tensor([[1.0, 2.0, 1.0, 2.0]]), k=3)
    assert ids.tolist() == [[1, 3, 0]], f"expected [[1, 3, 0]], got {ids.tolist()}"


def test_switch_top1_keeps_the_raw_probability():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    ids, weights = topk_route(logits, k=1, renormalize=False)
    probs = torch.softmax(logits, dim=-1)
    assert ids.tolist() == [[0], [2]]
    assert_close(weights, probs.max(dim=-1, keepdim=True).values, atol=1e-6,
                 what="Switch top-1 weight", reference="the softmax probability of the expert")
    _, renormalised = topk_route(logits, k=1)
    assert_close(renormalised, torch.ones(2, 1), atol=1e-6, what="renormalised top-1 weight",
                 reference="1.0 (one kept probability divided by itself)")


def test_weights_are_float32_for_bf16_logits():
    logits = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)).bfloat16()
    ids, weights = topk_route(logits, k=2)
    assert ids.dtype == torch.int64 and weights.dtype == torch.float32, (
        f"expected int64 ids and float32 weights, got {ids.dtype} and {weights.dtype}")
    assert ids.shape == weights.shape == (4, 2)


def test_load_balance_loss_by_hand():
    # token 0: probabilities [0.75, 0.25], token 1: [0.5, 0.5]; both routed to expert 0
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    loss = load_balance_loss(logits, torch.tensor([[0], [0]]))
    # f = [1, 0], P = [0.625, 0.375] -> 2 * (1 * 0.625 + 0 * 0.375) = 1.25
    assert abs(float(loss) - 1.25) < 1e-6, f"expected 1.25, got {float(loss)}"
    uniform = load_balance_loss(torch.zeros(4, 4), torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]]))
    assert abs(float(uniform) - 1.0) < 1e-6, (
        f"perfectly balanced routing must give 1.0, got {float(uniform)}")
