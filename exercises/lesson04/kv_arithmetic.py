"""KV cache arithmetic: how many bytes each token costs, and how many tokens fit.

Every layer keeps, for every token, one key and one value vector per KV head, each ``d_head``
numbers. So one token costs

    2 (K and V) x n_layers x n_kv_heads x d_head x dtype_bytes

bytes, whatever the batch or the position. Query heads do not appear: with grouped-query
attention (GQA) several query heads share one KV head, which is why Llama-3-8B (8 KV heads)
needs a quarter of Llama-2-7B's (32 KV heads) cache per token.

Units: bytes; GB = 1e9 B, GiB = 2**30 B. Results are exact ints for integer dtype sizes.

Read: learning/lesson04.md#bytes-per-token
"""

from __future__ import annotations

from course.config import LlamaConfig


def _check_dtype_bytes(dtype_bytes: float) -> None:
    if not dtype_bytes > 0:
        raise ValueError(f"dtype_bytes must be positive (2 for fp16/bf16, 1 for fp8), got "
                         f"{dtype_bytes!r}")


def kv_bytes_per_token(cfg: LlamaConfig, dtype_bytes: float = 2) -> float:
    """Bytes of K and V that one token adds to the cache, all layers together.

    Example: Llama-2-7B (32 layers, 32 KV heads x 128) at 2 bytes:
    2 x 32 x 32 x 128 x 2 = 524,288 B (512 KiB). One line.

    Read: learning/lesson04.md#bytes-per-token
    """
    _check_dtype_bytes(dtype_bytes)
    raise NotImplementedError('lesson04: kv_bytes_per_token - read learning/lesson04.md#bytes-per-token')


def kv_cache_bytes(cfg: LlamaConfig, batch: int, seq_len: int, dtype_bytes: float = 2) -> float:
    """Bytes of a cache holding ``seq_len`` tokens for each of ``batch`` sequences.

    Linear in both: ``batch x seq_len x kv_bytes_per_token``. Example: Llama-3-8B, batch 32,
    4096 tokens, fp16 -> 17,179,869,184 B = 17.2 GB = 16 GiB. One line.

    Read: learning/lesson04.md#bytes-per-token
    """
    if batch < 0 or seq_len < 0:
        raise ValueError(f"batch and seq_len must be >= 0, got {batch} and {seq_len}")
    raise NotImplementedError('lesson04: kv_cache_bytes - read learning/lesson04.md#bytes-per-token')


def max_tokens_in_budget(cfg: LlamaConfig, budget_bytes: float, dtype_bytes: float = 2) -> int:
    """The most tokens (summed over all sequences) whose K and V fit in ``budget_bytes``.

    A whole token or none: round down. Example: 1 GiB of Llama-2-7B fp16 cache holds
    2**30 / 524,288 = 2048 tokens; one byte less holds 2047. A negative budget holds 0.
    About 2 lines.

    Read: learning/lesson04.md#how-many-tokens-fit
    """
    raise NotImplementedError('lesson04: max_tokens_in_budget - read learning/lesson04.md#how-many-tokens-fit')
