"""Given building blocks of a Llama layer, taken from independent libraries.

Lessons 03, 04 and 19 have the learner write the plumbing around a decoder layer (the KV
cache, the prefill and decode steps, the tensor-parallel blocks); the layer's pieces are
given. They come from libraries, never from course code: RMSNorm from torch
(``torch.nn.functional.rms_norm``), the RoPE tables, the rotation and the SwiGLU MLP from HF
transformers' Llama (``LlamaRotaryEmbedding``, ``apply_rotary_pos_emb``, ``LlamaMLP``). So the
student release holds no implementation of lesson 01's functions, and a bug in a learner's
lesson 01 costs lesson 01's points only, not those of later lessons.

Every function here uses HF transformers' layout: RoPE pairs channel ``i`` with
``i + d_head/2`` (``rotate_half``), weights carry HF names (``course.model.weight_shapes``).
Transformers comes with the course's ``model`` extra; it is imported on first use (a few
seconds) and its absence is reported with the command that installs it.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from course.config import LlamaConfig

Weights = dict[str, torch.Tensor]


@functools.lru_cache(maxsize=1)
def _modeling_llama() -> Any:
    from course.model import _require

    _require("transformers")
    from transformers.models.llama import modeling_llama

    return modeling_llama


def hf_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of ``x: [..., d]`` with gain ``weight: [d]``, computed as HF's ``LlamaRMSNorm``
    does: normalised in float32 (by ``torch.nn.functional.rms_norm``), cast back to
    ``x.dtype``, then multiplied by ``weight``."""
    if weight.shape != x.shape[-1:]:
        raise ValueError(f"weight must have shape [{x.shape[-1]}] (the last axis of x), "
                         f"got {tuple(weight.shape)}")
    return weight * F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


@functools.lru_cache(maxsize=8)
def _rotary(cfg: LlamaConfig, device: torch.device) -> Any:
    """The rotary module on ``device``: its inverse frequencies live there, so a call copies
    nothing from the host (no sync per call, and a decode step can be captured in a CUDA graph)."""
    from course.model import hf_config

    return _modeling_llama().LlamaRotaryEmbedding(config=hf_config(cfg)).to(device)


def hf_rope_cos_sin(cfg: LlamaConfig, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables of transformers' ``LlamaRotaryEmbedding`` for ``cfg``.

    Args:
        positions: ``[T]`` int, the tokens' absolute positions.
    Returns:
        ``cos, sin``: each ``[T, d_head]`` float32, on the device of ``positions``.
    """
    if positions.dim() != 1 or positions.dtype.is_floating_point:
        raise ValueError(f"positions must be a 1-D integer tensor, got {positions.dtype} "
                         f"of shape {tuple(positions.shape)}")
    like = torch.empty(0, dtype=torch.float32, device=positions.device)
    with torch.no_grad():
        cos, sin = _rotary(cfg, positions.device)(like, positions[None, :])
    return cos[0], sin[0]


def hf_apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor,
                  sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys rotated by transformers' ``apply_rotary_pos_emb``.

    Args:
        q: ``[B, n_heads, T, d_head]``; k: ``[B, n_kv_heads, T, d_head]``.
        cos, sin: ``[T, d_head]`` from ``hf_rope_cos_sin``.
    Returns:
        ``(q, k)`` rotated, each in its own dtype.
    """
    T, d_head = q.shape[-2:]
    if cos.shape != (T, d_head) or sin.shape != cos.shape or k.shape[-2:] != q.shape[-2:]:
        raise ValueError(f"cos and sin must be [T={T}, d_head={d_head}] for q of shape "
                         f"{tuple(q.shape)} and k of shape {tuple(k.shape)}; got "
                         f"{tuple(cos.shape)} and {tuple(sin.shape)}")
    q_rot, k_rot = _modeling_llama().apply_rotary_pos_emb(
        q, k, cos.to(q.dtype), sin.to(q.dtype), unsqueeze_dim=0)
    return q_rot.to(q.dtype), k_rot.to(k.dtype)


@functools.lru_cache(maxsize=1)
def _silu() -> Any:
    from transformers.activations import ACT2FN

    return ACT2FN["silu"]


def hf_mlp(w: Weights, p: str, x: torch.Tensor) -> torch.Tensor:
    """The SwiGLU MLP of one layer: transformers' ``LlamaMLP.forward`` on these weights.

    Args:
        w, p: the weights and the MLP's prefix, e.g. ``"model.layers.3.mlp."`` (it reads
            ``gate_proj.weight``, ``up_proj.weight``: ``[d_ff, d_model]`` and
            ``down_proj.weight``: ``[d_model, d_ff]``).
        x: ``[..., d_model]``.
    Returns:
        ``[..., d_model]``.

    The forward runs on the weights as they are (no module is built, nothing is copied): its
    three projections are ``torch.nn.functional.linear`` on them, as ``nn.Linear`` would do.
    """
    gate, up, down = (w[p + name + "_proj.weight"] for name in ("gate", "up", "down"))
    d_ff, d_model = gate.shape
    if up.shape != gate.shape or down.shape != (d_model, d_ff) or x.shape[-1] != d_model:
        raise ValueError(f"{p}: expected gate and up [d_ff, d_model], down [d_model, d_ff] and "
                         f"x [..., d_model]; got {tuple(gate.shape)}, {tuple(up.shape)}, "
                         f"{tuple(down.shape)} and x {tuple(x.shape)}")
    block = SimpleNamespace(
        gate_proj=functools.partial(F.linear, weight=gate),
        up_proj=functools.partial(F.linear, weight=up),
        down_proj=functools.partial(F.linear, weight=down),
        act_fn=_silu(), config=SimpleNamespace(pretraining_tp=1))
    return _modeling_llama().LlamaMLP.forward(block, x)
