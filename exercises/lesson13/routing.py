"""Cache-aware routing: send a request to the replica that already holds most of its prompt,
unless that replica is too busy.

Every replica of a model has its own KV cache, so where a request lands decides whether its
prefix is a hit. Routing only for hits piles a popular prefix onto one replica; routing only
for load (round robin, least loaded) spreads every prefix over all caches. The rule here is
the simplest mix (SGLang's router and Preble, Srivatsa et al. 2024, use refinements of it):

1. eligible replicas: those whose ``load <= min(load) + max_load_gap``;
2. among them, the one with the longest cached prefix of the prompt (``cache.match_prefix(
   prompt, touch=False).num_tokens``, which changes no cache); a replica the load bound
   excludes is not probed (each probe walks that replica's tree);
3. ties: the lower load, then the lower index.

With no hit anywhere, rule 2 ties everyone at zero and rule 3 sends the request to the least
loaded replica. ``load`` is whatever the engine queues on (requests or tokens waiting and
running); ``max_load_gap`` is in the same unit.

Read: learning/lesson13.md#cache-aware-routing
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Replica:
    """One engine replica as the router sees it: its prefix cache (anything with
    ``match_prefix(tokens, touch=False) -> .num_tokens``, such as ``RadixCache``) and its
    current load."""

    cache: Any
    load: int = 0


def route(prompt_tokens: Sequence[int], replicas: Sequence[Replica],
          max_load_gap: int = 8) -> int:
    """The index of the replica to send ``prompt_tokens`` to, by the rule in the module
    docstring. Raises ValueError for no replicas, a negative load or a negative gap.

    Read: learning/lesson13.md#cache-aware-routing
    """
    if not replicas:
        raise ValueError("route needs at least one replica")
    if any(isinstance(r.load, bool) or not isinstance(r.load, int) or r.load < 0
           for r in replicas):
        raise ValueError(f"loads must be ints >= 0, got {[r.load for r in replicas]}")
    if max_load_gap < 0:
        raise ValueError(f"max_load_gap must be >= 0, got {max_load_gap}")
    # hint: min over (-hit, load, index) of the eligible replicas
    raise NotImplementedError('lesson13: route - read learning/lesson13.md#cache-aware-routing')
