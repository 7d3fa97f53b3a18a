"""Hidden grader, lesson 19: a decoder layer of the real SmolLM2-135M at TP=3.

SmolLM2 has 9 query heads, 3 KV heads and d_ff 1536: world 3 is the only size > 1 that splits
its heads evenly (9 / 2 and 3 / 2 do not; 9 / 4 neither), one KV head and 512 MLP channels
per rank. The reference is layer 0 of course.llama_reference run in this process.
"""

import pytest
import torch

from course.distributed import count_collectives, run_ranks
from course.llama_reference import attention, mlp, rms_norm, rope_cos_sin
from course.testing import assert_close
from exercises.lesson19.tp_layers import shard_layer, tp_decoder_layer

pytestmark = [pytest.mark.model, pytest.mark.distributed]


def _layer_rank(rank, world, cfg, weights, x):
    shards = shard_layer(weights, 0, cfg, rank, world)
    cos, sin = rope_cos_sin(cfg, torch.arange(x.shape[1]))
    with count_collectives() as calls:
        out = tp_decoder_layer(x, shards, cfg, cos, sin)
    return out, dict(calls)


@pytest.mark.points(3)
def test_smollm2_layer0_at_tp3_equals_the_single_process_layer():
    """Bugs: anything that breaks on real weights and GQA with 3 query heads per KV head:
    a KV shard that does not match the rank's query heads, RoPE on the wrong halves, an
    all-reduce missing in one of the two blocks (a layer needs exactly two)."""
    from course.model import load_config, load_weights
    cfg = load_config()
    prefix = "model.layers.0."
    weights = {k: v.clone() for k, v in load_weights().items() if k.startswith(prefix)}
    embed = load_weights()["model.embed_tokens.weight"]
    x = embed[torch.tensor([[1, 504, 3148, 314, 260, 1345, 30]])].clone()  # [1, 7, 576]
    cos, sin = rope_cos_sin(cfg, torch.arange(x.shape[1]))
    h = x + attention(weights, prefix + "self_attn.", cfg,
                      rms_norm(x, weights[prefix + "input_layernorm.weight"], cfg.rms_eps),
                      cos, sin, None, 0)
    expected = h + mlp(weights, prefix + "mlp.",
                       rms_norm(h, weights[prefix + "post_attention_layernorm.weight"], cfg.rms_eps))
    for rank, (out, calls) in enumerate(run_ranks(_layer_rank, 3, cfg, weights, x)):
        assert_close(out, expected, atol=1e-4, rtol=1e-4,
                     what=f"SmolLM2 layer 0 at TP=3, rank {rank}",
                     reference="the single-process layer (course.llama_reference)")
        assert calls == {"all_reduce": 2}, (
            f"rank {rank}: one decoder layer needs exactly two all_reduce calls (attention "
            f"and MLP); it called {dict(calls)}")
