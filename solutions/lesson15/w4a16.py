"""W4A16: 4-bit weights, 16-bit activations, and a linear layer an engine can call.

``w4a16_matmul`` is the reference a kernel must match: unpack the int4 weight, dequantize it
group by group, multiply. It reads the same few bytes a fast kernel reads, but it writes the
whole dequantized weight back to memory before the matmul, so in plain torch it is SLOWER than
the bf16 matmul it replaces. The speed comes from a kernel that dequantizes in registers; torch
ships one (``torch.ops.aten._weight_int4pack_mm``, the "tinygemm" kernel) that wants its own
layout. ``tinygemm_nibbles`` and ``tinygemm_scales_and_zeros`` convert ours to it, and
``W4Linear.int4pack`` hands the result to torch.

Torch's conventions (read from its tests and meta registrations, torch 2.5 to 2.13): on CUDA,
``_convert_weight_to_int4pack(w, inner_k_tiles)`` takes ``uint8 [N, K // 2]`` with entry 2i of a
row in the HIGH nibble of byte i and entry 2i + 1 in the low nibble; on the CPU,
``_convert_weight_to_int4pack_for_cpu`` takes the values unpacked, ``int32 [N, K]``. Both mm ops
take ``scales_and_zeros: [K // group_size, N, 2]`` (scale, then zero) in the activation's dtype
and compute with ``w = (q - 8) * scale + zero``, a zero point in the float domain.

Read: learning/lesson15.md#a-w4a16-linear-layer
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .int4_pack import pack_int4, unpack_int4
from .rtn import dequantize, quantize_rtn, resolve_group_size


def check_packed(packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                 group_size: int) -> tuple[int, int, int]:
    """Validate a packed weight and its group parameters; return ``(N, K, group_size)``."""
    if packed.dtype != torch.int32 or packed.dim() != 2:
        raise ValueError(f"packed must be int32 [N, K // 8], got {packed.dtype} "
                         f"{tuple(packed.shape)}")
    n, k = packed.shape[0], packed.shape[1] * 8
    g = resolve_group_size(k, group_size)
    want = (n, k // g)
    if tuple(scales.shape) != want or tuple(zeros.shape) != want:
        raise ValueError(f"scales and zeros must be [N, K // group_size] = {list(want)} for "
                         f"packed {list(packed.shape)} (K = {k}) and group_size {group_size}; got "
                         f"{list(scales.shape)} and {list(zeros.shape)}")
    return n, k, g


def w4a16_matmul(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor,
                 zeros: torch.Tensor, group_size: int) -> torch.Tensor:
    """``x @ W.T`` for the weight W stored as packed int4 with group scales and zero points.

    Args:
        x: ``[..., K]`` float (any leading dims: a batch of rows, each its own).
        packed: ``[N, K // 8]`` int32 from pack_int4; scales, zeros: ``[N, K // group_size]``.
        group_size: as in quantize_rtn (-1: one group per row).
    Returns:
        ``[..., N]`` in x's dtype: ``x @ dequantize(unpack_int4(packed), scales, zeros,
        group_size).to(x.dtype).T``; in float32 that is the same computation, so equal up to
        the order of the sums. One matmul of x against the weight (2 x tokens x N x K FLOPs).
        About 3 lines.

    Read: learning/lesson15.md#a-w4a16-linear-layer
    """
    _, k, _ = check_packed(packed, scales, zeros, group_size)
    if x.shape[-1] != k:
        raise ValueError(f"x's last dim ({x.shape[-1]}) must be K = {k} (packed has "
                         f"{packed.shape[1]} words of 8 per row)")
    ### BEGIN SOLUTION
    w = dequantize(unpack_int4(packed), scales, zeros, group_size).to(x.dtype)
    return x @ w.T
    ### END SOLUTION


def w4_bytes(n: int, k: int, group_size: int = 128, scale_bytes: int = 2,
             zero_bytes: int = 2) -> int:
    """Bytes of an ``[N, K]`` weight stored as int4 with one scale and one zero per group.

    Args:
        n, k: the weight's shape (K a multiple of 8 and of group_size); group_size: -1 for one
            group per row; scale_bytes, zero_bytes: bytes of each stored scale and zero (2 for
            bf16, as torch's int4 kernel keeps them; 4 for float32; a zero packed as a nibble
            too is 0.5 B, round such a total up yourself).
    Returns:
        Bytes, an int: ``N x K / 2`` for the nibbles plus ``N x K / group_size`` groups times
        ``scale_bytes + zero_bytes``. Example: ``w4_bytes(4096, 4096)`` is 8,912,896 B against
        33,554,432 B in bf16 (2 bytes per weight), 3.76x fewer. About 2 lines.

    Read: learning/lesson15.md#why-4-bit-weights-speed-up-batch-1-decode
    """
    if k % 8:
        raise ValueError(f"K ({k}) must be a multiple of 8")
    g = resolve_group_size(k, group_size)
    ### BEGIN SOLUTION
    n_groups = n * (k // g)
    return n * k // 2 + n_groups * (scale_bytes + zero_bytes)
    ### END SOLUTION


def tinygemm_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Our int32 words -> torch's CUDA input to ``_convert_weight_to_int4pack``.

    Args:
        packed: ``[N, K // 8]`` int32 from pack_int4.
    Returns:
        ``[N, K // 2]`` uint8: byte i of a row holds entry 2i in its high nibble and entry
        2i + 1 in its low nibble (the reverse of our order inside a word). About 2 lines with
        unpack_int4.

    Read: learning/lesson15.md#torch-int4-kernel-layout
    """
    if packed.dtype != torch.int32 or packed.dim() != 2:
        raise ValueError(f"packed must be int32 [N, K // 8], got {packed.dtype} "
                         f"{tuple(packed.shape)}")
    ### BEGIN SOLUTION
    q = unpack_int4(packed)
    return (q[:, 0::2] << 4) | q[:, 1::2]
    ### END SOLUTION


