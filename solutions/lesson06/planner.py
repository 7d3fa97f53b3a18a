"""Capacity plan: how many tokens, and how many sequences of a given length, fit on N GPUs.

Memory model (stated, so tests and text agree):

- Each GPU has ``gpu.memory_bytes`` (the fixture's nominal capacity: the datasheet's "80GB" is
  80 GiB = 85,899,345,920 B; the device itself reports a little less).
- On each GPU a fraction ``reserve_fraction`` of that is never planned (CUDA context, driver,
  ECC, allocator slack: vLLM's ``gpu_memory_utilization=0.9`` is reserve 0.1), and a further
  ``overhead_bytes`` is set aside for activations and workspace:
  ``usable per GPU = floor(memory_bytes x (1 - reserve_fraction)) - overhead_bytes``.
- The weights are split evenly over the ``n_gpus`` (tensor parallelism; replication of KV heads
  when ``n_gpus > n_kv_heads`` is ignored), so the pool is
  ``kv_budget = max(0, n_gpus x usable per GPU - weights_bytes)``.
- ``max_tokens = kv_budget // kv_bytes_per_token``; ``max_batch_at_context = max_tokens //
  context_len`` (every sequence reserves its whole context).

Read: learning/lesson06.md#the-plan
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from course.config import LlamaConfig
from hardware_fixtures import GPUSpec

from .capacity import check_llama, kv_bytes_per_token, weights_bytes


@dataclass(frozen=True)
class Plan:
    """What fits: all byte counts are totals over the ``n_gpus`` GPUs."""

    n_gpus: int
    usable_bytes: int            # n_gpus x usable per GPU (after reserve and overhead)
    weights_bytes: int
    kv_bytes_per_token: int
    kv_budget_bytes: int         # usable_bytes - weights_bytes, never negative
    max_tokens: int              # KV slots that fit in the budget
    context_len: int
    max_batch_at_context: int    # sequences of context_len tokens that fit

    @property
    def fits(self) -> bool:
        """True when at least one full-length sequence fits beside the weights."""
        return self.max_batch_at_context >= 1


def check_plan_inputs(gpu: GPUSpec, n_gpus: int, reserve_fraction: float,
                      overhead_bytes: int, context_len: int) -> None:
    """Raise ValueError, in plain words, for a plan that means nothing."""
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be at least 1, got {n_gpus}")
    if not 0 <= reserve_fraction < 1:
        raise ValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction}")
    if overhead_bytes < 0:
        raise ValueError(f"overhead_bytes must not be negative, got {overhead_bytes}")
    if context_len < 1:
        raise ValueError(f"context_len must be at least 1 token, got {context_len}")
    if gpu.memory_bytes <= 0:
        raise ValueError(f"{gpu.name}: memory_bytes must be positive")


def plan(cfg: LlamaConfig, gpu: GPUSpec, n_gpus: int = 1, *,
         weight_bytes_per_param: float | str = "bf16", kv_bytes_per_elem: float | str = "bf16",
         reserve_fraction: float = 0.1, overhead_bytes: int = 0,
         context_len: int | None = None) -> Plan:
    """Plan the KV cache of ``cfg`` on ``n_gpus`` GPUs of kind ``gpu``.

    Args:
        cfg: the model's shape.
        gpu: a fixture, e.g. ``hardware_fixtures.load("h100_sxm")``; uses ``gpu.memory_bytes``.
        n_gpus: GPUs the model is split over.
        weight_bytes_per_param, kv_bytes_per_elem: formats ("bf16", "fp8", ...) or bytes.
        reserve_fraction: share of each GPU's memory never planned (0.1 = use 90%).
        overhead_bytes: bytes per GPU for activations and workspace.
        context_len: tokens per sequence; default ``cfg.max_position``.
    Returns:
        a ``Plan`` following the memory model in the module docstring (integer bytes, floors).

    Example: Llama-3-8B, bf16 weights and KV, one H100 SXM, reserve 0.1: usable 77,309,411,328 B,
    weights 16,060,522,496 B, KV budget 61,248,888,832 B, 467,291 tokens, 57 sequences of 8192.
    About 10 lines.

    Read: learning/lesson06.md#the-plan
    """
    check_llama(cfg)
    context_len = cfg.max_position if context_len is None else context_len
    check_plan_inputs(gpu, n_gpus, reserve_fraction, overhead_bytes, context_len)
    ### BEGIN SOLUTION
    per_gpu = int(gpu.memory_bytes * (1 - reserve_fraction)) - overhead_bytes
    usable = n_gpus * per_gpu
    weights = weights_bytes(cfg, weight_bytes_per_param)
    per_token = kv_bytes_per_token(cfg, kv_bytes_per_elem)
    budget = max(0, usable - weights)
    tokens = budget // per_token
    return Plan(n_gpus=n_gpus, usable_bytes=usable, weights_bytes=weights,
                kv_bytes_per_token=per_token, kv_budget_bytes=budget, max_tokens=tokens,
                context_len=context_len, max_batch_at_context=tokens // context_len)
    ### END SOLUTION


def min_gpus(cfg: LlamaConfig, gpu: GPUSpec, target_batch: int, context_len: int, *,
             choices: Iterable[int] | None = None, max_gpus: int = 64, **plan_kwargs) -> int | None:
    """The fewest GPUs whose plan holds ``target_batch`` sequences of ``context_len`` tokens.

    Args:
        cfg, gpu: as for ``plan``.
        target_batch: sequences that must fit at once (at least 1).
        context_len: tokens of each.
        choices: the GPU counts allowed (e.g. ``(1, 2, 4, 8)`` when tensor parallelism must
            divide the heads); default ``1 .. max_gpus``.
        plan_kwargs: passed to ``plan`` (formats, reserve_fraction, overhead_bytes).
    Returns:
        the smallest allowed ``n`` with ``plan(..., n).max_batch_at_context >= target_batch``,
        or None if no allowed count is enough. Minimal: the next smaller allowed count does not
        fit. About 5 lines (a loop over sorted choices calling ``plan``).

    Example: Llama-2-7B (bf16, MHA) with 64 sequences of 4096 tokens on H100 SXMs, reserve
    0.1: 2 GPUs (one H100 holds 29 such sequences).

    Read: learning/lesson06.md#the-fewest-gpus
    """
    if target_batch < 1:
        raise ValueError(f"target_batch must be at least 1, got {target_batch}")
    counts = sorted(set(range(1, max_gpus + 1) if choices is None else choices))
    if not counts or counts[0] < 1:
        raise ValueError(f"GPU counts must be positive, got {counts}")
    ### BEGIN SOLUTION
    for n in counts:
        p = plan(cfg, gpu, n, context_len=context_len, **plan_kwargs)
        if p.max_batch_at_context >= target_batch:
            return n
    return None
    ### END SOLUTION
