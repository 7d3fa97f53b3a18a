"""Lesson 20, part 3: ring attention over chunks equals full attention.
Run: pytest exercises/lesson20"""

import math

import torch
import torch.nn.functional as F

from exercises.lesson20.ring_attention import merge_states, ring_attention, zigzag_positions


def test_merge_of_two_states_from_the_lesson():
    m, l, o = merge_states(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([[1.0]]),
                           torch.tensor([math.log(3)]), torch.tensor([1.0]),
                           torch.tensor([[2.0]]))
    torch.testing.assert_close(o / l[..., None], torch.tensor([[1.75]]))


def chunks(t, sizes):
    return list(t.split(sizes, dim=-2))


def test_ring_attention_equals_full_causal_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 12, 8, generator=g) for _ in range(3))
    sizes = [4, 4, 4]
    out, visited = ring_attention(chunks(q, sizes), chunks(k, sizes), chunks(v, sizes), True)
    torch.testing.assert_close(torch.cat(out, -2), F.scaled_dot_product_attention(
        q, k, v, is_causal=True), atol=1e-5, rtol=1e-5)
    assert visited == [[0], [1, 0], [2, 1, 0]], "future chunks are skipped, ring order"


def test_ring_attention_without_mask():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 7, 4, generator=g) for _ in range(3))
    sizes = [4, 3]
    out, visited = ring_attention(chunks(q, sizes), chunks(k, sizes), chunks(v, sizes), False)
    torch.testing.assert_close(torch.cat(out, -2), F.scaled_dot_product_attention(q, k, v),
                               atol=1e-5, rtol=1e-5)
    assert visited == [[0, 1], [1, 0]]


def test_zigzag_positions():
    assert [p.tolist() for p in zigzag_positions(8, 2)] == [[0, 1, 6, 7], [2, 3, 4, 5]]
