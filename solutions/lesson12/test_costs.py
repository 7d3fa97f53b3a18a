"""Lesson 12, part 5: fragmentation and prompt-caching arithmetic. Run: pytest exercises/lesson12"""

import pytest

from exercises.lesson12.fragmentation import contiguous_waste, paged_waste, utilization
from exercises.lesson12.prompt_cache import (FIVE_MINUTES, ONE_HOUR, CachePricing,
                                             breakeven_hits, prompt_cache_cost,
                                             savings_fraction)


def test_paged_waste_worked_example():
    assert paged_waste([5, 8], block_size=4) == 3  # 2 + 2 blocks = 16 slots for 13 tokens
    assert paged_waste([1], block_size=16) == 15
    assert paged_waste([], block_size=16) == 0


def test_contiguous_waste_worked_example():
    assert contiguous_waste([100, 2000], reserved=2048) == 1948 + 48
    assert contiguous_waste([3, 4], reserved=[4, 4]) == 1
    with pytest.raises(ValueError):
        contiguous_waste([10], reserved=8)


def test_paging_wastes_less_than_a_block_per_sequence():
    lengths = [37, 512, 1, 999, 64]
    assert paged_waste(lengths, 16) < 16 * len(lengths)
    assert utilization(lengths, paged_waste(lengths, 16)) > \
        utilization(lengths, contiguous_waste(lengths, 2048))


def test_prompt_cache_cost_worked_example():
    # write 1250 + read 100 + (940 s gap > 300 s TTL) write again 1250
    assert prompt_cache_cost(1000, [0, 60, 1000]) == pytest.approx(2600)
    # each read renews the TTL: reads every 200 s keep the entry alive for 600 s
    assert prompt_cache_cost(1000, [0, 200, 400, 600]) == pytest.approx(1250 + 3 * 100)


def test_savings_and_breakeven_for_published_prices():
    assert savings_fraction(1) == pytest.approx(0.325)  # 1 - 1.35 / 2
    assert savings_fraction(0) == pytest.approx(-0.25)  # a write nobody reads costs extra
    assert breakeven_hits(FIVE_MINUTES) == 1
    assert breakeven_hits(ONE_HOUR) == 2
    assert breakeven_hits(CachePricing(1.0, 1.0)) is None


def test_breakeven_when_a_write_costs_exactly_base():
    # write == 1: the write alone saves nothing (a tie is not a saving); the first hit does
    assert breakeven_hits(CachePricing(1.0, 0.1)) == 1
    assert breakeven_hits(CachePricing(1.0, 1.5)) is None
    assert breakeven_hits(CachePricing(0.5, 1.5)) == 0
