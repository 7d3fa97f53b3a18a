"""Hidden grader, lesson 05: GQA on the real SmolLM2-135M (9 query heads, 3 KV heads).

Layer 0's projections of a short prompt go through gqa_attention; the reference is the course's
Llama forward (course.llama_reference.attention, which calls SDPA with enable_gqa) and SDPA on
K/V expanded with repeat_interleave.
"""

import pytest
import torch
import torch.nn.functional as F

from course.testing import assert_close
from exercises.lesson05.conversion import convert_mha_to_gqa
from exercises.lesson05.grouped_attention import gqa_attention

PROMPT = torch.tensor([[1, 9690, 314, 253, 4371, 28, 837, 314, 260]])  # fixed token ids


def layer0(cfg, w):
    from course.llama_reference import apply_rope, rms_norm, rope_cos_sin

    p = "model.layers.0."
    x = rms_norm(w["model.embed_tokens.weight"][PROMPT], w[p + "input_layernorm.weight"],
                 cfg.rms_eps)
    B, T, _ = x.shape
    cos, sin = rope_cos_sin(cfg, torch.arange(T))

    def heads(name, n):  # [B, T, n * d] -> [B, n, T, d], a non-contiguous view
        return (x @ w[p + "self_attn." + name].T).view(B, T, n, cfg.d_head).transpose(1, 2)

    q = apply_rope(heads("q_proj.weight", cfg.n_heads), cos, sin)
    k = apply_rope(heads("k_proj.weight", cfg.n_kv_heads), cos, sin)
    v = heads("v_proj.weight", cfg.n_kv_heads)
    return x, q, k, v, cos, sin


@pytest.mark.model
@pytest.mark.points(2)
def test_smollm2_layer0_attention():
    """Bugs: a wrong query-head -> KV-head mapping that random tests with symmetric heads
    could hide; code that assumes a contiguous q (the model's q is a transposed view); a
    causal mask that does not match the model's own forward."""
    from course.llama_reference import attention
    from course.model import load_config, load_weights

    cfg, w = load_config(), load_weights()
    assert (cfg.n_heads, cfg.n_kv_heads) == (9, 3)
    x, q, k, v, cos, sin = layer0(cfg, w)
    got = gqa_attention(q, k, v, causal=True)
    T = q.shape[2]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    expanded = F.scaled_dot_product_attention(q, k.repeat_interleave(3, 1),
                                              v.repeat_interleave(3, 1), attn_mask=mask)
    assert_close(got, expanded, atol=1e-4, rtol=1e-4, what="gqa_attention on SmolLM2 layer 0",
                 reference="SDPA on K/V expanded with repeat_interleave")
    o_proj = w["model.layers.0.self_attn.o_proj.weight"]
    block = got.transpose(1, 2).reshape(1, T, -1) @ o_proj.T
    want = attention(w, "model.layers.0.self_attn.", cfg, x, cos, sin, None, 0)
    assert_close(block, want, atol=1e-4, rtol=1e-4,
                 what="SmolLM2 layer-0 attention block built on gqa_attention",
                 reference="course.llama_reference.attention")


@pytest.mark.model
@pytest.mark.points(1)
def test_mha_copy_of_smollm2_converts_back_exactly():
    """Bug: strided grouping or a sum in convert_mha_to_gqa. An MHA model whose heads are
    copies within each group (SmolLM2's 3 KV heads repeated to 9) must convert back to the
    original 3 heads, and its attention must not change."""
    from course.model import load_config, load_weights

    cfg, w = load_config(), load_weights()
    k_w = w["model.layers.0.self_attn.k_proj.weight"]  # [3 * 64, 576]
    v_w = w["model.layers.0.self_attn.v_proj.weight"]
    to_mha = lambda t: t.view(3, 1, 64, -1).expand(3, 3, 64, t.shape[1]).reshape(9 * 64, -1)  # noqa: E731
    k_back, v_back = convert_mha_to_gqa(to_mha(k_w), to_mha(v_w), n_heads=9, n_groups=3)
    assert_close(k_back, k_w, atol=1e-6, what="K of SmolLM2 layer 0, to MHA and back",
                 reference="the original 3 KV heads")
    assert_close(v_back, v_w, atol=1e-6, what="V of SmolLM2 layer 0, to MHA and back",
                 reference="the original 3 KV heads")
