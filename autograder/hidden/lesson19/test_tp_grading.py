"""Hidden grader, lesson 19: TP MLP and attention on 2 and 4 gloo ranks.

Each test starts its ranks with course.distributed.run_ranks (loopback, a free port, killed
on failure). The reference is the unsharded block computed in the test process:
the SwiGLU formula for the MLP, course.llama_reference.attention (the course's oracle,
checked against HF transformers) for attention. Collectives are counted in every rank.
"""

import pytest
import torch
import torch.nn.functional as F

from course.config import tiny
from course.distributed import count_collectives, run_ranks
from course.llama_reference import attention, rope_cos_sin
from course.model import random_weights
from course.testing import assert_close
from exercises.lesson19.shards import column_parallel_shard, row_parallel_shard, tp_heads
from exercises.lesson19.tp_layers import tp_attention_forward, tp_mlp_forward

pytestmark = pytest.mark.distributed


def _mlp_rank(rank, world, x, gate, up, down):
    shards = (column_parallel_shard(gate, rank, world), column_parallel_shard(up, rank, world),
              row_parallel_shard(down, rank, world))
    with count_collectives() as calls:
        out = tp_mlp_forward(x, *shards)
    half = tp_mlp_forward(x.bfloat16(), *(s.bfloat16() for s in shards))
    return out, dict(calls), half


@pytest.mark.points(4)
@pytest.mark.parametrize("world", [2, 4])
def test_tp_mlp_equals_unsharded_with_exactly_one_all_reduce(world):
    """Bugs: the all-reduce forgotten (each rank returns a partial sum), two all-reduces per
    MLP (e.g. one on the hidden layer, or a second to "average"), all_gather of the partial
    outputs summed locally (world x the bytes), column and row shards used the wrong way,
    bfloat16 inputs computed (or returned) in float32: the result must be in x's dtype."""
    g = torch.Generator().manual_seed(world)
    d_model, d_ff = 24, 64
    x = torch.randn(3, 5, d_model, generator=g)
    gate = torch.randn(d_ff, d_model, generator=g) / d_model ** 0.5
    up = torch.randn(d_ff, d_model, generator=g) / d_model ** 0.5
    down = torch.randn(d_model, d_ff, generator=g) / d_ff ** 0.5
    expected = (F.silu(x @ gate.T) * (x @ up.T)) @ down.T
    for rank, (out, calls, half) in enumerate(run_ranks(_mlp_rank, world, x, gate, up, down)):
        assert_close(out, expected, atol=1e-5, rtol=1e-5,
                     what=f"TP MLP output on rank {rank} of {world}",
                     reference="the unsharded SwiGLU MLP")
        assert_close(half, expected.bfloat16(), atol=3e-2, rtol=3e-2,
                     what=f"TP MLP output for bfloat16 x and shards, rank {rank} of {world}",
                     reference="the unsharded SwiGLU MLP in float32, rounded to bfloat16")
        assert calls == {"all_reduce": 1}, (
            f"rank {rank} of {world}: a TP MLP needs exactly one all_reduce and no other "
            f"collective (Megatron-LM, section 3); it called {dict(calls)}")


def _attention_rank(rank, world, cfg, weights, x):
    p = "model.layers.0.self_attn."
    d = cfg.d_head
    _, kv = tp_heads(cfg.n_heads, cfg.n_kv_heads, rank, world)
    cos, sin = rope_cos_sin(cfg, torch.arange(x.shape[1]))
    shards = (column_parallel_shard(weights[p + "q_proj.weight"], rank, world),
              weights[p + "k_proj.weight"][kv.start * d:kv.stop * d],
              weights[p + "v_proj.weight"][kv.start * d:kv.stop * d],
              row_parallel_shard(weights[p + "o_proj.weight"], rank, world))
    with count_collectives() as calls:
        out = tp_attention_forward(x, *shards, d, cos, sin)
    loud = tp_attention_forward(x * LOUD, *shards, d, cos, sin)
    return out, dict(calls), loud


LOUD = 40.0  # activations 40x larger: attention scores 1600x larger, in the thousands


