"""Lesson 12, part 4: continuous batching. Run: pytest exercises/lesson12"""

import random

from exercises.lesson12.allocator import BlockAllocator
from exercises.lesson12.batcher import (ContinuousBatcher, Request, StaticBatcher,
                                        run_trace, worst_case_blocks)


def test_one_request_runs_prefill_then_decodes():
    b = ContinuousBatcher(BlockAllocator(16), block_size=4, max_batch_size=4)
    b.add(Request(0, prompt_len=5, max_new_tokens=3))
    first = b.step()
    assert first.admitted == [0] and first.decoded == [], \
        "step 0 prefills the request (its first token); it decodes from the next step on"
    assert b.step().decoded == [0]
    last = b.step()
    assert last.decoded == [0] and last.finished == [0], "3 tokens: prefill + 2 decodes"
    assert b.allocator.num_free == 16, "a finished request's blocks are freed at once"
    assert not b.has_unfinished()


def test_admission_respects_batch_size_and_blocks():
    b = ContinuousBatcher(BlockAllocator(6), block_size=4, max_batch_size=2)
    for i in range(3):
        b.add(Request(i, prompt_len=4, max_new_tokens=5))  # 8 slots -> 2 blocks worst case
    assert b.step().admitted == [0, 1], "max_batch_size is 2"
    assert b.can_admit(Request(9, 4, 5)) is False


def test_no_overcommit_and_everything_finishes():
    rng = random.Random(0)
    requests = [Request(i, rng.randint(1, 30), m, rng.randint(1, m), arrival=rng.randint(0, 20))
                for i, m in enumerate(rng.randint(1, 30) for _ in range(40))]
    allocator = BlockAllocator(24)
    stats = run_trace(ContinuousBatcher(allocator, 4, max_batch_size=8), requests)
    assert sorted(stats.finish_step) == list(range(40)), "every request must finish"
    assert allocator.num_free == 24, "all blocks must be back once the trace is done"
    assert stats.peak_blocks_used <= 24


def test_continuous_beats_static_on_mixed_lengths():
    requests = [Request(i, 8, 64, output_len=(60 if i % 4 == 0 else 4)) for i in range(16)]
    steps = {}
    for cls in (ContinuousBatcher, StaticBatcher):
        steps[cls.__name__] = run_trace(cls(BlockAllocator(400), 8, 4), requests).steps
    assert steps["ContinuousBatcher"] < steps["StaticBatcher"], steps


def test_admission_counts_blocks_that_running_sequences_may_still_claim():
    # worst case of each: 5 + 4 - 1 = 8 slots = 2 blocks of 4
    b = ContinuousBatcher(BlockAllocator(3), block_size=4, max_batch_size=4)
    assert worst_case_blocks(Request(0, prompt_len=5, max_new_tokens=4), block_size=4) == 2
    b.add(Request(0, prompt_len=5, max_new_tokens=4))
    b.step()  # admitted: holds 2 blocks now (5 prompt slots), may claim 0 more
    assert b.can_admit(Request(1, prompt_len=1, max_new_tokens=4)), "1 + 4 - 1 = 4 slots fit"
    assert not b.can_admit(Request(2, prompt_len=5, max_new_tokens=1)), "needs 2, 1 is free"
