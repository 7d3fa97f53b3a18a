"""What a disaggregated deployment costs: the KV hand-off over a link, and how many instances.

Prefill runs on one pool of GPUs, decode on another; after a prompt's prefill its KV cache
crosses a link to a decode instance. The transfer moves every layer's K and V of every prompt
token:

    bytes = prompt_len x 2 (K and V) x n_layers x n_kv_heads x d_head x dtype_bytes
    time  = bytes / link bytes per second, in ONE direction

(the KV bytes per token of lesson 04, once more). A link's datasheet figure is often the sum of
both directions (NVLink4: "900 GB/s" = 450 GB/s each way; PCIe Gen5 x16: "128 GB/s" = 64 GB/s
each way) and a network card's is in bits (400 Gb/s = 50 GB/s). GB = 1e9 bytes.

Read: learning/lesson22.md#the-price-of-the-hand-off
"""

from __future__ import annotations

import math

from course.config import LlamaConfig

UNITS = ("GB/s", "Gb/s")


def link_bytes_per_s_per_direction(rate: float, unit: str, bidirectional: bool) -> float:
    """Bytes per second one way of a link quoted as ``rate`` ``unit`` on a datasheet.

    ``unit`` is ``"GB/s"`` (gigabytes, 1e9 B) or ``"Gb/s"`` (gigabits: network cards are rated
    in bits, 8 to a byte). ``bidirectional=True`` means the figure adds both directions (NVLink's
    900 GB/s, PCIe's 128 GB/s): one direction carries half. Two lines.

    >>> link_bytes_per_s_per_direction(400, "Gb/s", bidirectional=False)
    50000000000.0

    Read: learning/lesson22.md#the-price-of-the-hand-off
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS} (bytes or bits per second), got {unit!r}")
    if not rate > 0:
        raise ValueError(f"a link rate must be positive, got {rate!r} {unit}")
    raise NotImplementedError('lesson22: link_bytes_per_s_per_direction - read learning/lesson22.md#the-price-of-the-hand-off')


def kv_transfer_time(cfg: LlamaConfig, prompt_len: int, link_bytes_per_s_per_direction: float,
                     dtype_bytes: float = 2) -> float:
    """Seconds to ship the KV cache of a ``prompt_len``-token prompt over one direction of a link.

    ``prompt_len x 2 x n_layers x n_kv_heads x d_head x dtype_bytes`` bytes (K and V, every
    layer, the KV heads only: GQA shares them) divided by ``link_bytes_per_s_per_direction``.
    ``prompt_len`` 0 costs 0.0. Example: Llama-3-8B, 4,096 tokens in bf16 is 512 MiB; over a
    50 GB/s link that is 10.74 ms. Two lines.

    Read: learning/lesson22.md#the-price-of-the-hand-off
    """
    if prompt_len < 0 or not link_bytes_per_s_per_direction > 0 or not dtype_bytes > 0:
        raise ValueError(f"need prompt_len >= 0, a positive link bandwidth and dtype_bytes > 0; "
                         f"got {prompt_len=}, {link_bytes_per_s_per_direction=}, {dtype_bytes=}")
    raise NotImplementedError('lesson22: kv_transfer_time - read learning/lesson22.md#the-price-of-the-hand-off')


def pd_ratio(prefill_tokens_per_s_per_instance: float, decode_tokens_per_s_per_instance: float,
             arrival_rate: float, mean_in: float, mean_out: float) -> tuple[int, int]:
    """The fewest prefill and decode instances that keep up with a workload: ``(n_p, n_d)``.

    Requests arrive at ``arrival_rate`` per second with ``mean_in`` prompt tokens and
    ``mean_out`` output tokens on average. The prefill pool must process
    ``arrival_rate x mean_in`` prompt tokens per second, the decode pool must generate
    ``arrival_rate x mean_out`` tokens per second (all output tokens counted on the decode side:
    one token per request too many, on the safe side). Each pool needs its demand divided by one
    instance's throughput, rounded UP to a whole instance (a fraction of an instance does not
    exist; 2.1 instances' worth of work needs 3). A quotient within 1e-9 of a whole number counts
    as that number (floating-point noise must not buy an instance). All five arguments must be
    positive. Four lines.

    Read: learning/lesson22.md#how-many-of-each
    """
    named = {"prefill_tokens_per_s_per_instance": prefill_tokens_per_s_per_instance,
             "decode_tokens_per_s_per_instance": decode_tokens_per_s_per_instance,
             "arrival_rate": arrival_rate, "mean_in": mean_in, "mean_out": mean_out}
    for name, value in named.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                or not math.isfinite(value):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    raise NotImplementedError('lesson22: pd_ratio - read learning/lesson22.md#how-many-of-each')