@pytest.mark.points(4)
@pytest.mark.parametrize("n_heads,n_kv_heads,world", [(8, 4, 2), (8, 2, 4)])
def test_tp_attention_equals_unsharded_with_exactly_one_all_reduce(n_heads, n_kv_heads, world):
    """Bugs: no causal mask, RoPE skipped, the wrong KV head for a local query head (GQA
    mapping h % n_kv instead of h // group), replicated KV heads given to the wrong ranks
    (world 4 > 2 KV heads), the all-reduce forgotten or done twice, the batch's sequences
    run as one long sequence (they then attend to each other), a hand-written softmax
    without subtracting the maximum (inf / inf = NaN once scores reach the thousands)."""
    cfg = tiny(n_layers=1, d_model=64, n_heads=n_heads, n_kv_heads=n_kv_heads)
    weights = {k: v for k, v in random_weights(cfg, seed=world).items() if "self_attn" in k}
    x = torch.randn(2, 7, cfg.d_model, generator=torch.Generator().manual_seed(5))
    cos, sin = rope_cos_sin(cfg, torch.arange(7))
    expected = attention(weights, "model.layers.0.self_attn.", cfg, x, cos, sin, None, 0)
    loud = attention(weights, "model.layers.0.self_attn.", cfg, x * LOUD, cos, sin, None, 0)
    for rank, (out, calls, got_loud) in enumerate(
            run_ranks(_attention_rank, world, cfg, weights, x)):
        assert_close(out, expected, atol=1e-5, rtol=1e-5,
                     what=f"TP attention on rank {rank} of {world} ({n_heads} q, "
                          f"{n_kv_heads} KV heads)",
                     reference="course.llama_reference.attention, unsharded")
        assert_close(got_loud, loud, atol=1e-2 * LOUD, rtol=1e-3,
                     what=f"TP attention on rank {rank} of {world} with activations x "
                          f"{LOUD:g} (scores in the thousands)",
                     reference="course.llama_reference.attention, unsharded")
        assert calls == {"all_reduce": 1}, (
            f"rank {rank} of {world}: a TP attention block needs exactly one all_reduce "
            f"(after o_proj) and no other collective; it called {dict(calls)}")


def _grouped_rank(rank, world, cfg, weights, mlp, xs):
    """Ranks {0, 1} and {2, 3} are two TP groups of 2 that serve different inputs."""
    import torch.distributed as dist

    groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
    g, r = rank // 2, rank % 2
    x, group = xs[g], groups[g]
    gate, up, down = mlp
    mlp_out = tp_mlp_forward(x, column_parallel_shard(gate, r, 2),
                             column_parallel_shard(up, r, 2), row_parallel_shard(down, r, 2),
                             group=group)
    p, d = "model.layers.0.self_attn.", cfg.d_head
    _, kv = tp_heads(cfg.n_heads, cfg.n_kv_heads, r, 2)
    cos, sin = rope_cos_sin(cfg, torch.arange(x.shape[1]))
    attn_out = tp_attention_forward(
        x, column_parallel_shard(weights[p + "q_proj.weight"], r, 2),
        weights[p + "k_proj.weight"][kv.start * d:kv.stop * d],
        weights[p + "v_proj.weight"][kv.start * d:kv.stop * d],
        row_parallel_shard(weights[p + "o_proj.weight"], r, 2), d, cos, sin, group=group)
    return mlp_out, attn_out


@pytest.mark.points(2)
def test_each_tp_group_reduces_only_within_itself():
    """Bug: ``group=`` accepted but not passed to the all-reduce, which then sums over the
    default (whole) world. With one TP group per world every test passes; here four ranks
    form two TP groups of two (as two model replicas, data-parallel), each group with its
    own input, and each must get its own block's output."""
    cfg = tiny(n_layers=1, d_model=64, n_heads=8, n_kv_heads=4)
    weights = {k: v for k, v in random_weights(cfg, seed=9).items() if "self_attn" in k}
    g = torch.Generator().manual_seed(9)
    d_ff = 32
    mlp = (torch.randn(d_ff, cfg.d_model, generator=g) / 8,
           torch.randn(d_ff, cfg.d_model, generator=g) / 8,
           torch.randn(cfg.d_model, d_ff, generator=g) / d_ff ** 0.5)
    xs = [torch.randn(1, 5, cfg.d_model, generator=g) for _ in range(2)]
    cos, sin = rope_cos_sin(cfg, torch.arange(5))
    for rank, (mlp_out, attn_out) in enumerate(run_ranks(_grouped_rank, 4, cfg, weights, mlp, xs)):
        x = xs[rank // 2]
        assert_close(mlp_out, (F.silu(x @ mlp[0].T) * (x @ mlp[1].T)) @ mlp[2].T, atol=1e-5,
                     rtol=1e-5, what=f"TP MLP on rank {rank} (TP group {rank // 2} of 2)",
                     reference="the unsharded MLP on this group's input")
        assert_close(attn_out, attention(weights, "model.layers.0.self_attn.", cfg, x, cos,
                                         sin, None, 0), atol=1e-5, rtol=1e-5,
                     what=f"TP attention on rank {rank} (TP group {rank // 2} of 2)",
                     reference="the unsharded attention on this group's input")
