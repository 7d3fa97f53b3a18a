"""Hidden grader, lesson 12: the continuous batcher on random traces, and the cost formulas."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exercises.lesson12.allocator import BlockAllocator
from exercises.lesson12.batcher import (ContinuousBatcher, Request, StaticBatcher, run_trace,
                                        worst_case_blocks)
from exercises.lesson12.fragmentation import contiguous_waste, paged_waste
from exercises.lesson12.prompt_cache import (CachePricing, breakeven_hits, prompt_cache_cost,
                                             savings_fraction)


@st.composite
def traces(draw):
    n = draw(st.integers(1, 25))
    requests = []
    for i in range(n):
        cap = draw(st.integers(1, 40))
        requests.append(Request(i, draw(st.integers(1, 40)), cap, draw(st.integers(1, cap)),
                                arrival=draw(st.integers(0, 30))))
    return requests


@pytest.mark.points(4)
@given(requests=traces(), num_blocks=st.integers(21, 60), block_size=st.sampled_from([1, 4, 16]),
       max_batch=st.integers(1, 8))
def test_random_trace_never_overcommits_and_finishes(requests, num_blocks, block_size,
                                                     max_batch):
    """Bugs: admitting on the prompt's blocks alone (a later decode finds no block:
    OutOfBlocks), forgetting to free on finish (the trace never ends or blocks leak),
    decoding a request on the step it was prefilled (one token too many), letting a later
    request overtake the head of the queue."""
    requests = [r for r in requests if worst_case_blocks(r, block_size) <= num_blocks]
    if not requests:
        return
    allocator = BlockAllocator(num_blocks)
    batcher = ContinuousBatcher(allocator, block_size, max_batch)
    for r in sorted(requests, key=lambda r: (r.arrival, r.id)):
        batcher.add(r)
    produced = {r.id: 0 for r in requests}
    admitted_order, finished = [], set()
    while batcher.has_unfinished():
        assert batcher.steps < 5000, "the trace did not finish in 5000 steps"
        step = batcher.step()
        assert len(batcher.running) <= max_batch, "more sequences running than max_batch_size"
        for rid in step.admitted:
            produced[rid] += 1
        for rid in step.decoded:
            assert rid not in step.admitted, f"request {rid} decoded in its prefill step"
            produced[rid] += 1
        admitted_order += step.admitted
        finished |= set(step.finished)
        held = sum(len(s.table.blocks) for s in batcher.running)
        assert allocator.num_used == held, (
            f"step {step.step}: {allocator.num_used} blocks in use but running sequences hold "
            f"{held}: finished sequences must free their blocks in the step they finish")
    assert finished == {r.id for r in requests}
    assert all(produced[r.id] == r.output_len for r in requests), \
        "each request must produce exactly output_len tokens"
    arrival_order = [r.id for r in sorted(requests, key=lambda r: (r.arrival, r.id))]
    assert admitted_order == arrival_order, "admission must be first come, first served"
    assert allocator.num_free == num_blocks


@pytest.mark.points(2)
def test_continuous_beats_static_on_a_mixed_trace():
    """Bug: a 'continuous' batcher that only admits when the batch is empty (static in
    disguise), or that keeps finished sequences in the batch."""
    requests = [Request(i, 16, 128, output_len=(120 if i % 8 == 0 else 8), arrival=i // 4)
                for i in range(48)]
    cont = run_trace(ContinuousBatcher(BlockAllocator(2000), 16, 8), requests)
    static = run_trace(StaticBatcher(BlockAllocator(2000), 16, 8), requests)
    assert cont.steps < 0.6 * static.steps, (
        f"continuous batching took {cont.steps} steps, static {static.steps}: on this trace "
        "iteration-level scheduling should need well under 60% of static's steps")


@pytest.mark.points(1)
def test_a_slot_freed_this_step_is_reused_next_step():
    """Bug: phases in another order than the lesson's (admit, decode, retire): retiring
    before decoding ends a request a token early; decoding the just-admitted request gives
    it a token too many; not retiring at once keeps the slot taken for an extra step."""
    b = ContinuousBatcher(BlockAllocator(100), 4, max_batch_size=1)
    b.add(Request(0, 4, 2))
    b.add(Request(1, 4, 2))
    steps = [b.step() for _ in range(4)]
    assert [s.admitted for s in steps] == [[0], [], [1], []]
    assert [s.finished for s in steps] == [[], [0], [], [1]]


@pytest.mark.points(2)
@given(lengths=st.lists(st.integers(0, 5000), max_size=30), block_size=st.integers(1, 64))
def test_paged_waste_matches_brute_force(lengths, block_size):
    """Bug: counting a whole block of waste for an exact multiple (ceil vs floor + 1)."""
    got_paged, got_contiguous = paged_waste(lengths, block_size), contiguous_waste(lengths, 5000)
    brute = 0  # computed after the calls: nothing to read from this frame
    for n in lengths:
        slots = 0
        while slots < n:
            slots += block_size
        brute += slots - n
    assert got_paged == brute
    assert got_contiguous == sum(5000 - n for n in lengths)


@pytest.mark.points(2)
def test_ttl_boundary_and_refresh_on_read():
    """Bugs: a TTL measured from the first write instead of the last use (no refresh on
    read), an off-by-one at exactly ttl_s, a read priced as a write."""
    p = CachePricing(write_multiplier=1.25, read_multiplier=0.1, ttl_s=300)
    # Reads every 200 s keep the entry alive though 600 s pass since the write.
    assert prompt_cache_cost(100, [0, 200, 400, 600], p) == pytest.approx(125 + 3 * 10)
    assert prompt_cache_cost(100, [0, 300], p) == pytest.approx(135), "exactly ttl_s still hits"
    assert prompt_cache_cost(100, [0, 300.5], p) == pytest.approx(250)
    assert prompt_cache_cost(100, [], p) == 0
    assert prompt_cache_cost(100, [5, 5, 5], p, base_price=2.0) == pytest.approx(2 * 145)


@pytest.mark.points(2)
@given(w=st.floats(0, 5), r=st.floats(0, 1.5))
def test_breakeven_matches_brute_force(w, r):
    """Bug: returning the real-valued root (w - 1) / (1 - r) unrounded, or ceil of it, which
    is wrong when the root is an integer (a tie is not a saving)."""
    p = CachePricing(w, r)
    got = breakeven_hits(p)  # called before the answer exists in this frame
    brute = next((n for n in range(100_000) if w + n * r < 1 + n), None)
    if brute is None:
        assert got is None or got >= 100_000
    else:
        assert got == brute, f"write {w}, read {r}: first saving at {brute} hits, got {got}"
        assert savings_fraction(brute, p) > 0


@pytest.mark.points(1)
def test_breakeven_at_a_write_price_of_exactly_base():
    """Bug: ``if write <= 1: return 0`` - at write == 1 the write alone costs exactly what
    sending the prefix uncached costs, and a tie is not a saving: the first hit is where
    caching pays (if a read is cheaper than base), or it never does."""
    assert breakeven_hits(CachePricing(1.0, 0.1)) == 1
    assert breakeven_hits(CachePricing(1.0, 0.999)) == 1
    assert breakeven_hits(CachePricing(1.0, 1.0)) is None
    assert breakeven_hits(CachePricing(1.0, 1.5)) is None
    assert breakeven_hits(CachePricing(0.999, 1.5)) == 0
    assert breakeven_hits(CachePricing(3.0, 0.0)) == 3  # 3 < 1 + n first at n = 3


@pytest.mark.points(1)
def test_contiguous_waste_with_a_reservation_per_sequence():
    """Bugs: a per-sequence list of reservations paired with the wrong sequences or not
    accepted; a sequence longer than its reservation counted as negative waste instead of
    the ValueError the docstring promises."""
    assert contiguous_waste([3, 4, 0], [10, 4, 7]) == 7 + 0 + 7
    assert contiguous_waste([], 100) == 0
    with pytest.raises(ValueError):
        contiguous_waste([3, 9], [10, 8])  # 9 tokens in 8 reserved slots
    with pytest.raises(ValueError):
        contiguous_waste([3, 4], [10])
