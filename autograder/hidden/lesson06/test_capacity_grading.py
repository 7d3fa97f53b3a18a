"""Hidden grader, lesson 06: parameter counts, weight bytes and KV bytes per token.

References: the tensor shapes of course.model.weight_shapes (summed here), HF transformers'
LlamaForCausalLM built on the meta device (no memory, no download), and the KV formula
2 x n_layers x n_kv_heads x d_head x bytes per element.
"""

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from course.config import LLAMA2_7B, LLAMA3_8B, SMOLLM2_135M, tiny
from course.model import weight_shapes
from exercises.lesson06.capacity import kv_bytes_per_token, num_params, weights_bytes

configs = st.builds(
    lambda layers, n_kv, group, d_head, ff, vocab, tied: _with_tie(
        tiny(n_layers=layers, d_model=n_kv * group * d_head, n_heads=n_kv * group,
             n_kv_heads=n_kv, d_ff=ff, vocab_size=vocab), tied),
    layers=st.integers(1, 4), n_kv=st.integers(1, 4), group=st.integers(1, 4),
    d_head=st.sampled_from([2, 4, 8]), ff=st.integers(1, 97), vocab=st.integers(1, 301),
    tied=st.booleans())


def _with_tie(cfg, tied):
    import dataclasses

    return dataclasses.replace(cfg, tie_embeddings=tied)


def count_from_shapes(cfg):
    shapes = weight_shapes(cfg)
    if cfg.tie_embeddings:
        shapes.pop("lm_head.weight")
    return sum(math.prod(s) for s in shapes.values())


@pytest.mark.points(2)
@given(cfg=configs)
def test_num_params_equals_sum_of_weight_shapes(cfg):
    """Bugs: K/V projections sized for n_heads instead of n_kv_heads; a tied embedding
    counted twice; the RMSNorm weights forgotten; a two-matrix MLP instead of SwiGLU's three."""
    want = count_from_shapes(cfg)
    got = num_params(cfg)
    assert got == want, (f"num_params({cfg.name}, tied={cfg.tie_embeddings}) = {got:,}; the "
                         f"model's weight tensors hold {want:,} numbers")


@pytest.mark.points(1)
@pytest.mark.parametrize("cfg", [SMOLLM2_135M, LLAMA2_7B, LLAMA3_8B],
                         ids=["smollm2-135m", "llama2-7b", "llama3-8b"])
def test_num_params_equals_hf_transformers(cfg):
    """Bug: a formula that misses a whole kind of tensor (final norm, output head) on the
    published models, checked against HF's own model class built without memory."""
    transformers = pytest.importorskip("transformers")
    import torch

    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.d_head,
        tie_word_embeddings=cfg.tie_embeddings)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(hf_cfg)
    want = sum(p.numel() for p in model.parameters())  # parameters() yields a tied one once
    assert num_params(cfg) == want, f"{cfg.name}: {num_params(cfg):,} vs HF {want:,}"


# 30 parameters and 2 x 1 x 1 x 2 = 4 KV numbers per token: 0.625 B each gives 18.75 and 2.5 B
ODD = _with_tie(tiny(n_layers=1, d_model=2, n_heads=1, n_kv_heads=1, d_ff=1, vocab_size=1), True)


@pytest.mark.points(1)
@example(cfg=ODD, fmt=0.625)
@given(cfg=configs, fmt=st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8", "int4",
                                         0.625, 0.5, 1.5]))
def test_bytes_round_up_and_follow_the_formula(cfg, fmt):
    """Bugs: KV bytes without the factor 2 for K and V, or with n_heads instead of n_kv_heads;
    truncating fractional bytes (4-bit formats) instead of rounding up."""
    per = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}.get(fmt, fmt)
    from fractions import Fraction

    exact = Fraction(per)
    want_w = math.ceil(count_from_shapes(cfg) * exact)
    want_kv = math.ceil(2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * exact)
    assert weights_bytes(cfg, fmt) == want_w, \
        f"weights_bytes({cfg.name}, {fmt!r}) = {weights_bytes(cfg, fmt)}, expected {want_w}"
    assert kv_bytes_per_token(cfg, fmt) == want_kv, (
        f"kv_bytes_per_token({cfg.name}, {fmt!r}) = {kv_bytes_per_token(cfg, fmt)}, expected "
        f"{want_kv} = ceil(2 x {cfg.n_layers} layers x {cfg.n_kv_heads} KV heads x "
        f"{cfg.d_head} x {per} B)")
