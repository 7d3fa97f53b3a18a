"""Lesson 07, part 1: occupancy and the shared memory of a pipelined tile.
Run: pytest exercises/lesson07

Expected values are worked by hand from the CUDA occupancy rules (learning/lesson07.md), with
the arithmetic beside each case; the per-SM limits come from hardware_fixtures.
"""

import pytest

import hardware_fixtures
from exercises.lesson07.occupancy import occupancy, smem_bytes_for_tile, tile_fits

H100 = hardware_fixtures.load("h100_sxm").sm      # 64 warps, 32 blocks, 228 KiB shared memory
A10G = hardware_fixtures.load("a10g").sm          # 48 warps, 16 blocks, 100 KiB shared memory


def test_warps_bind():
    # 256 threads = 8 warps -> 64 // 8 = 8 blocks; 16 regs: 512 per warp, 32 warps per quarter
    # -> 128 warps -> 16 blocks; shared memory 1 KiB reserved -> 228 blocks; block limit 32.
    o = occupancy(256, 16, 0, H100)
    assert (o.blocks_per_sm, o.active_warps, o.limited_by) == (8, 64, ("warps",))
    assert o.occupancy_fraction == 1.0


def test_register_allocation_unit_matters():
    # 33 regs x 32 threads = 1056 registers per warp, rounded up to 1280; a quarter SM's 16,384
    # registers hold 12 such warps, the SM 48 -> 48 // 8 = 6 blocks (7 without the rounding).
    o = occupancy(256, 33, 0, H100)
    assert (o.blocks_per_sm, o.limited_by, o.occupancy_fraction) == (6, ("registers",), 0.75)
    assert o.blocks_by_limit["warps"] == 8


def test_the_1_kib_reservation_matters():
    # 45 KiB + 1 KiB reserved = 47,104 B per block; 233,472 // 47,104 = 4 (5 without the reserve).
    o = occupancy(128, 32, 45 * 1024, H100)
    assert (o.blocks_per_sm, o.limited_by, o.occupancy_fraction) == (4, ("shared_memory",), 0.25)


def test_block_limit_binds_for_small_blocks():
    # 64 threads = 2 warps -> 24 blocks by warps; 16 regs -> 64 blocks; the A10G holds 16 blocks.
    o = occupancy(64, 16, 0, A10G)
    assert (o.blocks_per_sm, o.active_warps, o.limited_by) == (16, 32, ("blocks",))
    assert o.occupancy_fraction == pytest.approx(32 / 48)


@pytest.mark.parametrize("args, what", [
    ((0, 32, 0), "threads_per_block"),
    ((1025, 32, 0), "threads_per_block"),
    ((128, 256, 0), "registers_per_thread"),
    ((128, 0, 0), "registers_per_thread"),
    ((128, 32, 232_449), "shared_memory_per_block_bytes"),
    ((128, 32, -1), "shared_memory_per_block_bytes"),
])
def test_impossible_launches_raise_a_clear_error(args, what):
    assert occupancy(128, 32, 0, H100).blocks_per_sm == 16     # a possible one works
    with pytest.raises(ValueError, match=what):
        occupancy(*args, H100)


def test_tile_shared_memory():
    # 4 stages x (128 x 64 + 64 x 128) elements x 2 B = 131,072 B = 128 KiB
    assert smem_bytes_for_tile(128, 128, 64, 2, 4) == 131_072
    assert smem_bytes_for_tile(128, 256, 64, 1, 3) == 3 * (128 * 64 + 64 * 256)  # fp8: 73,728 B
    assert tile_fits(128, 128, 64, 2, 4, H100)        # 128 KiB <= 227 KiB
    assert not tile_fits(128, 128, 64, 2, 4, A10G)    # 128 KiB > 99 KiB
