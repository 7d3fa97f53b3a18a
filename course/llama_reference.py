"""A compact pure-torch Llama forward: the course's internal oracle (not a learner stub).

Instructors only. It is the answer to lesson 01 and most of lesson 03, so ``autograder
release`` leaves it out (``autograder.release.INSTRUCTOR_ONLY``) and refuses a release in
which anything imports it. The hidden graders use it; visible tests compare with HF
transformers (``course.model.hf_model_from_weights``) and the stubs of later lessons take
their given layer pieces from ``course.hf_layers``. Do not import it from a stub or a
visible test.

Pre-norm decoder: x += attn(rmsnorm(x)); x += mlp(rmsnorm(x)); logits = lm_head(rmsnorm(x)).
RoPE uses HF's `rotate_half` layout (channel i pairs with i + d_head/2), attention is causal
GQA through `scaled_dot_product_attention`, the MLP is SwiGLU: down(silu(gate(x)) * up(x)).

Invariant: for the same weights (HF names, see `course.model.weight_shapes`) the logits equal HF
transformers' LlamaForCausalLM up to float rounding, and decoding with a KV cache gives the same
logits as running the whole sequence again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course.config import LlamaConfig

Weights = dict[str, torch.Tensor]
KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (k, v), each [B, n_kv_heads, S, d_head]


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x: [..., d] scaled to unit root-mean-square (computed in float32), times weight: [d]."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def rope_cos_sin(cfg: LlamaConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """positions: [T] int -> cos, sin: [T, d_head], the angle pos * theta^(-2i/d_head) repeated twice."""
    exponents = torch.arange(0, cfg.d_head, 2, device=positions.device).float() / cfg.d_head
    inv_freq = 1.0 / cfg.rope_theta ** exponents
    angles = positions.float()[:, None] * inv_freq[None, :]  # [T, d_head/2], radians
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, T, d_head] rotated pairwise (i, i + d_head/2) by the angles in cos, sin: [T, d_head]."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated_half = torch.cat([-x2, x1], dim=-1)
    return (x * cos + rotated_half * sin).to(x.dtype)


def attention(
    w: Weights, p: str, cfg: LlamaConfig, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
    cache: KVCache | None, layer: int,
) -> torch.Tensor:
    """x: [B, T, d_model] -> [B, T, d_model]; appends this step's K, V to cache[layer] if given."""
    B, T, _ = x.shape

    def heads(name: str, n: int) -> torch.Tensor:  # [B, T, n * d_head] -> [B, n, T, d_head]
        return (x @ w[p + name].T).view(B, T, n, cfg.d_head).transpose(1, 2)

    q = apply_rope(heads("q_proj.weight", cfg.n_heads), cos, sin)
    k = apply_rope(heads("k_proj.weight", cfg.n_kv_heads), cos, sin)
    v = heads("v_proj.weight", cfg.n_kv_heads)
    if cache is not None:
        if layer < len(cache):
            k, v = torch.cat([cache[layer][0], k], dim=2), torch.cat([cache[layer][1], v], dim=2)
            cache[layer] = (k, v)
        else:
            cache.append((k, v))
    S = k.shape[2]  # keys seen so far; query t sits at absolute position S - T + t
    mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=cfg.group_size > 1)
    return out.transpose(1, 2).reshape(B, T, cfg.n_heads * cfg.d_head) @ w[p + "o_proj.weight"].T


def mlp(w: Weights, p: str, x: torch.Tensor) -> torch.Tensor:
    """SwiGLU. x: [B, T, d_model] -> [B, T, d_model] through a hidden width d_ff."""
    gate, up = x @ w[p + "gate_proj.weight"].T, x @ w[p + "up_proj.weight"].T
    return (F.silu(gate) * up) @ w[p + "down_proj.weight"].T


def llama_forward(
    weights: Weights, cfg: LlamaConfig, input_ids: torch.Tensor, cache: KVCache | None = None
) -> torch.Tensor:
    """input_ids: [B, T] int64 -> logits: [B, T, vocab_size] in the weights' dtype.

    With `cache` (a list, empty at the start) the tokens continue the cached sequence: their
    positions start after the cached ones and their K, V are appended. No padding support:
    every row of the batch has the same length.
    """
    if cfg.arch != "llama":
        raise ValueError(f"{cfg.name} is a '{cfg.arch}' model: its config is for arithmetic only")
    start = cache[0][0].shape[2] if cache else 0
    positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
    cos, sin = rope_cos_sin(cfg, positions)
    x = weights["model.embed_tokens.weight"][input_ids]
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        h = rms_norm(x, weights[p + "input_layernorm.weight"], cfg.rms_eps)
        x = x + attention(weights, p + "self_attn.", cfg, h, cos.to(x.dtype), sin.to(x.dtype), cache, i)
        h = rms_norm(x, weights[p + "post_attention_layernorm.weight"], cfg.rms_eps)
        x = x + mlp(weights, p + "mlp.", h)
    x = rms_norm(x, weights["model.norm.weight"], cfg.rms_eps)
    return x @ weights["lm_head.weight"].T


@torch.no_grad()
def greedy_generate(weights: Weights, cfg: LlamaConfig, ids: torch.Tensor, max_new: int) -> torch.Tensor:
    """ids: [B, T] -> [B, T + max_new]: prefill once, then one cached decode step per new token.

    Always produces max_new tokens (no stop on end-of-sequence), argmax at every step.
    """
    cache: KVCache = []
    logits = llama_forward(weights, cfg, ids, cache)
    out = [ids]
    for step in range(max_new):
        next_id = logits[:, -1].argmax(dim=-1, keepdim=True)  # [B, 1]
        out.append(next_id)
        if step + 1 < max_new:
            logits = llama_forward(weights, cfg, next_id, cache)
    return torch.cat(out, dim=1)
