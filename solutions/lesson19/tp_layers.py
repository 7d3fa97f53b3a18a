"""Tensor-parallel MLP and attention blocks: one all-reduce each (Megatron-LM, section 3).

Every rank holds the full input ``x`` (the residual stream is replicated) and its shards:

* MLP (SwiGLU): ``gate`` and ``up`` column-parallel ``[d_ff / world, d_model]``, ``down``
  row-parallel ``[d_model, d_ff / world]``. ``silu(x @ gate.T) * (x @ up.T)`` is elementwise,
  so each rank finishes its own slice of the hidden layer with no communication; its
  ``down`` shard turns that slice into a partial sum of the output.
* Attention: ``q/k/v`` column-parallel by heads (the rank's query heads and the KV heads they
  read), ``o_proj`` row-parallel over the same heads. Heads are independent, so each rank runs
  attention for its heads alone and ``o_proj`` gives a partial sum again.

Each block ends with exactly ONE ``torch.distributed.all_reduce`` (sum) of ``[..., d_model]``,
after which every rank holds the same, full output. Forward only; no KV cache.

Read: learning/lesson19.md#a-tensor-parallel-mlp-and-attention-block
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from course.config import LlamaConfig
from course.hf_layers import hf_apply_rope, hf_rms_norm


def tp_mlp_forward(x: torch.Tensor, gate_shard: torch.Tensor, up_shard: torch.Tensor,
                   down_shard: torch.Tensor, group=None) -> torch.Tensor:
    """This rank's part of a SwiGLU MLP, summed over the ranks of ``group``.

    Args:
        x: ``[..., d_model]``, the same on every rank.
        gate_shard, up_shard: ``[d_ff / world, d_model]`` (column-parallel shards).
        down_shard: ``[d_model, d_ff / world]`` (row-parallel shard).
        group: the process group (None: the default group).
    Returns:
        ``[..., d_model]`` in x's dtype, equal on every rank of ``group`` to the unsharded
        ``(silu(x @ gate.T) * (x @ up.T)) @ down.T``.

    Exactly one ``dist.all_reduce`` call and no other collective. About 3 lines.

    Speed is graded on two GPUs: a stack of large MLPs at batch 1 must run clearly faster at
    TP=2 than at TP=1 (no extra collectives, no host synchronisation).

    Read: learning/lesson19.md#a-tensor-parallel-mlp-and-attention-block
    """
    if gate_shard.shape != up_shard.shape or down_shard.shape[::-1] != gate_shard.shape:
        raise ValueError("expected gate and up shards [d_ff/world, d_model] and a down shard "
                         f"[d_model, d_ff/world]; got {tuple(gate_shard.shape)}, "
                         f"{tuple(up_shard.shape)}, {tuple(down_shard.shape)}")
    ### BEGIN SOLUTION
    partial = (F.silu(x @ gate_shard.T) * (x @ up_shard.T)) @ down_shard.T
    dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=group)
    return partial
    ### END SOLUTION


def tp_attention_forward(x: torch.Tensor, wq_shard: torch.Tensor, wk_shard: torch.Tensor,
                         wv_shard: torch.Tensor, wo_shard: torch.Tensor, d_head: int,
                         cos: torch.Tensor | None = None, sin: torch.Tensor | None = None,
                         group=None) -> torch.Tensor:
    """This rank's heads of causal GQA self-attention, summed over the ranks of ``group``.

    Args:
        x: ``[batch, seq, d_model]``, the same on every rank.
        wq_shard: ``[n_q * d_head, d_model]``, the rank's ``n_q`` query heads' rows of q_proj.
        wk_shard, wv_shard: ``[n_kv * d_head, d_model]``, the KV heads those queries read.
        wo_shard: ``[d_model, n_q * d_head]``, the matching columns of o_proj.
        d_head: channels per head.
        cos, sin: ``[seq, d_head]`` RoPE tables (``course.hf_layers.hf_rope_cos_sin``),
            applied to q and k with ``q, k = hf_apply_rope(q, k, cos, sin)``; None: no RoPE.
    Returns:
        ``[batch, seq, d_model]``: the unsharded attention block's output on every rank.

    Causal, local query head i reads local KV head ``i // (n_q / n_kv)``; exactly one
    ``dist.all_reduce``. About 10 lines (``F.scaled_dot_product_attention`` with
    ``is_causal=True`` and ``enable_gqa=True``).

    Read: learning/lesson19.md#a-tensor-parallel-mlp-and-attention-block
    """
    if x.dim() != 3:
        raise ValueError(f"x must be [batch, seq, d_model], got shape {tuple(x.shape)}")
    if wq_shard.shape[0] % d_head or wk_shard.shape[0] % d_head or wk_shard.shape != wv_shard.shape:
        raise ValueError(f"q/k/v shards must hold whole heads of {d_head} rows; got "
                         f"{tuple(wq_shard.shape)}, {tuple(wk_shard.shape)}, "
                         f"{tuple(wv_shard.shape)}")
    if (wq_shard.shape[0] // d_head) % (wk_shard.shape[0] // d_head):
        raise ValueError("the rank's query heads must be a multiple of its KV heads")
    ### BEGIN SOLUTION
    batch, seq, _ = x.shape

    def heads(w: torch.Tensor) -> torch.Tensor:  # -> [batch, n, seq, d_head]
        return (x @ w.T).view(batch, seq, -1, d_head).transpose(1, 2)

    q, k, v = heads(wq_shard), heads(wk_shard), heads(wv_shard)
    if cos is not None:
        q, k = hf_apply_rope(q, k, cos, sin)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                         enable_gqa=q.shape[1] != k.shape[1])
    partial = out.transpose(1, 2).reshape(batch, seq, -1) @ wo_shard.T
    dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=group)
    return partial
    ### END SOLUTION


def shard_layer(weights: dict[str, torch.Tensor], layer: int, cfg: LlamaConfig, rank: int,
                world: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s shards of decoder layer ``layer`` (HF names, ``model.layers.{i}.``).

    Given code, built on your ``shards.py``. Returns the keys ``q, k, v, o, gate, up, down``
    and the (replicated) norms ``input_norm, post_norm``.
    """
    from .shards import column_parallel_shard as column_shard
    from .shards import row_parallel_shard as row_shard
    from .shards import tp_heads as heads

    p = f"model.layers.{layer}."
    d = cfg.d_head
    _, kv = heads(cfg.n_heads, cfg.n_kv_heads, rank, world)
    attn = p + "self_attn."
    return {
        "q": column_shard(weights[attn + "q_proj.weight"], rank, world),
        "k": weights[attn + "k_proj.weight"][kv.start * d:kv.stop * d].contiguous(),
        "v": weights[attn + "v_proj.weight"][kv.start * d:kv.stop * d].contiguous(),
        "o": row_shard(weights[attn + "o_proj.weight"], rank, world),
        "gate": column_shard(weights[p + "mlp.gate_proj.weight"], rank, world),
        "up": column_shard(weights[p + "mlp.up_proj.weight"], rank, world),
        "down": row_shard(weights[p + "mlp.down_proj.weight"], rank, world),
        "input_norm": weights[p + "input_layernorm.weight"],
        "post_norm": weights[p + "post_attention_layernorm.weight"],
    }


def tp_decoder_layer(x: torch.Tensor, shards: dict[str, torch.Tensor], cfg: LlamaConfig,
                     cos: torch.Tensor, sin: torch.Tensor, group=None) -> torch.Tensor:
    """One pre-norm Llama decoder layer on this rank's shards: two all-reduces in all.

    Given code: ``x + attn(rmsnorm(x))``, then ``+ mlp(rmsnorm(.))``, with your two blocks.
    """
    h = hf_rms_norm(x, shards["input_norm"], cfg.rms_eps)
    x = x + tp_attention_forward(h, shards["q"], shards["k"], shards["v"], shards["o"],
                                 cfg.d_head, cos, sin, group)
    h = hf_rms_norm(x, shards["post_norm"], cfg.rms_eps)
    return x + tp_mlp_forward(h, shards["gate"], shards["up"], shards["down"], group)
