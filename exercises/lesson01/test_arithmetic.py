"""Lesson 01, part 1: counting parameters and FLOPs. Run: pytest exercises/lesson01"""

import dataclasses

import pytest

from course.config import LLAMA2_7B, SMOLLM2_135M, tiny
from course.model import random_weights
from exercises.lesson01.arithmetic import flops_per_token, param_count


def stored_numbers(weights):
    """Parameters as stored: a tensor that appears under two names (tied) counts once."""
    unique = {id(t): t for t in weights.values()}
    return sum(t.numel() for t in unique.values())


def test_smollm2_has_134_515_008_parameters():
    # HF transformers' LlamaForCausalLM for this model reports the same number.
    assert param_count(SMOLLM2_135M) == 134_515_008


@pytest.mark.parametrize("tied", [False, True])
def test_param_count_equals_numel_of_random_weights(tied):
    cfg = dataclasses.replace(tiny(n_kv_heads=1), tie_embeddings=tied)
    assert param_count(cfg) == stored_numbers(random_weights(cfg))


def test_llama2_7b_is_6_74_billion():
    # Touvron et al. 2023 call it "7B"; the exact count is 6,738,415,616.
    assert param_count(LLAMA2_7B) == 6_738_415_616


def test_flops_per_token_of_the_docstring_example():
    assert flops_per_token(tiny(), 10) == 185_344


def test_each_extra_context_token_adds_attention_flops():
    cfg = tiny()
    step = flops_per_token(cfg, 11) - flops_per_token(cfg, 10)
    assert step == 4 * cfg.n_layers * cfg.n_heads * cfg.d_head, (
        "one more key to attend to costs 2 * d_head FLOPs for q.k and 2 * d_head for the "
        "weighted value, per query head and layer")
