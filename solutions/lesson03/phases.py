"""Prefill and decode: the two phases of generation, sharing one KV cache.

Prefill runs the whole prompt through the model in one forward pass and keeps every layer's
keys and values; decode then runs ONE new token per step, attending over the cached keys and
values plus its own. The cache is a list with one ``(k, v)`` pair per layer, each
``[batch, n_kv_heads, cached_tokens, d_head]`` (the layout of HF transformers' Llama).

Invariant: prefill of ``ids[:, :T]`` followed by decode steps of ``ids[:, T]``, ``ids[:, T+1]``,
... gives, at every step, the logits that a full forward of the whole sequence gives at that
position (HF transformers' ``LlamaForCausalLM`` on the same weights), up to float rounding.

Read: learning/lesson03.md#one-forward-two-phases
"""

from __future__ import annotations

import torch

from course.config import LlamaConfig
from course.cached_attention import attend, project_qkv
from course.hf_layers import hf_mlp, hf_rms_norm, hf_rope_cos_sin

Weights = dict[str, torch.Tensor]
Cache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (k, v): [B, n_kv_heads, S, d_head]


# ----------------------------------------------------------------------------- given helpers
# project_qkv and attend (the projections, RoPE and causal attention over cached-then-new
# keys) come from course.cached_attention; hf_rms_norm, hf_rope_cos_sin and hf_mlp (the
# layer's other pieces, from torch and HF transformers) from course.hf_layers.




def cache_length(cache: Cache) -> int:
    """Tokens held in the cache (0 for an empty one)."""
    return cache[0][0].shape[2] if cache else 0


def _check_ids(input_ids: torch.Tensor, cfg: LlamaConfig, cache: Cache) -> None:
    if input_ids.dim() != 2 or input_ids.dtype.is_floating_point:
        raise ValueError(f"input_ids must be an integer tensor [batch, tokens], got shape "
                         f"{tuple(input_ids.shape)} and dtype {input_ids.dtype}")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids holds no tokens: there is nothing to run")
    if cache and (len(cache) != cfg.n_layers or cache[0][0].shape[0] != input_ids.shape[0]):
        raise ValueError(f"the cache has {len(cache)} layers and batch {cache[0][0].shape[0]}; "
                         f"expected {cfg.n_layers} layers and batch {input_ids.shape[0]}")


# ----------------------------------------------------------------------------- what you write


def run_layers(weights: Weights, cfg: LlamaConfig, input_ids: torch.Tensor,
               cache: Cache) -> tuple[torch.Tensor, Cache]:
    """Run new tokens through every decoder layer, continuing the sequence in ``cache``.

    Args:
        input_ids: ``[B, T]`` int, the T new tokens of each of B sequences.
        cache: per layer ``(k, v)``, each ``[B, n_kv_heads, S, d_head]`` for S cached tokens;
            ``[]`` for an empty cache (then S = 0).
    Returns:
        ``(hidden, new_cache)``: hidden ``[B, T, d_model]`` after the final RMSNorm
        (``model.norm.weight``), and a NEW list whose layer ``i`` holds the old keys/values
        followed by the T new ones, ``[B, n_kv_heads, S + T, d_head]``.
        The ``cache`` argument is not modified (a caller may branch from it twice).
        Every new tensor lives on ``input_ids``' device (build positions there too).

    The new tokens sit at positions ``S .. S + T - 1``: RoPE must rotate them by those
    angles, not from 0. Per layer: ``h = hf_rms_norm(x, input_layernorm)``, ``project_qkv``,
    join the cached k/v with the new ones, ``x += attend(...)``, then
    ``x += hf_mlp(w, p + "mlp.", hf_rms_norm(x, post_attention_layernorm))``. About 15 lines;
    your lesson 01 ``llama_forward`` is the same loop with no cache.

    Read: learning/lesson03.md#one-forward-two-phases
    """
    _check_ids(input_ids, cfg, cache)
    ### BEGIN SOLUTION
    # hint: positions = torch.arange(S, S + T, device=input_ids.device)
    #       cos, sin = hf_rope_cos_sin(cfg, positions)
    start = cache_length(cache)
    positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)
    x = weights["model.embed_tokens.weight"][input_ids]
    cos, sin = (t.to(x.dtype) for t in hf_rope_cos_sin(cfg, positions))
    new_cache: Cache = []
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        h = hf_rms_norm(x, weights[p + "input_layernorm.weight"], cfg.rms_eps)
        q, k, v = project_qkv(weights, p + "self_attn.", cfg, h, cos, sin)
        if cache:
            k = torch.cat([cache[i][0], k], dim=2)
            v = torch.cat([cache[i][1], v], dim=2)
        new_cache.append((k, v))
        x = x + attend(weights, p + "self_attn.", cfg, q, k, v)
        h = hf_rms_norm(x, weights[p + "post_attention_layernorm.weight"], cfg.rms_eps)
        x = x + hf_mlp(weights, p + "mlp.", h)
    return hf_rms_norm(x, weights["model.norm.weight"], cfg.rms_eps), new_cache
    ### END SOLUTION


