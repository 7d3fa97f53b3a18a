"""The generation loop: prefill the prompt once, then feed one new token per step.

``forward_fn(ids, cache) -> (logits, cache)`` is any causal model with a KV cache: called with
``cache=None`` and the whole prompt it returns logits for every prompt position and a cache;
called with one new token per row and that cache it continues the sequence. The loop never
re-feeds tokens the cache already holds: that is the point of the cache.

Read: learning/lesson02.md#the-generation-loop
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

ForwardFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
Sampler = Callable[[torch.Tensor], torch.Tensor]


def generate(forward_fn: ForwardFn, input_ids: torch.Tensor, max_new_tokens: int,
             sampler: Sampler, eos_id: int | None = None) -> torch.Tensor:
    """Extend each row of ``input_ids`` by up to ``max_new_tokens`` sampled tokens.

    Args:
        forward_fn: ``(ids [batch, n], cache) -> (logits [batch, n, vocab], cache)``.
        input_ids: ``[batch, T]`` int64 prompt, ``T >= 1``.
        max_new_tokens: tokens to add (0 returns the prompt).
        sampler: ``logits [batch, vocab] -> ids [batch]``, e.g.
            ``lambda l: sample(l, temperature=0)``; it sees the logits of the last position.
        eos_id: when given, a row that samples it is finished: its later positions are filled
            with ``eos_id``, and the loop stops as soon as every row is finished.
    Returns:
        ``[batch, T + n]`` int64 with ``n <= max_new_tokens`` (``n < max_new_tokens`` only when
        every row finished early).

    Cost: ``forward_fn`` is called once with the prompt, then once per further token with
    ``[batch, 1]`` ids and the cache - ``n`` calls in all (no call for logits nobody samples).

    About 15 lines.

    Read: learning/lesson02.md#the-generation-loop
    """
    if input_ids.dim() != 2 or input_ids.shape[1] < 1:
        raise ValueError(f"input_ids must be [batch, T] with T >= 1, got {tuple(input_ids.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    raise NotImplementedError('lesson02: generate - read learning/lesson02.md#the-generation-loop')
