"""An analytic time model of generation: prefill is compute-bound, decode is memory-bound.

Each phase takes at least as long as its arithmetic at the GPU's peak rate, and at least as
long as its memory traffic at the GPU's bandwidth; the roofline model (Williams et al., 2009)
says it takes the larger of the two:

    time = max(FLOPs / peak_flops, bytes / bandwidth)

FLOPs count the linear layers only: ``2 x n_params`` per token (a multiply-add is 2 FLOPs).
Bytes count the weights, read once per forward pass (``n_params x bytes_per_param``), plus,
in decode, the KV cache every step reads (``kv_tokens x kv_bytes_per_token``). Attention's own
FLOPs are left out: small next to ``2 x n_params`` per token at the context lengths used here.

Units: seconds, FLOP/s, bytes/s (GB = 1e9 B). Example: Llama-2-7B (6.74e9 parameters) in fp16
on an A10 (600 GB/s) decodes at batch 1 in about 6.74e9 x 2 / 600e9 = 22.5 ms per token.

Read: learning/lesson03.md#the-time-model
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware_fixtures import GPUSpec


@dataclass(frozen=True)
class PhaseTimes:
    """Seconds spent in each phase of one batched generation."""

    prefill_s: float  # the prompt forward pass: time to first token
    decode_s: float   # every decode step after it, summed

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.decode_s


def roofs(spec: GPUSpec, dtype: str = "bf16") -> tuple[float, float]:
    """``(peak_flops, bandwidth)`` of a hardware fixture: dense FLOP/s in ``dtype``, bytes/s."""
    return spec.peak_flops(dtype), spec.memory_bandwidth_bytes_per_s


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


def prefill_time_s(n_params: float, n_tokens: int, *, bytes_per_param: float,
                   peak_flops: float, bandwidth: float) -> float:
    """Seconds for one forward pass over ``n_tokens`` prompt tokens (all sequences together).

    FLOPs ``2 x n_params x n_tokens``; bytes: the weights once, ``n_params x bytes_per_param``
    (the prompt's own KV writes are ignored). Returns ``max(FLOPs / peak_flops, bytes /
    bandwidth)``. One line.

    Example: 7e9 parameters, 2048 tokens, fp16 on 1e15 FLOP/s and 3e12 B/s:
    max(2.87e13 / 1e15, 1.4e10 / 3e12) = max(28.7 ms, 4.7 ms) = 28.7 ms: compute-bound.

    Read: learning/lesson03.md#the-time-model
    """
    _check_positive(n_params=n_params, n_tokens=n_tokens, bytes_per_param=bytes_per_param,
                    peak_flops=peak_flops, bandwidth=bandwidth)
    ### BEGIN SOLUTION
    return max(2 * n_params * n_tokens / peak_flops, n_params * bytes_per_param / bandwidth)
    ### END SOLUTION


def decode_step_time_s(n_params: float, batch: int, kv_tokens: int, *, bytes_per_param: float,
                       kv_bytes_per_token: float, peak_flops: float, bandwidth: float) -> float:
    """Seconds for one decode step producing one token for each of ``batch`` sequences.

    Args:
        kv_tokens: cached tokens the step reads, summed over the whole batch (each sequence
            reads its own cache: 8 sequences of 1000 tokens -> 8000).
        kv_bytes_per_token: bytes of K and V per token, all layers (lesson 04).
    FLOPs ``2 x n_params x batch``; bytes: the weights once (shared by the batch) plus
    ``kv_tokens x kv_bytes_per_token``. Returns the max of the two times. One line.

    So while memory-bound, a bigger batch costs more only through its KV bytes: the weight
    read is shared.

    Read: learning/lesson03.md#the-time-model
    """
    _check_positive(n_params=n_params, batch=batch, bytes_per_param=bytes_per_param,
                    peak_flops=peak_flops, bandwidth=bandwidth)
    if kv_tokens < 0 or kv_bytes_per_token < 0:
        raise ValueError(f"kv_tokens and kv_bytes_per_token must be >= 0, got {kv_tokens!r} "
                         f"and {kv_bytes_per_token!r}")
    ### BEGIN SOLUTION
    nbytes = n_params * bytes_per_param + kv_tokens * kv_bytes_per_token
    return max(2 * n_params * batch / peak_flops, nbytes / bandwidth)
    ### END SOLUTION


def phase_time_model(n_params: float, n_in: int, n_out: int, batch: int, *,
                     bytes_per_param: float, kv_bytes_per_token: float, peak_flops: float,
                     bandwidth: float) -> PhaseTimes:
    """Prefill and decode time of ``batch`` sequences, each ``n_in`` prompt tokens long,
    each generating ``n_out`` tokens.

    The prefill runs ``batch x n_in`` tokens and yields the first output token. The other
    ``n_out - 1`` tokens take one decode step each; decode step ``s`` (s = 1 .. n_out - 1)
    runs when each sequence holds ``n_in + s`` tokens in its cache (the prompt, the s
    tokens generated so far; the newest is written and read by this very step), so it reads
    ``batch x (n_in + s)`` cached tokens. ``n_out == 1`` means no decode step at all.

    Example: n_in 3, n_out 3, batch 2 -> prefill of 6 tokens, then steps reading 8 and 10
    cached tokens. About 6 lines, using the two functions above.

    Read: learning/lesson03.md#the-time-model
    """
    if n_in < 1 or n_out < 1 or batch < 1:
        raise ValueError(f"need n_in, n_out and batch >= 1, got {n_in}, {n_out}, {batch}")
    ### BEGIN SOLUTION
    prefill = prefill_time_s(n_params, batch * n_in, bytes_per_param=bytes_per_param,
                             peak_flops=peak_flops, bandwidth=bandwidth)
    decode = sum(decode_step_time_s(n_params, batch, batch * (n_in + s),
                                    bytes_per_param=bytes_per_param,
                                    kv_bytes_per_token=kv_bytes_per_token,
                                    peak_flops=peak_flops, bandwidth=bandwidth)
                 for s in range(1, n_out))
    return PhaseTimes(prefill_s=prefill, decode_s=decode)
    ### END SOLUTION
