"""Lesson 19, part 1: column- and row-parallel shards, heads per rank. Run: pytest exercises/lesson19"""

import pytest
import torch

from exercises.lesson19.shards import column_parallel_shard, row_parallel_shard, tp_heads


def test_column_shards_are_blocks_of_output_rows():
    w = torch.arange(24.0).view(6, 4)
    assert torch.equal(column_parallel_shard(w, 1, 3), w[2:4])
    shards = [column_parallel_shard(w, r, 2) for r in range(2)]
    assert all(s.shape == (3, 4) for s in shards)
    assert torch.equal(torch.cat(shards, dim=0), w), "the shards stacked in rank order must give w"
    with pytest.raises(ValueError):
        column_parallel_shard(w, 0, 4)  # 6 rows do not split over 4 ranks


def test_row_shards_give_partial_sums():
    torch.manual_seed(0)
    w, x = torch.randn(5, 8), torch.randn(3, 8)
    shards = [row_parallel_shard(w, r, 4) for r in range(4)]
    assert all(s.shape == (5, 2) for s in shards)
    partial = sum(x[:, 2 * r:2 * r + 2] @ shards[r].T for r in range(4))
    torch.testing.assert_close(partial, x @ w.T, msg="sum over ranks of x_r @ shard_r.T == x @ w.T")
    with pytest.raises(ValueError):
        row_parallel_shard(w, 0, 3)  # 8 input columns do not split over 3 ranks


def test_heads_per_rank_worked_examples():
    assert tp_heads(32, 8, 1, 4) == (range(8, 16), range(2, 4))
    assert tp_heads(9, 3, 2, 3) == (range(6, 9), range(2, 3))  # SmolLM2 at TP=3
    # more ranks than KV heads: each KV head is replicated on 2 ranks
    assert [tp_heads(4, 2, r, 4)[1] for r in range(4)] == [range(0, 1), range(0, 1),
                                                           range(1, 2), range(1, 2)]
    with pytest.raises(ValueError):
        tp_heads(9, 3, 0, 2)  # SmolLM2's 9 query heads do not split over 2 ranks
