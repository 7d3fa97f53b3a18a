"""Turning logits into the next token: temperature, top-k, top-p (nucleus) and min-p.

The filters run in one fixed order, each on the distribution the previous one left
(renormalised), as in HF transformers' generate():

    1. temperature: ``softmax(logits / temperature)``;
    2. top-k: keep the ``top_k`` most probable tokens;
    3. top-p: keep the smallest set of most probable tokens whose mass is ``>= top_p``;
    4. min-p: keep tokens whose probability is ``>= min_p x`` the largest probability.

Every filter keeps at least the most probable token. ``temperature == 0`` means greedy: the
argmax of the logits, no randomness, filters irrelevant.

Read: learning/lesson02.md#temperature-top-k-top-p-min-p
"""

from __future__ import annotations

import torch


def _check_args(temperature, top_k, top_p, min_p) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
    if min_p is not None and not 0 <= min_p <= 1:
        raise ValueError(f"min_p must be in [0, 1] or None, got {min_p}")


def filtered_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """The distribution the next token is drawn from, after temperature and the filters.

    Args:
        logits: ``[..., vocab]`` float (float32, bfloat16 or float16), any magnitude; each
            row is filtered on its own. Left unchanged (no in-place division).
        temperature: > 0 here (``sample`` handles 0); may be tiny (1e-3).
        top_k, top_p, min_p: ``None`` switches a filter off.
    Returns:
        ``[..., vocab]`` float32 probabilities that sum to 1 on the last axis, exactly 0 for
        filtered tokens, in the order given in the module docstring.

    Example: logits ``log([0.5, 0.3, 0.15, 0.05])``, ``top_p=0.7`` keeps tokens 0 and 1 (0.5 is
    not enough, 0.8 is) and returns ``[0.625, 0.375, 0, 0]``.

    About 15 lines, no Python loop over the vocabulary. Sort once (``torch.sort`` descending),
    use ``cumsum`` for top-p, and ``scatter`` the kept mask back to the original order.

    Read: learning/lesson02.md#temperature-top-k-top-p-min-p
    """
    _check_args(temperature, top_k, top_p, min_p)
    if temperature == 0:
        raise ValueError("filtered_probs needs temperature > 0; temperature 0 is greedy (argmax)")
    raise NotImplementedError('lesson02: filtered_probs - read learning/lesson02.md#temperature-top-k-top-p-min-p')


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, min_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row of ``logits``.

    Args:
        logits: ``[batch, vocab]`` (or ``[vocab]``), left unchanged.
        temperature: 0 for greedy (argmax of the logits), else as in ``filtered_probs``.
        top_k, top_p, min_p: as in ``filtered_probs``.
        generator: the only source of randomness (``torch.multinomial(..., generator=)``); the
            global RNG must not be used, so the same seed gives the same tokens.
    Returns:
        ``[batch]`` (or ``[]``) int64 token ids.

    About 6 lines.

    Read: learning/lesson02.md#temperature-top-k-top-p-min-p
    """
    _check_args(temperature, top_k, top_p, min_p)
    raise NotImplementedError('lesson02: sample - read learning/lesson02.md#temperature-top-k-top-p-min-p')
