"""Lesson 01, part 3: one decoder layer and the whole forward pass. Run: pytest exercises/lesson01"""

import dataclasses

import pytest
import torch

from course.config import tiny
from course.model import hf_model_from_weights, random_weights
from course.testing import assert_close
from exercises.lesson01.forward import decoder_layer, layer_weights, llama_forward

REFERENCE = "HF transformers' LlamaForCausalLM on the same weights"


@torch.no_grad()
def reference_forward(weights, cfg, ids):
    return hf_model_from_weights(cfg, weights)(ids).logits


def test_one_layer_keeps_the_shape_and_is_causal():
    cfg = tiny()
    lw = layer_weights(random_weights(cfg), 0)
    x = torch.randn(1, 6, cfg.d_model, generator=torch.Generator().manual_seed(0))
    out = decoder_layer(x, lw, cfg, torch.arange(6))
    assert out.shape == x.shape
    x2 = x.clone()
    x2[0, 4:] += 1.0  # changing later tokens must not change earlier outputs
    out2 = decoder_layer(x2, lw, cfg, torch.arange(6))
    assert_close(out2[0, :4], out[0, :4], atol=1e-6, what="outputs of tokens 0-3",
                 reference="the same layer before tokens 4-5 changed (causal attention)")


@pytest.mark.parametrize("n_kv_heads,tied", [(2, False), (4, False), (1, True)])
def test_forward_matches_the_reference_on_a_tiny_model(n_kv_heads, tied):
    cfg = dataclasses.replace(tiny(n_kv_heads=n_kv_heads), tie_embeddings=tied)
    weights = random_weights(cfg, seed=3)
    ids = torch.randint(0, cfg.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    assert_close(llama_forward(weights, cfg, ids), reference_forward(weights, cfg, ids),
                 atol=1e-4, rtol=1e-4, what="llama_forward logits", reference=REFERENCE)
