"""Lesson 19, part 2: a TP MLP and a TP attention block on 2 gloo ranks. Run: pytest exercises/lesson19"""

import torch
import torch.nn.functional as F

from course.distributed import count_collectives, run_ranks
from exercises.lesson19.tp_layers import tp_attention_forward, tp_mlp_forward


def mlp_rank(rank, world, x, gate, up, down):
    from exercises.lesson19.shards import column_parallel_shard, row_parallel_shard
    shards = (column_parallel_shard(gate, rank, world), column_parallel_shard(up, rank, world),
              row_parallel_shard(down, rank, world))
    with count_collectives() as calls:
        out = tp_mlp_forward(x, *shards)
    return out, dict(calls), tp_mlp_forward(x.bfloat16(), *(s.bfloat16() for s in shards))


def attention_rank(rank, world, x, wq, wk, wv, wo, d_head):
    # 4 query heads, 2 KV heads, 2 ranks: rank r owns query heads 2r, 2r+1 and KV head r
    q_rows = slice(rank * 2 * d_head, (rank + 1) * 2 * d_head)
    kv_rows = slice(rank * d_head, (rank + 1) * d_head)
    with count_collectives() as calls:
        out = tp_attention_forward(x, wq[q_rows], wk[kv_rows], wv[kv_rows], wo[:, q_rows], d_head)
    return out, dict(calls)


def test_tp_mlp_on_two_ranks_equals_the_unsharded_mlp_with_one_all_reduce():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, generator=g)
    gate, up, down = (torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g),
                      torch.randn(16, 32, generator=g))
    expected = (F.silu(x @ gate.T) * (x @ up.T)) @ down.T
    for rank, (out, calls, half) in enumerate(run_ranks(mlp_rank, 2, x, gate, up, down)):
        torch.testing.assert_close(out, expected, msg=f"rank {rank}: TP MLP != unsharded MLP")
        assert half.dtype == torch.bfloat16, \
            f"rank {rank}: bfloat16 x and shards must give a bfloat16 result, got {half.dtype}"
        assert calls == {"all_reduce": 1}, f"rank {rank}: expected one all_reduce, saw {calls}"


def test_tp_attention_on_two_ranks_equals_unsharded_attention():
    g = torch.Generator().manual_seed(1)
    d_head, d_model, seq = 8, 32, 5
    x = torch.randn(2, seq, d_model, generator=g)  # two sequences: they must not mix
    wq, wo = torch.randn(4 * d_head, d_model, generator=g), torch.randn(d_model, 4 * d_head, generator=g)
    wk, wv = torch.randn(2 * d_head, d_model, generator=g), torch.randn(2 * d_head, d_model, generator=g)
    # unsharded causal GQA attention, written out (query head h reads KV head h // 2)
    q = (x @ wq.T).view(2, seq, 4, d_head).transpose(1, 2)
    k = (x @ wk.T).view(2, seq, 2, d_head).transpose(1, 2).repeat_interleave(2, dim=1)
    v = (x @ wv.T).view(2, seq, 2, d_head).transpose(1, 2).repeat_interleave(2, dim=1)
    scores = (q @ k.transpose(-1, -2)) / d_head ** 0.5
    scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
    expected = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, seq, -1) @ wo.T
    for rank, (out, calls) in enumerate(run_ranks(attention_rank, 2, x, wq, wk, wv, wo, d_head)):
        torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4,
                                   msg=f"rank {rank}: TP attention != unsharded attention")
        assert calls == {"all_reduce": 1}, f"rank {rank}: expected one all_reduce, saw {calls}"


def grouped_mlp_rank(rank, world, xs, gate, up, down):
    import torch.distributed as dist

    from exercises.lesson19.shards import column_parallel_shard, row_parallel_shard
    groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]  # every rank creates both
    r = rank % 2
    return tp_mlp_forward(xs[rank // 2], column_parallel_shard(gate, r, 2),
                          column_parallel_shard(up, r, 2), row_parallel_shard(down, r, 2),
                          group=groups[rank // 2])


def test_tp_mlp_reduces_only_within_its_group():
    # 4 ranks, two TP groups of 2 (two model replicas) with different inputs
    g = torch.Generator().manual_seed(2)
    xs = [torch.randn(3, 16, generator=g) for _ in range(2)]
    gate, up, down = (torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g),
                      torch.randn(16, 32, generator=g))
    for rank, out in enumerate(run_ranks(grouped_mlp_rank, 4, xs, gate, up, down)):
        x = xs[rank // 2]
        torch.testing.assert_close(out, (F.silu(x @ gate.T) * (x @ up.T)) @ down.T, msg=(
            f"rank {rank} (TP group {rank // 2}): the all-reduce must sum over group= only"))
