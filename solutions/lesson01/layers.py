"""The two Llama pieces that are not plain matmuls: RMSNorm and rotary position embeddings.

RMSNorm (Zhang & Sennrich, 2019) rescales each vector to unit root-mean-square, then by a
learned per-channel weight; no mean is subtracted, no bias is added.

RoPE (Su et al., 2021) rotates pairs of query/key channels by an angle proportional to the
token's position, so that ``q . k`` depends only on the distance between the two positions.
This course uses HF transformers' layout (``rotate_half``): within one head of ``d_head``
channels, channel ``i`` pairs with channel ``i + d_head/2``, and pair ``i`` turns at the
frequency ``theta ** (-2i / d_head)`` radians per position.

Read: learning/lesson01.md#rmsnorm-and-rope
"""

from __future__ import annotations

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last axis.

    Args:
        x: ``[..., d]``, any float dtype.
        weight: ``[d]``, the learned gain.
        eps: added to the mean square before the square root (e.g. 1e-5), so a zero vector
            gives zeros, not NaN.
    Returns:
        ``weight * (x / sqrt(mean(x**2, last axis) + eps))``, shape ``[..., d]``. Compute the
        normalisation in float32 and cast back to ``x.dtype`` before multiplying by ``weight``
        (what HF's LlamaRMSNorm does; it matters for bfloat16).

    Example: ``rms_norm(torch.tensor([3.0, 4.0]), torch.ones(2), 0.0)`` is
    ``[3, 4] / sqrt(12.5) = [0.8485, 1.1314]``.

    About 3 lines.

    Read: learning/lesson01.md#rmsnorm-and-rope
    """
    if weight.shape != x.shape[-1:]:
        raise ValueError(f"weight must have shape [{x.shape[-1]}] (the last axis of x), "
                         f"got {tuple(weight.shape)}")
    ### BEGIN SOLUTION
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)
    ### END SOLUTION


def rope_cos_sin(positions: torch.Tensor, d_head: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines of the RoPE angles, laid out for ``apply_rope``.

    Args:
        positions: ``[T]`` int, the absolute position of each token (0 for the first token
            of a sequence; a later chunk continues where the previous one stopped).
        d_head: channels per head (even).
        theta: the RoPE base, e.g. 10000.0 (Llama 2) or 100000.0 (SmolLM2).
    Returns:
        ``cos, sin``: each ``[T, d_head]`` float32. Column ``i < d_head/2`` holds the angle
        ``positions[t] * theta ** (-2i / d_head)`` (radians); column ``i + d_head/2`` repeats it.

    About 4 lines.

    Read: learning/lesson01.md#rmsnorm-and-rope
    """
    if d_head % 2:
        raise ValueError(f"d_head must be even (RoPE rotates channel pairs), got {d_head}")
    if positions.dim() != 1 or positions.dtype.is_floating_point:
        raise ValueError(f"positions must be a 1-D integer tensor, got {positions.dtype} "
                         f"of shape {tuple(positions.shape)}")
    ### BEGIN SOLUTION
    inv_freq = theta ** (-torch.arange(0, d_head, 2, dtype=torch.float64,
                                       device=positions.device) / d_head)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # [T, d_head/2]
    angles = torch.cat([angles, angles], dim=-1).float()
    return angles.cos(), angles.sin()
    ### END SOLUTION


def apply_rope_spec(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The meaning of apply_rope, one channel pair at a time (slow on purpose)."""
    out = x.clone()
    half = x.shape[-1] // 2
    for i in range(half):
        a, b = x[..., i], x[..., i + half]
        c, s = cos[:, i], sin[:, i]  # the angle of pair i at each position
        out[..., i] = a * c - b * s
        out[..., i + half] = b * c + a * s
    return out


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair ``(i, i + d_head/2)`` of every head by its angle.

    Args:
        x: ``[batch, n_heads, T, d_head]`` queries or keys.
        cos, sin: ``[T, d_head]`` from ``rope_cos_sin``.
    Returns:
        ``[batch, n_heads, T, d_head]`` in ``x.dtype``: for ``a = x[..., i]``,
        ``b = x[..., i + d_head/2]`` the result holds ``a cos - b sin`` at ``i`` and
        ``b cos + a sin`` at ``i + d_head/2`` (see ``apply_rope_spec``). Position 0 is the
        identity. Vectorised: no Python loop over channels.

    About 3 lines: ``x * cos + rotate_half(x) * sin`` where ``rotate_half`` maps the halves
    ``(a, b)`` to ``(-b, a)``.

    Read: learning/lesson01.md#rmsnorm-and-rope
    """
    if cos.shape != sin.shape or cos.shape != (x.shape[-2], x.shape[-1]):
        raise ValueError(f"cos and sin must be [T={x.shape[-2]}, d_head={x.shape[-1]}] for x of "
                         f"shape {tuple(x.shape)}; got {tuple(cos.shape)} and {tuple(sin.shape)}")
    ### BEGIN SOLUTION
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos.to(x.dtype) + rotated * sin.to(x.dtype)).to(x.dtype)
    ### END SOLUTION
