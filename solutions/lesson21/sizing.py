"""What an MoE model weighs and what expert parallelism sends over the wire.

Parameters (no biases, as in Mixtral): per layer, attention ``q, o: d_model x n_heads*d_head``,
``k, v: d_model x n_kv_heads*d_head``; two RMSNorm weights of ``d_model``; a router
``n_experts x d_model``; ``n_experts`` SwiGLU experts of ``3 * d_model * d_ff``. Plus the token
embedding ``vocab x d_model``, an output projection of the same size unless tied, and the final
norm ``d_model``. A token is computed by the shared parts and only ``top_k`` experts per layer:
those are its ACTIVE parameters; all of them must still be in memory.

Expert parallelism (EP, GShard): each of ``ep`` ranks holds ``n_experts / ep`` experts and its
own tokens. Dispatch is an all-to-all that sends each assignment's hidden vector to the rank of
its expert; combine sends the outputs back the same way.

Read: learning/lesson21.md#total-and-active-parameters
"""

from __future__ import annotations

from course.moe import MoEConfig


def moe_params(cfg: MoEConfig) -> tuple[int, int]:
    """Total and active parameters of a Mixtral-style MoE decoder.

    Args:
        cfg: a ``course.moe.MoEConfig``.
    Returns:
        ``(total, active)`` as ints: ``total`` counts every expert of every layer; ``active``
        counts only ``cfg.top_k`` experts per layer (the router, attention, norms, embeddings
        and output projection count in both). Mixtral-8x7B: about 46.7e9 and 12.9e9.

    About 8 lines.

    Read: learning/lesson21.md#total-and-active-parameters
    """
    if not isinstance(cfg, MoEConfig):
        raise TypeError(f"cfg must be a course.moe.MoEConfig, got {type(cfg).__name__}")
    ### BEGIN SOLUTION
    d = cfg.d_model
    attention = 2 * d * cfg.n_heads * cfg.d_head + 2 * d * cfg.n_kv_heads * cfg.d_head
    shared_per_layer = attention + 2 * d + cfg.n_experts * d  # + two norms + router
    expert = 3 * d * cfg.d_ff
    outside = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2) + d  # + final norm
    total = cfg.n_layers * (shared_per_layer + cfg.n_experts * expert) + outside
    active = cfg.n_layers * (shared_per_layer + cfg.top_k * expert) + outside
    return total, active
    ### END SOLUTION


def ep_all_to_all_bytes(n_tokens: int, k: int, d_model: int, ep: int,
                        dtype_bytes: int) -> float:
    """Bytes ONE rank sends in ONE dispatch all-to-all of an MoE layer under expert parallelism.

    Args:
        n_tokens: tokens on this rank; k: experts per token; d_model: hidden width (channels);
        ep: ranks the experts are spread over (>= 1); dtype_bytes: bytes per activation
            element (2 for bf16).
    Returns:
        bytes as a float, the expected value when routing is uniform: each of the
        ``n_tokens * k`` assignments sends a ``d_model`` vector, and a fraction ``(ep - 1) / ep``
        of them goes to another rank (the rest stay local and cost no wire). One copy per
        assignment (no merging of two choices that land on the same rank). The combine
        all-to-all sends the same number of bytes back, so a layer moves twice this.

    Example: 4,096 tokens, top-2, d_model 4,096, bf16, ep 8 -> 4096 * 2 * 4096 * 2 * 7/8 =
    58,720,256 B. About 2 lines.

    Read: learning/lesson21.md#expert-parallelism-two-all-to-alls-per-layer
    """
    for name, value in (("n_tokens", n_tokens), ("k", k), ("d_model", d_model), ("ep", ep),
                        ("dtype_bytes", dtype_bytes)):
        if isinstance(value, bool) or int(value) != value or value < (0 if name == "n_tokens" else 1):
            raise ValueError(f"{name} must be a whole number >= "
                             f"{0 if name == 'n_tokens' else 1}, got {value}")
    ### BEGIN SOLUTION
    return n_tokens * k * d_model * dtype_bytes * (ep - 1) / ep
    ### END SOLUTION
