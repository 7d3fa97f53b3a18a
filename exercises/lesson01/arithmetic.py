"""Counting a Llama: how many parameters it stores and how many FLOPs one token costs.

Both counts follow from the config alone (`course.config.LlamaConfig`). Conventions:

* A parameter is one stored number. With tied embeddings the output projection *is* the
  token-embedding matrix, so it is stored, and counted, once.
* A FLOP is one floating-point multiply or add; a multiply-add counts 2, as in
  `torch.utils.flop_counter.FlopCounterMode`. Only matrix products are counted (projections
  and attention's two products); norms, RoPE, softmax and SiLU are elementwise and ignored,
  as FlopCounterMode ignores them. The embedding lookup is a gather, not a matmul: 0 FLOPs.

Read: learning/lesson01.md#counting-parameters
"""

from __future__ import annotations

from course.config import LlamaConfig


def _check_llama(cfg: LlamaConfig) -> None:
    if not isinstance(cfg, LlamaConfig):
        raise ValueError(f"expected a course.config.LlamaConfig, got {type(cfg).__name__}")
    if cfg.arch != "llama":
        raise ValueError(f"{cfg.name} is a '{cfg.arch}' model; these formulas are for Llama "
                         "(RMSNorm, no biases, SwiGLU MLP with three matrices)")


def param_count(cfg: LlamaConfig) -> int:
    """Number of parameters of a Llama decoder with this config.

    Args:
        cfg: the model's shape. Per layer: q, k, v, o projections (no biases; k and v have
            ``n_kv_heads * d_head`` outputs), the SwiGLU MLP's gate, up and down matrices,
            and two RMSNorm weight vectors of length ``d_model``. Plus the token embedding
            ``[vocab_size, d_model]``, the final RMSNorm, and the output projection
            ``[vocab_size, d_model]`` unless ``cfg.tie_embeddings``.
    Returns:
        an int, e.g. 134,515,008 for SmolLM2-135M (``course.config.SMOLLM2_135M``).

    About 8 lines.

    Read: learning/lesson01.md#counting-parameters
    """
    _check_llama(cfg)
    raise NotImplementedError('lesson01: param_count - read learning/lesson01.md#counting-parameters')


def flops_per_token(cfg: LlamaConfig, context_len: int) -> int:
    """FLOPs of the forward pass for one new token that attends to ``context_len`` tokens.

    ``context_len`` counts the keys the token's queries see, its own included: the decode step
    that produces token number ``context_len + 1`` of a sequence.

    Two parts:
        * matmuls with weights: ``2`` FLOPs per weight each token multiplies by - every
          projection of every layer and the output projection (the output projection is a
          matmul even when its matrix is tied to the embedding, which is a lookup);
        * attention: per layer and query head, ``q . k`` for ``context_len`` keys and the
          weighted sum of ``context_len`` values, ``2 * d_head`` FLOPs per key for each.

    Returns an int; e.g. a tiny config (2 layers, d_model 64, 4 heads of 16, 2 KV heads,
    d_ff 128, vocab 256) at ``context_len=10`` costs 2 * 2 * (64*64*2 + 2*64*32 + 3*64*128)
    + 2 * 256*64 + 4 * 2 * 4*16 * 10 = 185,344 FLOPs.

    About 6 lines. The graders compare it with FlopCounterMode on a real decode step.

    Read: learning/lesson01.md#flops-per-token
    """
    _check_llama(cfg)
    if context_len < 1:
        raise ValueError(f"context_len must be >= 1 (the token sees at least itself), got {context_len}")
    raise NotImplementedError('lesson01: flops_per_token - read learning/lesson01.md#flops-per-token')
