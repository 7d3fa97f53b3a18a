"""Generation on a preallocated KV cache: prefill once, then O(1)-in-prompt-length steps.

A decode step runs only the newest token through the layers; the keys and values of every
earlier token come from the cache. Its linear-layer FLOPs are ``2 x n_params`` per sequence
whatever the prompt length; only attention grows, by ``4 x n_layers x n_heads x d_head`` FLOPs
per cached token. Re-running the whole sequence at every step instead costs ``2 x n_params``
per token of the sequence: for a 1000-token prompt, a thousand times more.

Read: learning/lesson04.md#why-the-cache-pays
"""

from __future__ import annotations

import torch

from course.config import LlamaConfig
from course.cached_attention import attend, project_qkv
from course.hf_layers import hf_mlp, hf_rms_norm, hf_rope_cos_sin

from .kv_cache import KVCache

Weights = dict[str, torch.Tensor]




def forward_cached(weights: Weights, cfg: LlamaConfig, input_ids: torch.Tensor,
                   cache: KVCache) -> torch.Tensor:
    """Run T new tokens after the ``cache.length(0)`` tokens the cache holds; return the
    next-token logits ``[B, vocab_size]`` (last position only), in the weights' dtype.

    Per layer: normalise (``hf_rms_norm``), ``project_qkv`` at positions ``n .. n + T - 1``
    (n = tokens cached before this call; tables from ``hf_rope_cos_sin``), ``cache.append``
    the new k and v, ``attend`` over ``cache.get(layer)``, then the MLP block (``hf_mlp``). Finally the last position through ``model.norm`` and ``lm_head``.
    About 15 lines. Works for a prompt (T tokens, empty cache) and a decode step (T = 1).

    Read: learning/lesson04.md#why-the-cache-pays
    """
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must be [batch, tokens] with tokens >= 1, got "
                         f"{tuple(input_ids.shape)}")
    if len(cache.lengths) != cfg.n_layers:
        raise ValueError(f"the cache has {len(cache.lengths)} layers, the model {cfg.n_layers}")
    raise NotImplementedError('lesson04: forward_cached - read learning/lesson04.md#why-the-cache-pays')


@torch.no_grad()
def generate_greedy(weights: Weights, cfg: LlamaConfig, input_ids: torch.Tensor,
                    max_new: int, cache: KVCache) -> torch.Tensor:
    """Greedy generation: ``[B, T]`` prompt -> ``[B, T + max_new]`` ids.

    One ``forward_cached`` over the prompt (the cache must be empty), then one call per new
    token with just that token: ``max_new`` argmax picks in all, ``max_new - 1`` decode steps
    (the last token picked is never run). Never re-run tokens the cache already holds.
    About 8 lines.

    Read: learning/lesson04.md#why-the-cache-pays
    """
    if cache.length(0) != 0:
        raise ValueError("generate_greedy needs an empty cache (call cache.reset() first)")
    if max_new < 0:
        raise ValueError(f"max_new must be >= 0, got {max_new}")
    if max_new == 0:
        return input_ids.clone()
    raise NotImplementedError('lesson04: generate_greedy - read learning/lesson04.md#why-the-cache-pays')
