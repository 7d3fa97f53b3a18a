"""A pipelined forward pass on torch.distributed: one stage per rank, micro-batches by send/recv.

Rank ``r`` of ``p`` holds stage ``r``: the layers ``split_layers(n_layers, p)[r]``, plus the
embedding on the first stage and the final norm and LM head on the last (``build_stage``,
given). Micro-batches flow down the ranks:

* rank 0 runs its stage on each input micro-batch and sends the result to rank 1;
* a middle rank receives a micro-batch from ``r - 1``, runs its stage, sends it to ``r + 1``;
* the last rank receives, runs its stage and keeps the result (the logits).

Every message is one activation tensor of a shape and dtype that every rank knows in advance
(``[batch, seq, d_model]``), so a receiver can allocate its buffer before the data arrives.
Forward only (inference); no KV cache.

Read: learning/lesson20.md#a-pipelined-forward-on-torchdistributed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from course.config import LlamaConfig
from course.hf_layers import hf_rms_norm


def pipeline_forward(stage_fn: Callable[[torch.Tensor], torch.Tensor],
                     inputs: Sequence[torch.Tensor] | None, n_microbatches: int,
                     activation_shape: tuple[int, ...],
                     activation_dtype: torch.dtype = torch.float32,
                     device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """Run this rank's stage on ``n_microbatches`` micro-batches, passing them down the ranks.

    Args:
        stage_fn: this rank's stage, ``tensor -> tensor``.
        inputs: on rank 0, the ``n_microbatches`` input micro-batches (token ids, say); ignored
            (pass None) on the other ranks.
        n_microbatches: how many micro-batches flow through the pipeline, the same on every rank.
        activation_shape, activation_dtype: shape and dtype of what each stage but the last
            sends (every message is one such tensor).
        device: where to allocate the receive buffers (``"cuda"`` with NCCL).
    Returns:
        On the last rank, the ``n_microbatches`` outputs of its ``stage_fn``, in micro-batch
        order; on every other rank, an empty list.

    The rank and the number of stages are ``dist.get_rank()`` and ``dist.get_world_size()``
    (world 1: run ``stage_fn`` on each input, no communication). Rank ``r`` receives only from
    ``r - 1`` and sends only to ``r + 1``: ``(p - 1) * m`` sends and as many receives in all,
    and no other collective. Send each result as soon as it is computed (a stage that holds
    its results back until the end stalls the next stage: no overlap, no speed-up on GPUs).
    About 12 lines.

    Read: learning/lesson20.md#a-pipelined-forward-on-torchdistributed
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank == 0 and (inputs is None or len(inputs) != n_microbatches):
        raise ValueError(f"rank 0 needs {n_microbatches} input micro-batches, got "
                         f"{None if inputs is None else len(inputs)}")
    ### BEGIN SOLUTION
    outputs = []
    for i in range(n_microbatches):
        if rank == 0:
            x = inputs[i]
        else:
            x = torch.empty(activation_shape, dtype=activation_dtype, device=device)
            dist.recv(x, src=rank - 1)
        y = stage_fn(x)
        if rank < world - 1:
            dist.send(y.contiguous(), dst=rank + 1)
        else:
            outputs.append(y)
    return outputs
    ### END SOLUTION


def _rope_turns(cfg: LlamaConfig, seq: int, device) -> torch.Tensor:
    """Llama's rotary angles as unit complex numbers ``[seq, d_head / 2]``, positions from 0.
    Written in plain torch so that a rank does not import transformers (seconds per process)."""
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.d_head, 2, device=device,
                                                     dtype=torch.float32) / cfg.d_head)
    angles = torch.outer(torch.arange(seq, device=device, dtype=torch.float32), inv_freq)
    return torch.polar(torch.ones_like(angles), angles)


def _rotate(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """HF's "rotate half" RoPE as a complex product: channel i and channel i + d_head/2 are
    the real and imaginary parts of one complex number, turned by its position's angle."""
    pairs = torch.stack(x.float().chunk(2, dim=-1), dim=-1).contiguous()
    turned = torch.view_as_real(torch.view_as_complex(pairs) * turns)
    return torch.cat([turned[..., 0], turned[..., 1]], dim=-1).to(x.dtype)


def _attention(w: dict[str, torch.Tensor], p: str, cfg: LlamaConfig, x: torch.Tensor,
               turns: torch.Tensor) -> torch.Tensor:
    batch, seq, _ = x.shape

    def heads(name: str) -> torch.Tensor:  # -> [batch, n, seq, d_head]
        return (x @ w[p + name].T).view(batch, seq, -1, cfg.d_head).transpose(1, 2)

    q, k, v = heads("q_proj.weight"), heads("k_proj.weight"), heads("v_proj.weight")
    q, k = _rotate(q, turns), _rotate(k, turns)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                         enable_gqa=cfg.n_heads != cfg.n_kv_heads)
    return out.transpose(1, 2).reshape(batch, seq, -1) @ w[p + "o_proj.weight"].T


def build_stage(cfg: LlamaConfig, weights: dict[str, torch.Tensor], layers: range,
                first: bool, last: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """One pipeline stage of a Llama model (given code): a function of one micro-batch.

    ``first``: the input is token ids ``[batch, seq]`` and the stage starts with the embedding;
    otherwise it is the hidden state ``[batch, seq, d_model]``. Then the decoder layers
    ``layers`` (pre-norm attention and SwiGLU MLP, RoPE from position 0, written in plain
    torch: no transformers import in the ranks). ``last``: the stage
    ends with the final RMSNorm and the LM head and returns logits ``[batch, seq, vocab]``;
    otherwise the hidden state. ``weights`` use HF names and need only this stage's tensors.
    """
    if first:
        embed = weights["model.embed_tokens.weight"]
    if last:
        norm = weights["model.norm.weight"]
        head = weights.get("lm_head.weight", weights.get("model.embed_tokens.weight"))

    @torch.no_grad()
    def stage(x: torch.Tensor) -> torch.Tensor:
        h = embed[x] if first else x
        turns = _rope_turns(cfg, h.shape[1], h.device)
        for i in layers:
            p = f"model.layers.{i}."
            a = hf_rms_norm(h, weights[p + "input_layernorm.weight"], cfg.rms_eps)
            h = h + _attention(weights, p + "self_attn.", cfg, a, turns)
            a = hf_rms_norm(h, weights[p + "post_attention_layernorm.weight"], cfg.rms_eps)
            gate, up, down = (weights[p + f"mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))
            h = h + (F.silu(a @ gate.T) * (a @ up.T)) @ down.T
        if last:
            return hf_rms_norm(h, norm, cfg.rms_eps) @ head.T
        return h

    return stage


def stage_weights(weights: dict[str, torch.Tensor], layers: range, first: bool,
                  last: bool) -> dict[str, torch.Tensor]:
    """The tensors of ``weights`` that one stage needs (given): its layers' weights, the
    embedding on the first stage, the final norm and LM head on the last."""
    keep = {f"model.layers.{i}." for i in layers}
    out = {k: v for k, v in weights.items() if any(k.startswith(p) for p in keep)}
    if first or (last and "lm_head.weight" not in weights):
        out["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"]
    if last:
        out["model.norm.weight"] = weights["model.norm.weight"]
        if "lm_head.weight" in weights:
            out["lm_head.weight"] = weights["lm_head.weight"]
    return out
