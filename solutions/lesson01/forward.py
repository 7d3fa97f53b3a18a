"""A Llama forward pass from its weights: one decoder layer, then the whole model.

Weights use HF transformers' names (``course.model.weight_shapes``); a linear weight is
``[d_out, d_in]`` and is applied as ``x @ w.T``. One decoder layer is pre-norm:

    h = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = rms_norm(x)
    out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))                    n2 = rms_norm(h)

Attention is causal (a token sees itself and earlier tokens of the same call) with grouped
query heads: query head ``j`` reads KV head ``j // (n_heads // n_kv_heads)``.

Read: learning/lesson01.md#one-decoder-layer
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course.config import LlamaConfig

from .layers import apply_rope, rms_norm, rope_cos_sin

LAYER_KEYS = ("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
              "self_attn.v_proj.weight", "self_attn.o_proj.weight",
              "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
              "mlp.down_proj.weight")


def layer_weights(weights: dict[str, torch.Tensor], layer: int) -> dict[str, torch.Tensor]:
    """The weights of layer ``layer`` with the prefix ``model.layers.{layer}.`` removed."""
    prefix = f"model.layers.{layer}."
    missing = [k for k in LAYER_KEYS if prefix + k not in weights]
    if missing:
        raise ValueError(f"weights have no {prefix}{missing[0]} (and {len(missing) - 1} more "
                         "missing for this layer); expected HF transformers' names")
    return {k: weights[prefix + k] for k in LAYER_KEYS}


def decoder_layer(x: torch.Tensor, lw: dict[str, torch.Tensor], cfg: LlamaConfig,
                  positions: torch.Tensor) -> torch.Tensor:
    """One pre-norm Llama decoder layer over a whole sequence (causal self-attention).

    Args:
        x: ``[batch, T, d_model]``, the residual stream entering the layer.
        lw: this layer's weights, keys as in ``LAYER_KEYS`` (see ``layer_weights``).
        cfg: the model's shape (heads, ``d_head``, ``rope_theta``, ``rms_eps``).
        positions: ``[T]`` int, absolute positions of the T tokens (RoPE angles).
    Returns:
        ``[batch, T, d_model]`` in ``x.dtype``, the residual stream leaving the layer.

    About 15 lines. ``F.scaled_dot_product_attention(q, k, v, is_causal=True,
    enable_gqa=True)`` takes q ``[batch, n_heads, T, d_head]`` and k, v
    ``[batch, n_kv_heads, T, d_head]``. Use your ``rms_norm``, ``rope_cos_sin``, ``apply_rope``.

    Speed is graded on a GPU: at 4096 tokens in bf16 the layer must reach half the rate of
    the device's best bf16 matrix product measured in the same run (no float32, no Python loops
    over heads).

    Read: learning/lesson01.md#one-decoder-layer
    """
    if x.dim() != 3 or x.shape[-1] != cfg.d_model:
        raise ValueError(f"x must be [batch, T, d_model={cfg.d_model}], got {tuple(x.shape)}")
    if positions.shape != (x.shape[1],):
        raise ValueError(f"positions must be [T={x.shape[1]}], got {tuple(positions.shape)}")
    ### BEGIN SOLUTION
    batch, T, _ = x.shape
    cos, sin = rope_cos_sin(positions, cfg.d_head, cfg.rope_theta)

    def heads(name: str, n: int) -> torch.Tensor:  # [batch, T, n * d_head] -> [batch, n, T, d_head]
        return (h @ lw[name].T).view(batch, T, n, cfg.d_head).transpose(1, 2)

    h = rms_norm(x, lw["input_layernorm.weight"], cfg.rms_eps)
    q = apply_rope(heads("self_attn.q_proj.weight", cfg.n_heads), cos, sin)
    k = apply_rope(heads("self_attn.k_proj.weight", cfg.n_kv_heads), cos, sin)
    v = heads("self_attn.v_proj.weight", cfg.n_kv_heads)
    attn = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                          enable_gqa=cfg.n_heads != cfg.n_kv_heads)
    attn = attn.transpose(1, 2).reshape(batch, T, cfg.n_heads * cfg.d_head)
    x = x + attn @ lw["self_attn.o_proj.weight"].T
    h = rms_norm(x, lw["post_attention_layernorm.weight"], cfg.rms_eps)
    gate, up = h @ lw["mlp.gate_proj.weight"].T, h @ lw["mlp.up_proj.weight"].T
    return x + (F.silu(gate) * up) @ lw["mlp.down_proj.weight"].T
    ### END SOLUTION


def llama_forward(weights: dict[str, torch.Tensor], cfg: LlamaConfig,
                  input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of every position for a batch of equal-length token sequences.

    Args:
        weights: HF-named tensors (``model.embed_tokens.weight``, ``model.layers.{i}.*``,
            ``model.norm.weight``, ``lm_head.weight``), e.g. from ``course.model.load_weights()``.
        cfg: the model's shape.
        input_ids: ``[batch, T]`` int64, tokens at positions ``0 .. T-1``.
    Returns:
        ``[batch, T, vocab_size]`` in the weights' dtype: ``logits[b, t]`` scores the token
        that follows ``input_ids[b, :t + 1]``.

    Embedding lookup, ``cfg.n_layers`` decoder layers, final RMSNorm, output projection.
    About 6 lines.

    Read: learning/lesson01.md#the-whole-forward-pass
    """
    if input_ids.dim() != 2 or input_ids.dtype.is_floating_point:
        raise ValueError(f"input_ids must be an integer [batch, T] tensor, got {input_ids.dtype} "
                         f"of shape {tuple(input_ids.shape)}")
    if cfg.arch != "llama":
        raise ValueError(f"{cfg.name} is a '{cfg.arch}' model: its config is for arithmetic only")
    ### BEGIN SOLUTION
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    x = weights["model.embed_tokens.weight"][input_ids]
    for i in range(cfg.n_layers):
        x = decoder_layer(x, layer_weights(weights, i), cfg, positions)
    x = rms_norm(x, weights["model.norm.weight"], cfg.rms_eps)
    return x @ weights["lm_head.weight"].T
    ### END SOLUTION
