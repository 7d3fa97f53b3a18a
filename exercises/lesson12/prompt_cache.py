"""The prompt-caching bridge: what reusing a cached prefix costs, and when it pays.

Serving engines keep the KV of a shared prefix (a system prompt, a document) so that a
later request skips its prefill (lesson 13 builds that cache). Providers sell the same idea
with a price: writing the prefix into the cache costs more than plain input, reading it
back costs much less, and an entry lives for a time-to-live (TTL) that each hit renews.

Default multipliers, relative to the base input-token price, are Anthropic's published
prompt-caching prices (platform.claude.com/en/docs/build-with-claude/prompt-caching, read
2026-11): a 5-minute cache write costs 1.25x, a 1-hour write 2x, a cache read 0.1x, and the
TTL refreshes each time the entry is read. Other providers use other numbers (some charge
nothing extra to write): they are parameters.

Read: learning/lesson12.md#prompt-caching-arithmetic
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CachePricing:
    """Price multipliers relative to the base input price, and the entry's TTL in seconds."""

    write_multiplier: float = 1.25
    read_multiplier: float = 0.10
    ttl_s: float = 300.0

    def __post_init__(self):
        if self.write_multiplier < 0 or self.read_multiplier < 0 or self.ttl_s <= 0:
            raise ValueError("multipliers must be >= 0 and ttl_s > 0")


FIVE_MINUTES = CachePricing(1.25, 0.10, 300.0)
ONE_HOUR = CachePricing(2.0, 0.10, 3600.0)


def prompt_cache_cost(prefix_tokens: int, request_times: Sequence[float],
                      pricing: CachePricing = FIVE_MINUTES, base_price: float = 1.0) -> float:
    """Cost of sending the same cached prefix at ``request_times`` (seconds, ascending).

    The first request writes the entry. A later request within ``ttl_s`` of the previous
    write or read of the entry reads it (and renews the TTL); after a longer gap the entry
    has expired and the request writes it again. A request exactly ``ttl_s`` after the last
    use still hits. Cost in units of ``base_price`` per token (default 1: the result is in
    "base-price tokens"). Only the prefix is priced; the rest of each request is the same
    with or without caching.

    Example: 1000 tokens at t = 0, 60, 1000 s with the 5-minute prices:
    write 1250 + read 100 + (gap 940 s > 300 s) write 1250 = 2600.

    Read: learning/lesson12.md#prompt-caching-arithmetic
    """
    if prefix_tokens < 0:
        raise ValueError("prefix_tokens must be >= 0")
    if any(b < a for a, b in zip(request_times, request_times[1:])):
        raise ValueError("request_times must be in ascending order")
    raise NotImplementedError('lesson12: prompt_cache_cost - read learning/lesson12.md#prompt-caching-arithmetic')


def savings_fraction(num_reads: int, pricing: CachePricing = FIVE_MINUTES) -> float:
    """Fraction saved versus no caching by one write followed by ``num_reads`` hits:
    ``1 - (write + num_reads * read) / (1 + num_reads)``. Negative when caching costs more.

    Read: learning/lesson12.md#prompt-caching-arithmetic
    """
    raise NotImplementedError('lesson12: savings_fraction - read learning/lesson12.md#prompt-caching-arithmetic')


def breakeven_hits(pricing: CachePricing = FIVE_MINUTES) -> int | None:
    """Fewest cache hits after one write for which caching costs strictly less than sending
    the prefix uncached every time; ``None`` if it never pays.

    Solve ``write + n * read < 1 + n`` for the smallest integer ``n >= 0``. So: 0 when the
    write costs less than base (``write < 1``); with ``write == 1`` exactly the write alone
    saves nothing (a tie is not a saving), so the answer is 1 if a read is cheaper than base
    and ``None`` otherwise; ``None`` whenever ``write >= 1`` and ``read >= 1``.

    Read: learning/lesson12.md#prompt-caching-arithmetic
    """
    raise NotImplementedError('lesson12: breakeven_hits - read learning/lesson12.md#prompt-caching-arithmetic')
