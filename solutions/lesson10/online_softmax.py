"""The online softmax: attention over a set of keys kept as a small state, merged exactly.

For one query and a set of keys ``J`` with scaled scores ``s_j`` and value rows ``v_j``, the
**softmax state** is three numbers per query (the last one a vector of ``d_head``):

- ``m``: the running maximum, ``max_j s_j`` (``-inf`` for an empty set);
- ``l``: the running sum, ``sum_j exp(s_j - m)`` (``0`` for an empty set);
- ``o``: the UNNORMALISED output, ``sum_j exp(s_j - m) * v_j`` (zeros for an empty set).

Attention over ``J`` is ``o / l``, and its log-sum-exp is ``m + log(l)``. Two states over
disjoint key sets merge into the state of their union exactly (Milakov and Gimelshein 2018):
rescale each to the larger maximum and add. Every fused attention kernel is built on this.

Read: learning/lesson10.md#the-online-softmax
"""

from __future__ import annotations

import torch


def check_states(m1: torch.Tensor, l1: torch.Tensor, o1: torch.Tensor, m2: torch.Tensor,
                 l2: torch.Tensor, o2: torch.Tensor) -> None:
    """Raise ValueError, in plain words, for two states that cannot be merged."""
    for name, m, l, o in (("first", m1, l1, o1), ("second", m2, l2, o2)):
        if o.dim() < 1 or m.shape != o.shape[:-1] or l.shape != o.shape[:-1]:
            raise ValueError(f"the {name} state must have m and l of shape o.shape[:-1]; got m "
                             f"{tuple(m.shape)}, l {tuple(l.shape)}, o {tuple(o.shape)}")
    if o1.shape != o2.shape:
        raise ValueError(f"the two states cover different queries: o1 {tuple(o1.shape)}, "
                         f"o2 {tuple(o2.shape)}")


def online_softmax_merge(m1: torch.Tensor, l1: torch.Tensor, o1: torch.Tensor,
                         m2: torch.Tensor, l2: torch.Tensor, o2: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge the softmax states of two DISJOINT key sets into the state of their union.

    Args:
        m1, l1: ``[...]`` running maximum and running sum of the first set, float32.
        o1: ``[..., d_head]`` its unnormalised output (see the module docstring), float32.
        m2, l2, o2: the same for the second set.
    Returns:
        ``(m, l, o)`` of the union, same shapes, with ``m = max(m1, m2)``,
        ``l = exp(m1 - m) * l1 + exp(m2 - m) * l2`` and the same rescaling for ``o``.
        ``o`` stays unnormalised: divide by ``l`` only when every key has been seen.

    An empty set has ``m = -inf, l = 0, o = 0``, and merging with it changes nothing. Two empty
    sets merge into an empty set, with no NaN: ``exp(m1 - m)`` is ``exp(-inf - (-inf))`` there,
    so subtract a maximum that is 0 where ``m`` is ``-inf``. Every row has its own maximum.
    The inputs are left unchanged (no in-place ops on them). About 6 lines.

    Example: the keys {s = 0} and {s = log 3} with values 1 and 2 have states ``(0, 1, 1)`` and
    ``(log 3, 1, 2)``; merged: ``m = log 3``, ``l = 1/3 + 1``, ``o = 1/3 + 2``, and attention
    ``o / l = 1.75`` (weights 1/4 and 3/4).

    Read: learning/lesson10.md#merging-two-states
    """
    check_states(m1, l1, o1, m2, l2, o2)
    ### BEGIN SOLUTION
    m = torch.maximum(m1, m2)
    # hint: where m is -inf both states are empty; subtract 0 there instead of -inf
    m_safe = torch.where(m == float("-inf"), torch.zeros_like(m), m)
    a1, a2 = torch.exp(m1 - m_safe), torch.exp(m2 - m_safe)
    l = a1 * l1 + a2 * l2
    o = a1[..., None] * o1 + a2[..., None] * o2
    return m, l, o
    ### END SOLUTION