def prefill(weights: Weights, cfg: LlamaConfig,
            input_ids: torch.Tensor) -> tuple[torch.Tensor, Cache]:
    """Run the whole prompt once; return the next-token logits and the filled cache.

    Args:
        input_ids: ``[B, T]`` int, the prompts (all of length T, no padding).
    Returns:
        ``(logits_last, cache)``: ``[B, vocab_size]``, the logits at the LAST prompt position
        (they choose the first generated token), and the cache of all T tokens.

    Only the last position's logits are needed: project only that row through
    ``lm_head.weight`` (``[vocab, d_model]``); for a long prompt the other T - 1 rows would
    cost ``2 * (T - 1) * vocab * d_model`` FLOPs per sequence for nothing. About 3 lines.

    Read: learning/lesson03.md#one-forward-two-phases
    """
    ### BEGIN SOLUTION
    hidden, cache = run_layers(weights, cfg, input_ids, [])
    return hidden[:, -1] @ weights["lm_head.weight"].T, cache
    ### END SOLUTION


def decode_step(weights: Weights, cfg: LlamaConfig, token: torch.Tensor,
                cache: Cache) -> tuple[torch.Tensor, Cache]:
    """One decode step: run one new token per sequence against the cache.

    Args:
        token: ``[B]`` int, the newest token of each sequence.
        cache: from ``prefill`` or an earlier ``decode_step``, S tokens per layer.
    Returns:
        ``(logits, cache)``: ``[B, vocab_size]`` for the next token, and the cache with
        S + 1 tokens. The cache passed in is left as it was.

    Example (greedy generation)::

        logits, cache = prefill(w, cfg, ids)
        for _ in range(n):
            token = logits.argmax(-1)
            logits, cache = decode_step(w, cfg, token, cache)

    About 3 lines.

    Speed is part of this task: on a GPU a hidden grader captures one step in a CUDA graph and
    times its replay against the time to read the weights once (bf16, only the new token, the
    cache reused). Keep the step free of host synchronisation (``.item()``, ``.cpu()``,
    printing a tensor, a tensor built on the CPU and moved over): a step that cannot be
    captured fails that grader, as real engines capture their decode steps.

    Read: learning/lesson03.md#one-forward-two-phases
    """
    if token.dim() != 1:
        raise ValueError(f"token must be [batch], one id per sequence; got shape {tuple(token.shape)}")
    if not cache:
        raise ValueError("decode_step needs a filled cache: run prefill first")
    ### BEGIN SOLUTION
    hidden, cache = run_layers(weights, cfg, token[:, None], cache)
    return hidden[:, -1] @ weights["lm_head.weight"].T, cache
    ### END SOLUTION
