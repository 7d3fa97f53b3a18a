"""RMSNorm followed by RoPE on each head's query (QK-norm, as in Qwen3), fused into one pass.

Eager PyTorch runs ``hf_rms_norm`` then ``hf_apply_rope`` (course.hf_layers) as about fifteen
kernels, each reading its inputs from memory and writing its result back. Both operators are
elementwise along the last axis apart from one row reduction, so one kernel can read ``x`` once,
keep the row in registers, and write the result once. ``torch.compile`` writes that kernel from
a plain torch function, provided the function is one graph: no ``.item()``, no Python branch on
a tensor's values, no printing of tensors.

Layout, as in course.hf_layers: ``x: [batch, heads, tokens, d_head]``, ``weight: [d_head]`` (the
norm's gain, in x's dtype in a checkpoint), ``cos, sin: [tokens, d_head]`` float32 from
``hf_rope_cos_sin``. RoPE pairs channel ``i`` with ``i + d_head / 2`` (HF's ``rotate_half``).

Read: learning/lesson08.md#fusing-rmsnorm-and-rope
"""

from __future__ import annotations

import torch


def check_norm_rope_inputs(x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor,
                           sin: torch.Tensor, eps: float) -> None:
    """Raise ValueError, in plain words, for inputs the fused function cannot take."""
    if x.dim() != 4 or x.shape[-1] % 2:
        raise ValueError("x must be [batch, heads, tokens, d_head] with an even d_head; got "
                         f"shape {tuple(x.shape)}")
    tokens, d_head = x.shape[-2:]
    if weight.shape != (d_head,):
        raise ValueError(f"weight must be [d_head={d_head}], got {tuple(weight.shape)}")
    if cos.shape != (tokens, d_head) or sin.shape != (tokens, d_head):
        raise ValueError(f"cos and sin must be [tokens={tokens}, d_head={d_head}]; got "
                         f"{tuple(cos.shape)} and {tuple(sin.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


def fused_rmsnorm_rope(x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor,
                       sin: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over each head's ``d_head`` channels, then the rotary embedding, in one function.

    Args:
        x: ``[batch, heads, tokens, d_head]``, any float dtype; not modified.
        weight: ``[d_head]``, the norm's gain.
        cos, sin: ``[tokens, d_head]`` (float32), the rotation of each token's position.
        eps: added to the mean of squares before the square root.
    Returns:
        ``[batch, heads, tokens, d_head]`` in x's dtype, equal (to within rounding) to
        ``hf_apply_rope(hf_rms_norm(x, weight, eps), k, cos, sin)[0]``: with ``n = x /
        sqrt(mean(x^2 over d_head) + eps) * weight``, the result is ``n * cos +
        rotate_half(n) * sin`` where ``rotate_half(n) = cat(-n[..., d/2:], n[..., :d/2])``.

    Compute in float32 (squares of fp16 activations overflow past 65504) and round once at the
    end. Write it as plain torch ops, one graph: ``torch.compile(fused_rmsnorm_rope,
    fullgraph=True)`` must accept it, and then it runs as one kernel. About 6 lines.

    Read: learning/lesson08.md#fusing-rmsnorm-and-rope
    """
    check_norm_rope_inputs(x, weight, cos, sin, eps)
    ### BEGIN SOLUTION
    xf = x.float()
    n = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps) * weight.float()
    half = x.shape[-1] // 2
    rotated = torch.cat((-n[..., half:], n[..., :half]), dim=-1)
    return (n * cos.float() + rotated * sin.float()).to(x.dtype)
    ### END SOLUTION


def rmsnorm_rope_bytes(batch: int, heads: int, tokens: int, d_head: int, x_bytes: int,
                       fused: bool) -> int:
    """Bytes that RMSNorm then RoPE move, unfused (eager) or fused (one kernel).

    Args:
        batch, heads, tokens, d_head: the shape of x.
        x_bytes: bytes per element of x, of the weight and of the output: 2 for bf16 or fp16,
            4 for float32. The cos and sin tables are float32 (4 bytes) whatever x is.
        fused: True for one kernel: read x, the weight, cos and sin once each, write the result
            once. False for the eager chain as torch runs it on the CPU, one kernel per op
            (views such as slicing move nothing), with ``N = batch x heads x tokens x d_head``
            elements of x, ``R = N / d_head`` rows and ``P = tokens x d_head`` table entries;
            reads + writes in bytes, ``s = x_bytes``:

            ===  =====================================  ==============  =========
            op   what it computes                       reads           writes
            ===  =====================================  ==============  =========
            1    ``x.float()`` (not run when s == 4)    s N             4 N
            2    ``pow(2)``                             4 N             4 N
            3    ``mean(-1)``                           4 N             4 R
            4    ``add_(eps)``, in place                4 R             4 R
            5    ``rsqrt``                              4 R             4 R
            6    x times 1/rms                          4 N + 4 R       4 N
            7    ``.to(x.dtype)`` (not run when s == 4) 4 N             s N
            8    ``weight * normed``                    s d_head + s N  s N
            9    ``cos.to(x.dtype)`` (not run, s == 4)  4 P             s P
            10   ``sin.to(x.dtype)`` (not run, s == 4)  4 P             s P
            11   ``normed * cos``                       s N + s P       s N
            12   ``neg`` of the upper half              s N / 2         s N / 2
            13   ``cat`` of the two halves              s N             s N
            14   ``rotated * sin``                      s N + s P       s N
            15   the sum of 11 and 14                   2 s N           s N
            ===  =====================================  ==============  =========
    Returns:
        Bytes read plus bytes written, an int.

    Example: bf16 x of shape ``[1, 2, 4, 64]`` (N = 512): fused, x 1,024 B + weight 128 B +
    cos and sin 1,024 B each + output 1,024 B. About 8 lines.

        >>> rmsnorm_rope_bytes(1, 2, 4, 64, 2, fused=True)
        4224
        >>> rmsnorm_rope_bytes(1, 2, 4, 64, 2, fused=False)
        33088

    Read: learning/lesson08.md#what-fusion-saves
    """
    sizes = [batch, heads, tokens, d_head]
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes):
        raise ValueError(f"batch, heads, tokens, d_head must be whole numbers >= 1; got {sizes}")
    if x_bytes not in (2, 4):
        raise ValueError(f"x_bytes must be 2 (bf16/fp16) or 4 (float32), got {x_bytes!r}")
    ### BEGIN SOLUTION
    s, N = x_bytes, batch * heads * tokens * d_head
    R, P = N // d_head, tokens * d_head
    if fused:
        return s * N + s * d_head + 2 * 4 * P + s * N
    total = 8 * N + (4 * N + 4 * R) + 8 * R + 8 * R + (8 * N + 4 * R)  # ops 2-6, float32
    total += (2 * s * N + s * d_head) + (2 * s * N + s * P) + s * N + 2 * s * N \
        + (2 * s * N + s * P) + 3 * s * N  # ops 8, 11-15, in x's dtype
    if s != 4:
        total += 2 * (s + 4) * N + 2 * (4 + s) * P  # the casts: ops 1, 7, 9, 10
    return total
    ### END SOLUTION
