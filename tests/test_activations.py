"""course.activations: the recorded inputs of each linear layer are what the forward pass feeds it."""

import pytest
import torch
import torch.nn.functional as F

from course.activations import linear_inputs, linear_weight_names, next_token_loss
from course.config import tiny
from course.llama_reference import attention, llama_forward, mlp, rms_norm, rope_cos_sin
from course.model import random_weights


@pytest.fixture(scope="module")
def setup():
    cfg = tiny(n_layers=2)
    w = random_weights(cfg, seed=3)
    ids = torch.randint(0, cfg.vocab_size, (2, 7), generator=torch.Generator().manual_seed(4))
    return cfg, w, ids


def test_inputs_of_every_linear_layer_equal_a_hand_written_forward(setup):
    cfg, w, ids = setup
    acts = linear_inputs(w, cfg, ids)
    assert list(acts) == linear_weight_names(cfg) and len(acts) == 7 * cfg.n_layers
    # Layer 0 by hand, from the reference's building blocks.
    p = "model.layers.0."
    cos, sin = rope_cos_sin(cfg, torch.arange(ids.shape[1]))
    x0 = w["model.embed_tokens.weight"][ids]
    h = rms_norm(x0, w[p + "input_layernorm.weight"], cfg.rms_eps)
    x1 = x0 + attention(w, p + "self_attn.", cfg, h, cos, sin, None, 0)
    h2 = rms_norm(x1, w[p + "post_attention_layernorm.weight"], cfg.rms_eps)
    x2 = x1 + mlp(w, p + "mlp.", h2)
    flat = lambda t: t.reshape(-1, t.shape[-1])  # noqa: E731
    for name in ("q_proj", "k_proj", "v_proj"):
        assert torch.allclose(acts[p + f"self_attn.{name}.weight"], flat(h), atol=1e-6), name
    for name in ("gate_proj", "up_proj"):
        assert torch.allclose(acts[p + f"mlp.{name}.weight"], flat(h2), atol=1e-5), name
    gated = F.silu(h2 @ w[p + "mlp.gate_proj.weight"].T) * (h2 @ w[p + "mlp.up_proj.weight"].T)
    assert torch.allclose(acts[p + "mlp.down_proj.weight"], flat(gated), atol=1e-5)
    assert acts[p + "self_attn.o_proj.weight"].shape == (ids.numel(), cfg.n_heads * cfg.d_head)
    h_next = rms_norm(x2, w["model.layers.1.input_layernorm.weight"], cfg.rms_eps)
    assert torch.allclose(acts["model.layers.1.self_attn.q_proj.weight"], flat(h_next), atol=1e-5)


def test_recording_changes_nothing_and_names_are_checked(setup):
    cfg, w, ids = setup
    before = {k: v.clone() for k, v in w.items()}
    some = ["model.layers.1.mlp.down_proj.weight"]
    assert list(linear_inputs(w, cfg, ids[0], some)) == some  # [tokens] is a batch of one
    assert all(torch.equal(before[k], w[k]) for k in w)
    with pytest.raises(ValueError, match="no weight named"):
        linear_inputs(w, cfg, ids, ["model.layers.0.mlp.gate"])
    loss = next_token_loss(w, cfg, ids)
    logits = llama_forward(w, cfg, ids)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
    assert loss == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.model
def test_real_model_inputs_have_the_layer_widths():
    from course.model import load_config, load_weights

    cfg, w = load_config(), load_weights()
    names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.29.mlp.down_proj.weight"]
    acts = linear_inputs(w, cfg, torch.arange(1, 9), names)
    assert acts[names[0]].shape == (8, cfg.d_model) and acts[names[1]].shape == (8, cfg.d_ff)
