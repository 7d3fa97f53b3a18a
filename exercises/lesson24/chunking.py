"""Stall-free batching with chunked prefills (SARATHI 2023; Sarathi-Serve, OSDI 2024).

One engine step runs a batch of at most ``token_budget`` tokens. Requests in the decode phase
need one token each; requests in the prefill phase need the rest of their prompt, which may be
split over several steps in chunks of at most ``chunk_size`` tokens. A prefill-first scheduler
(vLLM's default before chunking) runs whole prompts and pauses every decode while it does: the
requests already streaming see one long gap, a *generation stall*. A stall-free plan puts every
running decode in the step first and fills what is left of the budget with prefill chunks.

Read: learning/lesson24.md#chunked-prefill-and-stall-free-batching
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PrefillWork:
    """A request in the prefill phase: ``done`` of its ``prompt_len`` prompt tokens already
    have their KV in the cache (``done > 0``: partially prefilled by earlier chunks)."""

    id: int
    done: int
    prompt_len: int

    def __post_init__(self):
        if not 0 <= self.done < self.prompt_len:
            raise ValueError(f"prefill {self.id}: need 0 <= done < prompt_len, got done="
                             f"{self.done}, prompt_len={self.prompt_len}")

    @property
    def remaining(self) -> int:
        return self.prompt_len - self.done


@dataclass(frozen=True)
class Chunk:
    """Prompt tokens ``[start, start + length)`` of request ``id``, fed in one step."""

    id: int
    start: int
    length: int


@dataclass
class StepPlan:
    """What one step runs: a token for each id in ``decodes``, then the prefill ``chunks``."""

    decodes: list[int] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return len(self.decodes) + sum(c.length for c in self.chunks)


def _check_args(decodes: Sequence[int], prefills: Sequence[PrefillWork], token_budget: int,
                chunk_size: int) -> None:
    if token_budget < 1 or chunk_size < 1:
        raise ValueError(f"token_budget and chunk_size must be >= 1, got {token_budget} and "
                         f"{chunk_size}")
    ids = list(decodes) + [p.id for p in prefills]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a request appears twice among the decodes and prefills: {ids}")


def chunked_prefill_plan(decodes: Sequence[int], prefills: Sequence[PrefillWork],
                         token_budget: int, chunk_size: int) -> StepPlan:
    """Plan one stall-free step (Sarathi-Serve's batching).

    Args:
        decodes: ids of the requests in the decode phase, in the order they run.
        prefills: requests in the prefill phase, in arrival order; partially prefilled ones
            (``done > 0``) may appear anywhere in it.
        token_budget: most tokens the step may feed, decodes and chunks together.
        chunk_size: most prompt tokens one request may feed in one step.
    Returns:
        A ``StepPlan`` that feeds, in this order:

        1. one token for every request in ``decodes`` (all of them, in the given order; if they
           alone exceed the budget no plan is stall-free: raise ValueError saying so);
        2. the partially prefilled requests, in their order in ``prefills``, then the new ones
           (``done == 0``), in theirs: each gets a ``Chunk(id, done, n)`` with ``n = min(its
           remaining tokens, chunk_size, budget left)``; stop when the budget is used up.

    The plan never feeds more than ``token_budget`` tokens, never a chunk of 0 tokens, and each
    chunk starts exactly where the request's cache ends (``done``). About 15 lines.

    Example: decodes [7, 8], prefills [PrefillWork(3, 0, 100), PrefillWork(5, 40, 50)],
    budget 16, chunk 8 -> decodes [7, 8], chunks [Chunk(5, 40, 8), Chunk(3, 0, 6)]: 16 tokens.

    Read: learning/lesson24.md#chunked-prefill-and-stall-free-batching
    """
    _check_args(decodes, prefills, token_budget, chunk_size)
    raise NotImplementedError('lesson24: chunked_prefill_plan - read learning/lesson24.md#chunked-prefill-and-stall-free-batching')


def prefill_first_plan(decodes: Sequence[int], prefills: Sequence[PrefillWork],
                       token_budget: int, chunk_size: int) -> StepPlan:
    """The baseline (given): vLLM's default before chunked prefill. While any prompt waits, a
    step runs whole prompts only, in order, as many as fit in ``token_budget`` (the first one
    always: the budget must hold the longest prompt), and every decode pauses; otherwise it
    decodes everyone. ``chunk_size`` is ignored: prompts are never split."""
    _check_args(decodes, prefills, token_budget, chunk_size)
    if not prefills:
        return StepPlan(decodes=list(decodes))
    taken: list[Chunk] = []
    used = 0
    for p in prefills:
        if taken and used + p.remaining > token_budget:
            break
        taken.append(Chunk(p.id, p.done, p.remaining))
        used += p.remaining
    return StepPlan(decodes=[], chunks=taken)
