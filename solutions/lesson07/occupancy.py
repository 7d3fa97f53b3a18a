"""How many blocks of a kernel one SM can hold at once, and what stops it holding more.

An SM keeps every resident warp's registers and every resident block's shared memory on chip
at the same time, so a launch configuration (threads per block, registers per thread, shared
memory per block) decides how many blocks fit. These are the CUDA occupancy rules as the CUDA
Toolkit's calculator (``cuda_occupancy.h``) applies them, with the per-SM limits of
``hardware_fixtures`` (``GPUSpec.sm``, a ``SMLimits``).

Read: learning/lesson07.md#occupancy-what-fits-on-one-sm
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware_fixtures.spec import SMLimits

LIMITS = ("warps", "registers", "shared_memory", "blocks")  # the order limited_by lists them in


@dataclass(frozen=True)
class Occupancy:
    """One launch configuration on one SM.

    ``blocks_by_limit`` maps each name of ``LIMITS`` to the blocks that limit alone allows;
    ``blocks_per_sm`` is the smallest of them and ``limited_by`` names every limit that equals
    it, in the order of ``LIMITS``. ``occupancy_fraction = active_warps / max warps per SM``.
    """

    blocks_per_sm: int
    active_warps: int
    occupancy_fraction: float
    limited_by: tuple[str, ...]
    blocks_by_limit: dict[str, int]


def _round_up(x: int, unit: int) -> int:
    return -(-x // unit) * unit


def occupancy(threads_per_block: int, registers_per_thread: int,
              shared_memory_per_block_bytes: int, sm: SMLimits) -> Occupancy:
    """Resident blocks per SM for a kernel, and which limit binds.

    Args:
        threads_per_block: 1 .. ``sm.max_threads_per_block_count`` (1024).
        registers_per_thread: 32-bit registers the compiler gave each thread, 1 .. 255.
        shared_memory_per_block_bytes: static plus dynamic shared memory of one block, bytes,
            0 .. ``sm.max_shared_memory_per_block_bytes``.
        sm: the per-SM limits, e.g. ``hardware_fixtures.load("h100_sxm").sm``.
    Returns:
        ``Occupancy``. The four limits, each a number of blocks:

        - warps: ``max_warps_per_sm // warps_per_block``, with
          ``warps_per_block = ceil(threads_per_block / 32)`` (a part-filled warp is a whole warp);
        - registers: ``regs_per_warp = round_up(registers_per_thread x 32, 256)``; the register
          file is split over 4 sub-partitions, so ``warps = (registers_per_sm / 4 //
          regs_per_warp) x 4`` and the limit is ``warps // warps_per_block``: 0 when one
          block's warps do not fit (such a launch fails);
        - shared_memory: ``shared_memory_per_sm // round_up(shared_memory_per_block + 1024, 128)``:
          the driver reserves 1 KiB per block, and allocates in units of 128 B;
        - blocks: ``max_blocks_per_sm``.

    Example: on an H100, 256 threads with 33 registers each: a warp needs 1056 registers,
    rounded up to 1280; a quarter SM (16,384 registers) holds 12 such warps, the SM 48, so
    6 blocks of 8 warps: occupancy 48 / 64 = 0.75, limited by registers. About 15 lines.

    Read: learning/lesson07.md#occupancy-what-fits-on-one-sm
    """
    if not 1 <= threads_per_block <= sm.max_threads_per_block_count:
        raise ValueError(f"threads_per_block must be 1 .. {sm.max_threads_per_block_count} on "
                         f"compute capability {sm.compute_capability}, got {threads_per_block}")
    if not 1 <= registers_per_thread <= sm.max_registers_per_thread_count:
        raise ValueError(f"registers_per_thread must be 1 .. {sm.max_registers_per_thread_count}"
                         f" (the most a thread can address), got {registers_per_thread}")
    if not 0 <= shared_memory_per_block_bytes <= sm.max_shared_memory_per_block_bytes:
        raise ValueError(
            f"shared_memory_per_block_bytes must be 0 .. {sm.max_shared_memory_per_block_bytes:,}"
            f" (the opt-in limit per block on compute capability {sm.compute_capability}), "
            f"got {shared_memory_per_block_bytes:,}")
    ### BEGIN SOLUTION
    warps_per_block = -(-threads_per_block // sm.threads_per_warp_count)
    by_warps = sm.max_warps_per_sm_count // warps_per_block

    regs_per_warp = _round_up(registers_per_thread * sm.threads_per_warp_count,
                              sm.register_allocation_unit_count)
    parts = sm.sub_partitions_per_sm_count
    warps_per_part = sm.registers_per_sm_count // parts // regs_per_warp
    by_registers = warps_per_part * parts // warps_per_block

    smem = _round_up(shared_memory_per_block_bytes + sm.reserved_shared_memory_per_block_bytes,
                     sm.shared_memory_allocation_unit_bytes)
    by_smem = sm.shared_memory_per_sm_bytes // smem

    limits = {"warps": by_warps, "registers": by_registers, "shared_memory": by_smem,
              "blocks": sm.max_blocks_per_sm_count}
    blocks = min(limits.values())
    active = blocks * warps_per_block
    return Occupancy(blocks, active, active / sm.max_warps_per_sm_count,
                     tuple(name for name in LIMITS if limits[name] == blocks), limits)
    ### END SOLUTION


def smem_bytes_for_tile(bm: int, bn: int, bk: int, dtype_bytes: int, stages: int) -> int:
    """Shared memory of a tiled matmul block that keeps ``stages`` tiles of A and B in flight.

    A block computing a ``bm x bn`` tile of ``C = A @ B`` walks K in steps of ``bk``; each step
    stages a ``bm x bk`` tile of A and a ``bk x bn`` tile of B. A pipeline of ``stages`` steps
    (loads for the next steps in flight while the current one computes) holds that many.

    Args:
        bm, bn, bk: tile sizes in elements, each >= 1.
        dtype_bytes: bytes per element of A and B (2 for bf16, 1 for fp8), >= 1.
        stages: pipeline depth, >= 1.
    Returns:
        Bytes: ``stages x (bm x bk + bk x bn) x dtype_bytes``.

    >>> smem_bytes_for_tile(128, 128, 64, 2, 4)      # 128 KiB
    131072

    Read: learning/lesson07.md#shared-memory-of-a-pipelined-tile
    """
    for name, value in (("bm", bm), ("bn", bn), ("bk", bk), ("dtype_bytes", dtype_bytes),
                        ("stages", stages)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    ### BEGIN SOLUTION
    return stages * (bm * bk + bk * bn) * dtype_bytes
    ### END SOLUTION


def tile_fits(bm: int, bn: int, bk: int, dtype_bytes: int, stages: int, sm: SMLimits) -> bool:
    """True when one block with this tile and pipeline depth can launch on this SM.

    The block's shared memory (``smem_bytes_for_tile``) must be at most the per-block opt-in
    limit ``sm.max_shared_memory_per_block_bytes`` (227 KiB on an H100: the SM's 228 KiB less
    the 1 KiB the driver keeps per block). A tile exactly at the limit fits.

    Read: learning/lesson07.md#shared-memory-of-a-pipelined-tile
    """
    ### BEGIN SOLUTION
    return smem_bytes_for_tile(bm, bn, bk, dtype_bytes, stages) <= sm.max_shared_memory_per_block_bytes
    ### END SOLUTION
