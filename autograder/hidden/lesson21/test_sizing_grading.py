"""Hidden grader, lesson 21: total and active parameters, and the bytes of expert parallelism.

Parameters are checked against HF transformers' ``MixtralForCausalLM`` built on the meta
device (no memory, no download): total = every parameter of the model, active = total minus
``n_experts - top_k`` experts' parameters in every layer, an expert's count read from the
model's own expert tensors. Bytes are checked against the formula of the lesson.
"""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.moe import MIXTRAL_8X7B, MoEConfig
from exercises.lesson21.sizing import ep_all_to_all_bytes, moe_params


def hf_counts(cfg):
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.MixtralConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.d_head,
        num_local_experts=cfg.n_experts, num_experts_per_tok=cfg.top_k,
        tie_word_embeddings=cfg.tie_embeddings)
    with torch.device("meta"):
        model = transformers.MixtralForCausalLM(hf_cfg)
    total = sum(p.numel() for p in model.parameters())  # a tied matrix is yielded once
    experts = model.model.layers[0].mlp.experts
    per_expert = sum(p.numel() for p in experts.parameters()) // cfg.n_experts
    return total, total - cfg.n_layers * (cfg.n_experts - cfg.top_k) * per_expert


configs = st.builds(
    lambda layers, kv, group, d_head, d_ff, vocab, experts, k, tie: MoEConfig(
        "random", n_layers=layers, d_model=kv * group * d_head, n_heads=kv * group,
        n_kv_heads=kv, d_head=d_head, d_ff=d_ff, vocab_size=vocab, n_experts=experts,
        top_k=min(k, experts), tie_embeddings=tie),
    layers=st.integers(1, 3), kv=st.integers(1, 3), group=st.integers(1, 3),
    d_head=st.sampled_from([2, 4]), d_ff=st.integers(1, 12), vocab=st.integers(1, 40),
    experts=st.integers(1, 6), k=st.integers(1, 6), tie=st.booleans())


@pytest.mark.points(3)
@settings(max_examples=8, deadline=None)
@example(cfg=MoEConfig("top1-tied", 2, 8, 2, 1, 4, 6, 11, n_experts=4, top_k=1,
                       tie_embeddings=True))
@example(cfg=MoEConfig("all-active", 1, 4, 2, 2, 2, 3, 5, n_experts=3, top_k=3))
@given(cfg=configs)
def test_moe_params_equal_hf_mixtral(cfg):
    """Bugs: active parameters counting all experts (or only the experts, without attention and
    embeddings); the router, the norms or the output projection left out; the output
    projection counted when the embeddings are tied; n_heads used for the K/V projections."""
    total, active = moe_params(cfg)
    want_total, want_active = hf_counts(cfg)
    assert (total, active) == (want_total, want_active), (
        f"{cfg}: moe_params = (total {total:,}, active {active:,}); HF MixtralForCausalLM has "
        f"{want_total:,} parameters, {want_active:,} of them used by one token")


@pytest.mark.points(1)
def test_mixtral_8x7b_exactly():
    """Bug: any of the above on the real shape: Mixtral-8x7B has 46,702,792,704 parameters,
    12,879,925,248 active (bf16: 93.4 GB resident, 25.8 GB read per token at batch 1)."""
    assert moe_params(MIXTRAL_8X7B) == (46_702_792_704, 12_879_925_248) == hf_counts(MIXTRAL_8X7B)


@pytest.mark.points(2)
@settings(max_examples=30)
@example(n_tokens=0, k=2, d_model=8, ep=4, dtype_bytes=2)
@example(n_tokens=7, k=2, d_model=16, ep=1, dtype_bytes=2)
@example(n_tokens=3, k=1, d_model=5, ep=3, dtype_bytes=4)
@given(n_tokens=st.integers(0, 5000), k=st.integers(1, 8), d_model=st.integers(1, 8192),
       ep=st.integers(1, 64), dtype_bytes=st.sampled_from([1, 2, 4]))
def test_all_to_all_bytes_formula(n_tokens, k, d_model, ep, dtype_bytes):
    """Bugs: counting the assignments that stay on the rank (no (ep - 1) / ep); counting one
    vector per token instead of per assignment (k left out); bits instead of bytes; dispatch
    and combine counted together; ep = 1 not giving 0."""
    got = ep_all_to_all_bytes(n_tokens, k, d_model, ep, dtype_bytes)
    want = n_tokens * k * d_model * dtype_bytes * (ep - 1) / ep
    assert abs(got - want) <= 1e-9 * max(want, 1.0), (
        f"ep_all_to_all_bytes({n_tokens} tokens, k={k}, d_model={d_model}, ep={ep}, "
        f"{dtype_bytes} B) = {got}, expected tokens x k x d_model x bytes x (ep - 1) / ep = {want}")
