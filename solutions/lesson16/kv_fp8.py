"""An FP8 KV cache: store keys and values in one byte per element, with a scale per token.

Cache layout (a flat slot per token, as lesson 12's paged cache viewed as
``[num_blocks * block_size, ...]``): ``cache: [num_slots, n_kv_heads, d_head]`` in
torch.float8_e4m3fn and ``scales: [num_slots, n_kv_heads]`` float32, one scale per token and
KV head: ``scale = amax over d_head / 448``. Reading multiplies back. A bf16 cache costs
``2 * d_head`` bytes per token and head; this one ``d_head + 4``: about twice the tokens in
the same memory (1.94x at d_head 128).

Read: learning/lesson16.md#an-fp8-kv-cache
"""

from __future__ import annotations

import torch

E4M3_MAX = 448.0  # largest finite float8_e4m3fn


def check_cache(cache: torch.Tensor, scales: torch.Tensor) -> None:
    """Raise ValueError unless cache is [num_slots, n_kv_heads, d_head] e4m3 and scales match."""
    if cache.dim() != 3 or cache.dtype != torch.float8_e4m3fn:
        raise ValueError(f"cache must be [num_slots, n_kv_heads, d_head] float8_e4m3fn, got "
                         f"{cache.dtype} {tuple(cache.shape)}")
    if scales.shape != cache.shape[:2] or scales.dtype != torch.float32:
        raise ValueError(f"scales must be float32 [{cache.shape[0]}, {cache.shape[1]}], got "
                         f"{scales.dtype} {tuple(scales.shape)}")


def fp8_kv_write(cache: torch.Tensor, scales: torch.Tensor, x: torch.Tensor,
                 slots: torch.Tensor) -> None:
    """Quantize new tokens' keys (or values) and store them at their slots, in place.

    Args:
        cache: ``[num_slots, n_kv_heads, d_head]`` float8_e4m3fn, written in place.
        scales: ``[num_slots, n_kv_heads]`` float32, written in place.
        x: ``[n, n_kv_heads, d_head]`` in any float dtype (bf16 in practice).
        slots: ``[n]`` int, where each token goes.
    Each (token, head) row gets ``scale = amax(|row|) / 448`` (1 for an all-zero row) and
    ``cache[slot] = clamp(row / scale, -448, 448)`` cast to e4m3. Touch nothing else.
    About 5 lines.

    Read: learning/lesson16.md#an-fp8-kv-cache
    """
    check_cache(cache, scales)
    if x.dim() != 3 or x.shape[1:] != cache.shape[1:] or slots.shape != x.shape[:1]:
        raise ValueError(f"x must be [n, {cache.shape[1]}, {cache.shape[2]}] and slots [n]; "
                         f"got {tuple(x.shape)} and {tuple(slots.shape)}")
    ### BEGIN SOLUTION
    x = x.float()
    amax = x.abs().amax(dim=-1)                               # [n, n_kv_heads]
    scale = torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax))
    cache[slots.long()] = (x / scale[..., None]).clamp(-E4M3_MAX, E4M3_MAX).to(cache.dtype)
    scales[slots.long()] = scale
    ### END SOLUTION


def fp8_kv_read(cache: torch.Tensor, scales: torch.Tensor, slots: torch.Tensor,
                dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Dequantize the tokens at ``slots``: returns ``[len(slots), n_kv_heads, d_head]`` in dtype.

    ``cache[slots] * scales[slots]`` along d_head, computed in float32, then cast. About 2 lines.

    Speed is graded on a GPU, loosely: attention over what this returns must not be
    pathologically slower than over a bf16 cache (no loop over tokens, no float64).

    Read: learning/lesson16.md#an-fp8-kv-cache
    """
    check_cache(cache, scales)
    ### BEGIN SOLUTION
    idx = slots.long()
    return (cache[idx].float() * scales[idx][..., None]).to(dtype)
    ### END SOLUTION


def kv_cache_bytes(num_slots: int, n_kv_heads: int, d_head: int, fp8: bool) -> int:
    """Bytes of one K (or V) cache of num_slots tokens: bf16, or e4m3 plus float32 scales."""
    if fp8:
        return num_slots * n_kv_heads * (d_head + 4)
    return num_slots * n_kv_heads * d_head * 2
