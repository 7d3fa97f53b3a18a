"""How many tokens a speculative step emits, and how long a draft pays (Leviathan et al. 2023).

Model (their section 3): each draft token is accepted independently with the same probability
``alpha``, so a step of ``gamma`` drafts emits ``1 + (number of leading acceptances)`` tokens,
at most ``gamma + 1``. Cost model (their section 3): one step runs the draft ``gamma`` times,
one after the other, and the target once over the ``gamma + 1`` positions; that target run
costs the same as one ordinary decode step (decode is memory-bound, so scoring a few more
positions is nearly free), and one draft run costs ``cost_ratio`` target runs. Plain decoding
is ``gamma = 0``: one token for one target run.

Read: learning/lesson14.md#how-many-tokens-a-step-emits
"""

from __future__ import annotations

import math


def _check_alpha_gamma(alpha: float, gamma: int) -> None:
    if not 0.0 <= alpha <= 1.0 or math.isnan(alpha):
        raise ValueError(f"alpha is a probability in [0, 1], got {alpha}")
    if int(gamma) != gamma or gamma < 0:
        raise ValueError(f"gamma must be a whole number >= 0, got {gamma}")


def expected_tokens_per_step(alpha: float, gamma: int) -> float:
    """Expected tokens one step emits: ``(1 - alpha**(gamma + 1)) / (1 - alpha)``.

    Args:
        alpha: acceptance probability of each draft token, in [0, 1].
        gamma: draft tokens per step, a whole number >= 0 (0 is plain decoding: 1 token).
    Returns:
        float in ``[1, gamma + 1]``: ``1 + alpha + alpha**2 + ... + alpha**gamma``. At
        ``alpha = 1`` the closed form is 0 / 0; its limit, ``gamma + 1``, is the answer.

    Example: ``alpha = 0.8, gamma = 4`` gives ``(1 - 0.8**5) / 0.2 = 3.3616`` tokens.

    Two or three lines.

    Read: learning/lesson14.md#how-many-tokens-a-step-emits
    """
    _check_alpha_gamma(alpha, gamma)
    raise NotImplementedError('lesson14: expected_tokens_per_step - read learning/lesson14.md#how-many-tokens-a-step-emits')


def expected_speedup(alpha: float, gamma: int, cost_ratio: float) -> float:
    """Expected tokens per unit of target time: ``expected_tokens_per_step(alpha, gamma) /
    (gamma * cost_ratio + 1)`` (Leviathan et al. 2023, section 3).

    Args:
        alpha: acceptance probability, in [0, 1].
        gamma: draft tokens per step, >= 0.
        cost_ratio: time of one draft run over time of one target run, >= 0 (0 for a draft
            that costs nothing, such as an n-gram lookup).
    Returns:
        float: how many times faster than plain decoding (1.0 at ``gamma = 0``).

    One line.

    Read: learning/lesson14.md#the-best-draft-length
    """
    _check_alpha_gamma(alpha, gamma)
    if not cost_ratio >= 0:
        raise ValueError(f"cost_ratio must be >= 0, got {cost_ratio}")
    raise NotImplementedError('lesson14: expected_speedup - read learning/lesson14.md#the-best-draft-length')


def optimal_gamma(alpha: float, cost_ratio: float, max_gamma: int = 16) -> int:
    """The draft length in ``0 .. max_gamma`` with the largest ``expected_speedup``.

    Args:
        alpha: acceptance probability, in [0, 1].
        cost_ratio: draft run time over target run time, >= 0.
        max_gamma: the longest draft to consider, >= 1.
    Returns:
        int ``gamma``; 0 means speculation does not pay (a speedup of 1 is the best there is).
        On a tie the SHORTER draft wins: it computes fewer tokens that may be thrown away.

    Example: ``alpha = 0.8, cost_ratio = 0.05`` gives 8 (speedup about 3.09x).

    About 4 lines: try every length.

    Read: learning/lesson14.md#the-best-draft-length
    """
    if int(max_gamma) != max_gamma or max_gamma < 1:
        raise ValueError(f"max_gamma must be a whole number >= 1, got {max_gamma}")
    _check_alpha_gamma(alpha, 0)
    if not cost_ratio >= 0:
        raise ValueError(f"cost_ratio must be >= 0, got {cost_ratio}")
    raise NotImplementedError('lesson14: optimal_gamma - read learning/lesson14.md#the-best-draft-length')
