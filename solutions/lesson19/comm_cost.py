"""What tensor parallelism costs: the ring all-reduce, as a formula and as a simulation.

A ring all-reduce of ``nbytes`` over N ranks (Patarasuk and Yuan 2009; NCCL's ring) cuts the
message into N chunks and runs N-1 reduce-scatter steps then N-1 all-gather steps. In every
step each rank sends one chunk (``nbytes / N``) to its right neighbour while receiving one from
its left, so every link is busy in ONE direction. Each rank therefore sends
``2 (N-1) / N x nbytes`` in all, and the time is

    t = 2 (N-1) x (latency + (nbytes / N) / link_bytes_per_s_per_direction).

Link bandwidths are per direction: NVLink4 on an H100/H200 is 450 GB/s each way (the "900 GB/s"
sums both), PCIe Gen5 x16 64 GB/s each way, Gen4 x16 32 GB/s (GB = 1e9 bytes).

Read: learning/lesson19.md#the-ring-all-reduce
"""

from __future__ import annotations

from course.config import LlamaConfig


def ring_allreduce_time(nbytes: float, world: int, link_bytes_per_s_per_direction: float,
                        latency_s: float = 0.0) -> float:
    """Seconds for a ring all-reduce of ``nbytes`` bytes over ``world`` ranks.

    ``2 (world - 1)`` steps, each ``latency_s`` plus one chunk of ``nbytes / world`` bytes at
    the per-direction link bandwidth. One rank needs no communication: 0.0.
    One line. Example: 1 GB over 4 ranks at 100 GB/s, no latency: 6 steps x 0.25 GB / 100 GB/s

    >>> round(ring_allreduce_time(1e9, 4, 100e9), 9)
    0.015

    Read: learning/lesson19.md#the-ring-all-reduce
    """
    if nbytes < 0 or world < 1 or link_bytes_per_s_per_direction <= 0 or latency_s < 0:
        raise ValueError(f"need nbytes >= 0, world >= 1, a positive bandwidth and latency >= 0; "
                         f"got {nbytes=}, {world=}, {link_bytes_per_s_per_direction=}, "
                         f"{latency_s=}")
    ### BEGIN SOLUTION
    return 2 * (world - 1) * (latency_s + nbytes / world / link_bytes_per_s_per_direction)
    ### END SOLUTION


def chunk_bounds(length: int, world: int) -> list[tuple[int, int]]:
    """[start, stop) of the ``world`` chunks of a vector of ``length`` elements.

    The first ``length % world`` chunks hold one element more (as ``torch.tensor_split``).
    """
    base, extra = divmod(length, world)
    bounds, start = [], 0
    for i in range(world):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def simulate_ring_allreduce(data: list[list[float]], bytes_per_element: int = 4
                            ) -> tuple[list[list[float]], list[int]]:
    """Run a ring all-reduce on plain Python lists; count the bytes each rank sends.

    Args:
        data: ``data[r]`` is rank r's vector; all the same length L.
        bytes_per_element: size of one element on the wire.
    Returns:
        ``(result, bytes_sent)``: ``result[r]`` is rank r's vector afterwards (every rank
        holds the elementwise sum), ``bytes_sent[r]`` what rank r sent in all.

    Split each vector into N chunks with ``chunk_bounds``. Reduce-scatter, steps s = 0..N-2:
    rank r sends chunk ``(r - s) mod N`` to rank ``(r + 1) mod N``, which ADDS it to its own.
    Afterwards rank r holds the full sum of chunk ``(r + 1) mod N``. All-gather, steps
    s = 0..N-2: rank r sends chunk ``(r + 1 - s) mod N`` to rank ``(r + 1) mod N``, which
    COPIES it. Within a step all sends happen at once: read every message before applying
    any. Do not modify ``data``. About 20 lines.

    Read: learning/lesson19.md#the-ring-all-reduce
    """
    if not data or len({len(v) for v in data}) != 1:
        raise ValueError("data must hold one vector per rank, all of the same length")
    ### BEGIN SOLUTION
    world = len(data)
    bounds = chunk_bounds(len(data[0]), world)
    buf = [list(v) for v in data]
    sent = [0] * world

    def step(chunk_of, accumulate: bool) -> None:
        messages = []
        for r in range(world):
            c = chunk_of(r)
            lo, hi = bounds[c]
            messages.append(((r + 1) % world, c, buf[r][lo:hi]))
            sent[r] += (hi - lo) * bytes_per_element
        for dst, c, payload in messages:
            lo, hi = bounds[c]
            if accumulate:
                buf[dst][lo:hi] = [a + b for a, b in zip(buf[dst][lo:hi], payload)]
            else:
                buf[dst][lo:hi] = payload

    for s in range(world - 1):
        step(lambda r: (r - s) % world, accumulate=True)
    for s in range(world - 1):
        step(lambda r: (r + 1 - s) % world, accumulate=False)
    return buf, sent
    ### END SOLUTION


def tp_decode_comm_time(cfg: LlamaConfig, batch: int, world: int,
                        link_bytes_per_s_per_direction: float, latency_s: float,
                        bytes_per_element: int = 2) -> float:
    """Seconds of all-reduce in one decode step of ``cfg`` at tensor-parallel size ``world``.

    Given code, built on your ``ring_allreduce_time``: each of the ``n_layers`` layers does
    two all-reduces (attention and MLP) of the new tokens' activations,
    ``batch x d_model x bytes_per_element`` bytes each.
    """
    message = batch * cfg.d_model * bytes_per_element
    return 2 * cfg.n_layers * ring_allreduce_time(message, world, link_bytes_per_s_per_direction,
                                                  latency_s)


def weight_read_time(cfg: LlamaConfig, world: int, memory_bytes_per_s: float,
                     bytes_per_element: int = 2) -> float:
    """Seconds one GPU of a TP group spends reading its share of the layer weights per decode
    step (the memory-bound part that TP divides by ``world``). Given code; embeddings omitted.
    """
    per_layer = (cfg.d_model * cfg.d_head * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)
                 + 3 * cfg.d_model * cfg.d_ff)
    return cfg.n_layers * per_layer * bytes_per_element / world / memory_bytes_per_s
