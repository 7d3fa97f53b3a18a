"""Hidden grader, lesson 19: weight shards and head assignment, for any shape that splits.

References are index arithmetic written here: a weight whose entry encodes its own row and
column, so a shard shows exactly which rows/columns it holds, and GQA's rule that query
head h reads KV head h // (n_heads / n_kv_heads).
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from exercises.lesson19.shards import column_parallel_shard, row_parallel_shard, tp_heads


def _indexed(out: int, inp: int) -> torch.Tensor:
    """w[i, j] = 1000 i + j: every entry names its own row and column."""
    return (1000 * torch.arange(out)[:, None] + torch.arange(inp)[None, :]).float()


@pytest.mark.points(2)
@given(world=st.integers(1, 8), rows_each=st.integers(1, 6), cols_each=st.integers(1, 6))
def test_shards_are_contiguous_blocks_that_reassemble(world, rows_each, cols_each):
    """Bugs: column and row splits swapped (a column shard cutting the input dimension),
    strided (round-robin) rows instead of a contiguous block, a transposed shard, an
    off-by-one block boundary. Uneven splits must raise ValueError."""
    w = _indexed(world * rows_each, world * cols_each)
    cols = [column_parallel_shard(w, r, world) for r in range(world)]
    rows = [row_parallel_shard(w, r, world) for r in range(world)]
    for r in range(world):
        assert cols[r].shape == (rows_each, w.shape[1]), (
            f"column_parallel_shard of [{w.shape[0]}, {w.shape[1]}] over {world} ranks must be "
            f"[{rows_each}, {w.shape[1]}] (output rows split), got {tuple(cols[r].shape)}")
        assert torch.equal(cols[r], w[r * rows_each:(r + 1) * rows_each]), \
            f"rank {r}'s column shard must be rows {r * rows_each}..{(r + 1) * rows_each - 1}"
        assert rows[r].shape == (w.shape[0], cols_each), (
            f"row_parallel_shard over {world} ranks must be [{w.shape[0]}, {cols_each}] "
            f"(input columns split), got {tuple(rows[r].shape)}")
        assert torch.equal(rows[r], w[:, r * cols_each:(r + 1) * cols_each]), \
            f"rank {r}'s row shard must be columns {r * cols_each}..{(r + 1) * cols_each - 1}"
    if world > 1:
        with pytest.raises(ValueError):
            column_parallel_shard(_indexed(world * rows_each + 1, 2), 0, world)
        with pytest.raises(ValueError):
            row_parallel_shard(_indexed(2, world * cols_each + 1), 0, world)


CONFIGS = [(n_kv * group, n_kv, world) for n_kv in (1, 2, 3, 4, 8) for group in (1, 2, 3, 4)
           for world in (1, 2, 3, 4, 6, 8, 16)
           if (n_kv * group) % world == 0 and (n_kv % world == 0 or world % n_kv == 0)]


@pytest.mark.points(3)
@given(config=st.sampled_from(CONFIGS))
def test_heads_follow_the_q_shard_and_gqa(config):
    """Bugs: query heads assigned round-robin while q_proj is split in contiguous blocks (each
    rank then pairs its q rows with the wrong heads' KV and o_proj columns), KV heads that the
    rank's queries do not read, replicated KV heads assigned rank % n_kv instead of in blocks."""
    n_heads, n_kv, world = config
    group, d_head = n_heads // n_kv, 2
    wq = _indexed(n_heads * d_head, 3)
    seen = []
    for r in range(world):
        q_heads, kv_heads = tp_heads(n_heads, n_kv, r, world)
        q_heads, kv_heads = list(q_heads), list(kv_heads)
        shard_heads = sorted({int(i) // 1000 // d_head for i in column_parallel_shard(wq, r, world)[:, 0]})
        assert q_heads == shard_heads, (
            f"{n_heads} q / {n_kv} KV heads over {world} ranks, rank {r}: tp_heads gives query "
            f"heads {q_heads} but column_parallel_shard(q_proj) holds heads {shard_heads}")
        needed = sorted({h // group for h in q_heads})
        assert kv_heads == needed, (
            f"{n_heads} q / {n_kv} KV heads over {world} ranks, rank {r}: its query heads "
            f"{q_heads} read KV heads {needed} (h // {group}), tp_heads gives {kv_heads}")
        seen += q_heads
    assert sorted(seen) == list(range(n_heads)), "every query head must be owned exactly once"


@pytest.mark.points(1)
def test_heads_that_do_not_split_raise():
    """Bug: silently dropping heads when they do not divide (SmolLM2's 9 query heads over 2
    ranks), or replicating 3 KV heads over 4 ranks unevenly."""
    assert tp_heads(9, 3, 0, 3) == (range(0, 3), range(0, 1))
    for n_heads, n_kv, world in [(9, 3, 2), (12, 3, 4), (8, 8, 3)]:
        with pytest.raises(ValueError):
            tp_heads(n_heads, n_kv, 0, world)