def tinygemm_scales_and_zeros(scales: torch.Tensor, zeros: torch.Tensor, bits: int = 4,
                              dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Our ``(scale, integer zero)`` per group -> torch's ``scales_and_zeros``.

    Torch's kernel computes ``(q - 8) * scale + zero_f`` (8 = ``2^(bits - 1)``, the middle of
    0..15); ours is ``(q - zero) * scale``. Equal for every q when ``zero_f = (8 - zero) *
    scale``.

    Args:
        scales, zeros: ``[N, n_groups]``.
    Returns:
        ``[n_groups, N, 2]`` in dtype, contiguous: ``[..., 0]`` the scale, ``[..., 1]`` the
        float zero ``(2^(bits - 1) - zero) * scale``, computed in float32 before the cast.
        Note the transpose: groups first. About 3 lines.

    Read: learning/lesson15.md#torch-int4-kernel-layout
    """
    if scales.shape != zeros.shape or scales.dim() != 2:
        raise ValueError(f"scales and zeros must both be [N, n_groups], got "
                         f"{tuple(scales.shape)} and {tuple(zeros.shape)}")
    ### BEGIN SOLUTION
    s = scales.float()
    zero_f = (2 ** (bits - 1) - zeros.float()) * s
    return torch.stack([s, zero_f], dim=-1).transpose(0, 1).contiguous().to(dtype)
    ### END SOLUTION


@dataclass
class W4Linear:
    """A linear layer ``y = x @ W.T`` whose ``W: [N, K]`` is stored as packed int4.

    ``packed``: ``[N, K // 8]`` int32; ``scales``, ``zeros``: ``[N, K // group_size]`` float32.
    Build one from a float weight with ``W4Linear.from_weight(w, group_size=128)``; call it like
    a module. ``int4pack()`` converts it once for torch's int4 kernel, ``int4pack_mm`` runs it.
    """

    packed: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    group_size: int

    @classmethod
    def from_weight(cls, w: torch.Tensor, group_size: int = 128,
                    symmetric: bool = False) -> W4Linear:
        q, scales, zeros = quantize_rtn(w, 4, group_size, symmetric)
        return cls(pack_int4(q), scales, zeros, resolve_group_size(w.shape[1], group_size))

    @property
    def shape(self) -> tuple[int, int]:
        return self.packed.shape[0], self.packed.shape[1] * 8

    def dequantize(self) -> torch.Tensor:
        """The weight this layer computes with, float32 ``[N, K]``."""
        return dequantize(unpack_int4(self.packed), self.scales, self.zeros, self.group_size)

    def nbytes(self, scale_bytes: int = 2, zero_bytes: int = 2) -> int:
        """Bytes a kernel reads for this weight (scales and zeros kept in bf16 by default)."""
        n, k = self.shape
        return w4_bytes(n, k, self.group_size, scale_bytes, zero_bytes)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return w4a16_matmul(x, self.packed, self.scales, self.zeros, self.group_size)

    def int4pack(self, inner_k_tiles: int = 8,
                 dtype: torch.dtype = torch.bfloat16) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight, scales_and_zeros)`` in torch's int4 layout on this layer's device.

        CUDA needs compute capability 8.0+, N a multiple of 8, K a multiple of
        ``16 x inner_k_tiles`` (2, 4 or 8) and group_size 32, 64, 128 or 256; x then in bf16.
        The CPU version wants N a multiple of 16.
        """
        if self.packed.is_cuda:
            weight = torch.ops.aten._convert_weight_to_int4pack(
                tinygemm_nibbles(self.packed).contiguous(), inner_k_tiles)
        else:
            weight = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
                unpack_int4(self.packed).to(torch.int32).contiguous(), inner_k_tiles)
        return weight, tinygemm_scales_and_zeros(self.scales, self.zeros, 4, dtype)


def int4pack_mm(x: torch.Tensor, weight: torch.Tensor, scales_and_zeros: torch.Tensor,
                group_size: int) -> torch.Tensor:
    """``x @ W.T`` with torch's int4 kernel; x: ``[M, K]``, weight and scales_and_zeros from
    ``W4Linear.int4pack`` (same device, scales_and_zeros in x's dtype)."""
    if x.is_cuda:
        return torch.ops.aten._weight_int4pack_mm(x, weight, group_size, scales_and_zeros)
    return torch.ops.aten._weight_int4pack_mm_for_cpu(x, weight, group_size, scales_and_zeros)
