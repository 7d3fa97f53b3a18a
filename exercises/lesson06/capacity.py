"""How many bytes a Llama-style model needs: its weights, and its KV cache per token.

Parameters of a Llama (pre-norm RMSNorm, RoPE without parameters, GQA attention without biases,
SwiGLU MLP), per decoder layer::

    attention  d_model x (n_heads x d_head)            q_proj
             + 2 x d_model x (n_kv_heads x d_head)     k_proj, v_proj
             + (n_heads x d_head) x d_model            o_proj
    MLP        3 x d_model x d_ff                      gate, up, down
    norms      2 x d_model                             two RMSNorm weights

plus the token embedding ``vocab_size x d_model``, the final RMSNorm ``d_model``, and an output
projection ``vocab_size x d_model`` unless it is tied to the embedding.

Read: learning/lesson06.md#what-the-weights-weigh
"""

from __future__ import annotations

import math

from course.config import LlamaConfig

# Bytes per stored number for the usual formats. int4 ignores the per-group scales a real
# 4-bit format adds (e.g. GGUF Q4_1: 20 bytes per 32 weights = 0.625 B); pass a number for those.
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


def bytes_per_number(fmt: float | str) -> float:
    """``fmt`` as bytes per number: a name from BYTES_PER_PARAM or a positive number."""
    if isinstance(fmt, str):
        if fmt not in BYTES_PER_PARAM:
            raise ValueError(f"unknown format {fmt!r}; known: {', '.join(BYTES_PER_PARAM)} "
                             "(or pass bytes per number, e.g. 0.625)")
        return BYTES_PER_PARAM[fmt]
    if not fmt > 0:
        raise ValueError(f"bytes per number must be positive, got {fmt!r}")
    return float(fmt)


def check_llama(cfg: LlamaConfig) -> None:
    """Refuse shape-only configs of other architectures (their parameter formula differs)."""
    if cfg.arch != "llama":
        raise ValueError(f"{cfg.name} is a '{cfg.arch}' model; this parameter formula is for "
                         "Llama-style models only")


def num_params(cfg: LlamaConfig) -> int:
    """Number of parameters of a Llama-style model (see the module docstring for the formula).

    Returns an int, counting a tied embedding once. About 10 lines.

    Examples (published sizes): Llama-2-7B 6,738,415,616; Llama-3-8B 8,030,261,248;
    SmolLM2-135M 134,515,008.

    Read: learning/lesson06.md#what-the-weights-weigh
    """
    check_llama(cfg)
    raise NotImplementedError('lesson06: num_params - read learning/lesson06.md#what-the-weights-weigh')


def weights_bytes(cfg: LlamaConfig, bytes_per_param: float | str = "bf16") -> int:
    """Bytes to hold every weight once, rounded up to a whole byte.

    Args:
        cfg: the model's shape.
        bytes_per_param: a name from BYTES_PER_PARAM ("bf16", "fp8", "int4", ...) or bytes
            per parameter (2, 1, 0.5, 0.625, ...).
    Returns:
        ``ceil(num_params(cfg) x bytes per parameter)`` as an int. One line.

    Example: Llama-3-8B in bf16 is 16,060,522,496 B = 16.06 GB = 14.96 GiB.

    Read: learning/lesson06.md#what-the-weights-weigh
    """
    per = bytes_per_number(bytes_per_param)
    raise NotImplementedError('lesson06: weights_bytes - read learning/lesson06.md#what-the-weights-weigh')


def kv_bytes_per_token(cfg: LlamaConfig, kv_bytes_per_elem: float | str = "bf16") -> int:
    """Bytes of KV cache one token takes across all layers, rounded up to a whole byte.

    ``2 (K and V) x n_layers x n_kv_heads x d_head x bytes per element``. One line.

    Example: Llama-3-8B in 16-bit: 2 x 32 x 8 x 128 x 2 = 131,072 B = 128 KiB.

    Read: learning/lesson06.md#what-the-kv-cache-weighs
    """
    per = bytes_per_number(kv_bytes_per_elem)
    raise NotImplementedError('lesson06: kv_bytes_per_token - read learning/lesson06.md#what-the-kv-cache-weighs')
