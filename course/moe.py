"""Shapes of mixture-of-experts decoders (lesson 21).

A `MoEConfig` is plain data, like `course.config.LlamaConfig`: counts of layers, heads,
channels, experts and tokens, never bytes. The arithmetic on it (total and active parameters,
all-to-all bytes) is what lesson 21 asks learners to write, so nothing here computes it.

Invariants: `n_heads % n_kv_heads == 0` and `1 <= top_k <= n_experts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MoEConfig:
    """Shape of a decoder whose MLP is a mixture of SwiGLU experts (Mixtral-style).

    Fields:
        name: a label.
        n_layers: decoder blocks; every block's MLP is an MoE layer.
        d_model: residual-stream width (channels).
        n_heads, n_kv_heads, d_head: attention shape (GQA), as in `LlamaConfig`.
        d_ff: hidden width of ONE expert's SwiGLU MLP (channels).
        vocab_size: tokens in the vocabulary.
        n_experts: experts per MoE layer.
        top_k: experts each token is routed to.
        tie_embeddings: the output projection reuses the token embedding matrix.
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_ff: int
    vocab_size: int
    n_experts: int
    top_k: int
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(f"{self.name}: n_heads={self.n_heads} is not a multiple of "
                             f"n_kv_heads={self.n_kv_heads}")
        if not 1 <= self.top_k <= self.n_experts:
            raise ValueError(f"{self.name}: top_k={self.top_k} must be between 1 and "
                             f"n_experts={self.n_experts}")


def moe_config_from_hf(config: Mapping[str, Any], name: str = "") -> MoEConfig:
    """A `MoEConfig` from the keys of a Mixtral-style HF ``config.json`` (as a dict).

    Reads ``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``,
    ``num_key_value_heads``, ``head_dim`` (default ``hidden_size // num_attention_heads``),
    ``intermediate_size`` (one expert's width), ``vocab_size``, ``num_local_experts``,
    ``num_experts_per_tok`` and ``tie_word_embeddings`` (default False).
    """
    missing = [key for key in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                               "intermediate_size", "vocab_size", "num_local_experts",
                               "num_experts_per_tok") if key not in config]
    if missing:
        raise KeyError(f"not a Mixtral-style MoE config: no {', '.join(missing)}")
    heads = int(config["num_attention_heads"])
    return MoEConfig(
        name=name or str(config.get("_name_or_path", "moe")),
        n_layers=int(config["num_hidden_layers"]), d_model=int(config["hidden_size"]),
        n_heads=heads, n_kv_heads=int(config.get("num_key_value_heads") or heads),
        d_head=int(config.get("head_dim") or int(config["hidden_size"]) // heads),
        d_ff=int(config["intermediate_size"]), vocab_size=int(config["vocab_size"]),
        n_experts=int(config["num_local_experts"]), top_k=int(config["num_experts_per_tok"]),
        tie_embeddings=bool(config.get("tie_word_embeddings", False)))


# Mixtral 8x7B (Jiang et al. 2024, "Mixtral of Experts", arXiv:2401.04088, table 1; the
# config.json of mistralai/Mixtral-8x7B-v0.1): no biases, untied embeddings, RMSNorm.
MIXTRAL_8X7B = MoEConfig(name="Mixtral-8x7B", n_layers=32, d_model=4096, n_heads=32,
                         n_kv_heads=8, d_head=128, d_ff=14336, vocab_size=32000, n_experts=8,
                         top_k=2, tie_embeddings=False)
