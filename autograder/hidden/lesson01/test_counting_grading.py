"""Hidden grader, lesson 01: parameter and FLOP counts against independent counts.

Parameters are checked against the numel of real tensors (the real SmolLM2 weights, HF
transformers' module, seeded random weights of many shapes); FLOPs against torch's
FlopCounterMode on a real decode step of the course's reference Llama, with attention forced
onto the math path so that its two matrix products are counted.
"""

import dataclasses

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel

from course.config import LLAMA2_7B, LLAMA3_8B, LlamaConfig
from course.counting import count_flops_by_op
from course.llama_reference import llama_forward as reference_forward
from course.model import random_weights
from exercises.lesson01.arithmetic import flops_per_token, param_count


def stored_numbers(weights):
    unique = {id(t): t for t in weights.values()}
    return sum(t.numel() for t in unique.values())


configs = st.builds(
    lambda layers, heads, group, d_head, ff, vocab, tied: LlamaConfig(
        name="random", n_layers=layers, d_model=heads * d_head, n_heads=heads,
        n_kv_heads=heads // group, d_head=d_head, d_ff=ff, vocab_size=vocab, rope_theta=1e4,
        rms_eps=1e-5, tie_embeddings=tied, max_position=64),
    st.integers(1, 3), st.sampled_from([2, 4, 6]), st.sampled_from([1, 2]),
    st.sampled_from([2, 4, 8]), st.integers(3, 40), st.integers(5, 70), st.booleans())


@pytest.mark.points(2)
@given(cfg=configs)
def test_param_count_equals_numel_for_any_shape(cfg):
    """Bugs: tied embeddings counted twice (or an untied head forgotten), K/V projections sized
    with n_heads instead of n_kv_heads, the two RMSNorm vectors per layer or the final norm
    left out, an MLP with two matrices instead of SwiGLU's three."""
    assert param_count(cfg) == stored_numbers(random_weights(cfg)), (
        f"param_count({cfg}) = {param_count(cfg):,} but the model's tensors hold "
        f"{stored_numbers(random_weights(cfg)):,} numbers")


@pytest.mark.points(1)
def test_published_sizes():
    """Bug: any term of the count wrong at real sizes (Llama-2-7B is MHA and untied; Llama-3-8B
    has 8 KV heads and a 128,256-token vocabulary). Values: sum of numel of the HF models."""
    assert param_count(LLAMA2_7B) == 6_738_415_616
    assert param_count(LLAMA3_8B) == 8_030_261_248


@pytest.mark.model
@pytest.mark.points(1)
def test_param_count_of_the_real_model():
    """Bug: tied embeddings counted twice - SmolLM2's output projection is its embedding.
    Reference: the parameters of HF transformers' module loaded from the same file."""
    from course.model import load_config, load_hf_model

    hf_count = sum(p.numel() for p in load_hf_model().parameters())  # shared tensors once
    assert param_count(load_config()) == hf_count == 134_515_008


def decode_step_flops(cfg, context_len, seed=0):
    """FLOPs FlopCounterMode sees for one decode step with context_len keys in total."""
    weights = random_weights(cfg, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    cache = []
    if context_len > 1:
        reference_forward(weights, cfg, torch.randint(0, cfg.vocab_size, (1, context_len - 1),
                                                      generator=gen), cache)
    new = torch.randint(0, cfg.vocab_size, (1, 1), generator=gen)
    with sdpa_kernel([SDPBackend.MATH]):
        return count_flops_by_op(lambda: reference_forward(weights, cfg, new, cache or None))


@pytest.mark.points(3)
@given(cfg=configs, context_len=st.integers(1, 24))
def test_flops_per_token_equals_flop_counter(cfg, context_len):
    """Bugs: the attention term missing (2 x parameters only), attention counted with n_kv_heads
    or d_model instead of n_heads x d_head, only one of attention's two products counted, the
    output projection left out for tied embeddings (a lookup is free, the matmul is not), the
    embedding lookup counted as a matmul."""
    by_op = decode_step_flops(cfg, context_len)
    want = sum(by_op.values())
    got = flops_per_token(cfg, context_len)
    assert got == want, (
        f"flops_per_token(cfg, {context_len}) = {got:,}; FlopCounterMode counts {want:,} for "
        f"one decode step of {cfg} ({by_op}: aten.mm is the projections, aten.bmm attention)")


@pytest.mark.points(1)
def test_flops_at_long_context_are_dominated_by_attention_as_expected():
    """Bug: attention scaled with context_len squared, or with d_model for a GQA model whose
    n_heads x d_head differs from d_model. Llama-3-8B at 8192 tokens, formula by hand."""
    cfg = dataclasses.replace(LLAMA3_8B, d_head=64)  # n_heads * d_head = 2048 != d_model
    got = flops_per_token(cfg, 8192) - flops_per_token(cfg, 1)
    assert got == 4 * cfg.n_layers * cfg.n_heads * 64 * 8191


@pytest.mark.points(1)
def test_counts_are_ints_and_use_n_heads_times_d_head():
    """Bugs: the K/V width written as d_model x n_kv_heads / n_heads (a float, and wrong when
    n_heads x d_head != d_model); any ``/`` that makes a count a float. Both docstrings
    promise an int; ``==`` alone would accept 134515008.0."""
    cfg = LlamaConfig(name="narrow heads", n_layers=2, d_model=48, n_heads=4, n_kv_heads=2,
                      d_head=16, d_ff=40, vocab_size=50, rope_theta=1e4, rms_eps=1e-5,
                      tie_embeddings=False, max_position=64)  # n_heads x d_head = 64 != 48
    count = param_count(cfg)
    assert type(count) is int, f"param_count returned a {type(count).__name__}, not an int"
    assert count == stored_numbers(random_weights(cfg)), (
        f"param_count = {count:,} for a model whose n_heads x d_head (64) is not d_model (48); "
        f"its tensors hold {stored_numbers(random_weights(cfg)):,} numbers")
    for c in (cfg, LLAMA3_8B):
        flops = flops_per_token(c, 7)
        assert type(flops) is int, f"flops_per_token returned a {type(flops).__name__}, not an int"
