"""Hidden grader, lesson 07: occupancy and the shared memory of a pipelined tile.

References: a table of cases worked by hand from the CUDA occupancy rules (the CUDA Toolkit's
cuda_occupancy.h; the per-SM limits of the CUDA C++ Programming Guide, stored in
hardware_fixtures), the arithmetic written beside each case; and a block-by-block loop that adds
one block at a time while every resource still has room.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hardware_fixtures
from exercises.lesson07.occupancy import occupancy, smem_bytes_for_tile, tile_fits

H100 = hardware_fixtures.load("h100_sxm").sm    # 9.0: 64 warps, 32 blocks, 228 KiB, 227 per block
A100 = hardware_fixtures.load("a100_sxm_80gb").sm  # 8.0: 64 warps, 32 blocks, 164 KiB
A10G = hardware_fixtures.load("a10g").sm        # 8.6: 48 warps, 16 blocks, 100 KiB
L4 = hardware_fixtures.load("l4").sm            # 8.9: 48 warps, 24 blocks, 100 KiB
NVIDIA = sorted({s.sm.compute_capability: s.sm for s in hardware_fixtures.all_specs().values()
                 if s.sm is not None}.items())

# (sm, threads, registers, shared bytes) -> (blocks per SM, limited_by, occupancy as warps/max).
# Arithmetic: W = warps per block = ceil(threads / 32); R = registers per warp =
# round_up(regs x 32, 256); register blocks = (16,384 // R) x 4 // W; S = round_up(smem + 1024, 128).
CASES = [
    # 1. W 8 -> 64 // 8 = 8; R 512 -> 32 x 4 = 128 warps -> 16; S 1024 -> 228; 32 -> warps, 8
    ("H100", 256, 16, 0, 8, ("warps",), 64 / 64),
    # 2. W 8 -> 8; R 1024 -> 16 x 4 = 64 warps -> 8; S -> 228; 32 -> tie warps = registers
    ("H100", 256, 32, 0, 8, ("warps", "registers"), 64 / 64),
    # 3. W 1 -> 64; R 512 -> 128; S 228; blocks 32 -> 32 blocks of one warp
    ("H100", 32, 16, 0, 32, ("blocks",), 32 / 64),
    # 4. one thread is one whole warp: W 1 -> same as case 3
    ("H100", 1, 16, 0, 32, ("blocks",), 32 / 64),
    # 5. 33 x 32 = 1056 -> R 1280; 16,384 // 1280 = 12 -> 48 warps -> 6 (7 without the unit)
    ("H100", 256, 33, 0, 6, ("registers",), 48 / 64),
    # 6. 40 x 32 = 1280; W 3: 12 per quarter -> 48 warps -> 16 (65,536 // 1280 = 51 -> 17
    #    without the four sub-partitions); warps 64 // 3 = 21
    ("H100", 96, 40, 0, 16, ("registers",), 48 / 64),
    # 7. 65 x 32 = 2080 -> R 2304; W 32; 2304 x 32 = 73,728 > 65,536: cannot launch -> 0
    ("H100", 1024, 65, 0, 0, ("registers",), 0.0),
    # 8. 64 x 32 = 2048; 2048 x 32 = 65,536 fits; 16,384 // 2048 = 8 -> 32 warps -> 1; warps 2
    ("H100", 1024, 64, 0, 1, ("registers",), 32 / 64),
    # 9. 255 x 32 = 8160 -> 8192; 2 per quarter -> 8 warps -> 8 // 4 = 2
    ("H100", 128, 255, 0, 2, ("registers",), 8 / 64),
    # 10. S = 46,080 + 1024 = 47,104; 233,472 // 47,104 = 4 (5 without the reservation)
    ("H100", 128, 32, 46_080, 4, ("shared_memory",), 16 / 64),
    # 11. the per-block maximum: 232,448 + 1024 = 233,472 -> exactly 1 block
    ("H100", 128, 32, 232_448, 1, ("shared_memory",), 4 / 64),
    # 12. S: 33,076 + 1024 = 34,100 -> round up to 34,176; 102,400 // 34,176 = 2 (3 unrounded)
    ("A10G", 128, 32, 33_076, 2, ("shared_memory",), 8 / 48),
    # 13. 100 threads are 4 warps: 48 // 4 = 12 (16, the block limit, if counted as 3)
    ("A10G", 100, 16, 0, 12, ("warps",), 48 / 48),
    # 14. W 2 -> 24; R 512 -> 64; S 100; blocks 16 -> 16 blocks, 32 of 48 warps
    ("A10G", 64, 16, 0, 16, ("blocks",), 32 / 48),
    # 15. 8.9 holds 24 blocks: W 2 -> 24 = blocks 24 -> tie
    ("L4", 64, 16, 0, 24, ("warps", "blocks"), 48 / 48),
    # 16. S = 49,152 + 1024 = 50,176; 167,936 // 50,176 = 3; warps 8, registers 8
    ("A100", 256, 32, 49_152, 3, ("shared_memory",), 24 / 64),
]
SMS = {"H100": H100, "A100": A100, "A10G": A10G, "L4": L4}


@pytest.mark.points(1)
@pytest.mark.parametrize("gpu, threads, regs, smem, blocks, limited_by, fraction", CASES,
                         ids=[f"case{i + 1}" for i in range(len(CASES))])
def test_hand_worked_occupancy_table(gpu, threads, regs, smem, blocks, limited_by, fraction):
    """Bugs: counting threads instead of whole warps; registers without the 256-register unit or
    without the four sub-partitions; a block too big for the register file given a block;
    shared memory without the 1 KiB reservation or the 128 B unit; limits hard-coded for one
    compute capability; a tie reported as one limit."""
    o = occupancy(threads, regs, smem, SMS[gpu])
    what = f"occupancy({threads} threads, {regs} registers, {smem:,} B shared) on {gpu}"
    assert o.blocks_per_sm == blocks, f"{what}: {o.blocks_per_sm} blocks per SM, expected {blocks}"
    assert tuple(o.limited_by) == limited_by, f"{what}: limited by {o.limited_by}, expected {limited_by}"
    assert o.occupancy_fraction == pytest.approx(fraction), \
        f"{what}: occupancy {o.occupancy_fraction}, expected {fraction:.4f} (resident warps / max warps)"
    assert o.active_warps == blocks * -(-threads // 32)


def block_by_block(threads, regs, smem, sm):
    """Add blocks one at a time while each resource still has room; return the count."""
    warps = -(-threads // 32)
    per_warp = -(-regs * 32 // 256) * 256
    if per_warp * (-(-warps // 4) * 4) > sm.max_registers_per_block_count:
        return 0
    quarter = [0, 0, 0, 0]  # warps placed in each sub-partition
    smem_used, n = 0, 0
    block_smem = -(-(smem + 1024) // 128) * 128
    while True:
        if n + 1 > sm.max_blocks_per_sm_count or (n + 1) * warps > sm.max_warps_per_sm_count:
            return n
        if smem_used + block_smem > sm.shared_memory_per_sm_bytes:
            return n
        trial = list(quarter)
        for _ in range(warps):   # each warp goes to the emptiest quarter that has room
            k = min(range(4), key=lambda q: trial[q])
            if (trial[k] + 1) * per_warp > sm.registers_per_sm_count // 4:
                return n
            trial[k] += 1
        quarter, smem_used, n = trial, smem_used + block_smem, n + 1


@pytest.mark.points(3)
@settings(max_examples=120)
@given(data=st.data())
def test_occupancy_matches_a_block_by_block_fill(data):
    """Bugs: any rule applied on one compute capability only, or a limit forgotten: the count
    must equal a loop that adds blocks while the SM has warps, registers (per quarter), shared
    memory and block slots left, on every NVIDIA fixture."""
    cc, sm = data.draw(st.sampled_from(NVIDIA))
    # small blocks and little shared memory half of the time, so every limit gets to bind
    threads = data.draw(st.one_of(st.integers(1, 256), st.integers(1, 1024)))
    regs = data.draw(st.integers(1, 255))
    smem = data.draw(st.one_of(st.integers(0, 8192), st.integers(0, sm.max_shared_memory_per_block_bytes)))
    got = occupancy(threads, regs, smem, sm).blocks_per_sm
    want = block_by_block(threads, regs, smem, sm)
    assert got == want, (f"occupancy({threads}, {regs}, {smem}) on compute capability {cc}: "
                         f"{got} blocks, a block-by-block fill gives {want}")


@pytest.mark.points(1)
def test_impossible_launches_raise_value_error():
    """Bug: the given checks removed or bypassed, so 0 threads divides by zero deep inside and
    a block with more shared memory than allowed gets an occupancy instead of an error."""
    assert occupancy(1024, 32, 0, H100).blocks_per_sm == 2     # the largest legal block works
    for args, what in [((0, 32, 0), "threads_per_block"), ((1025, 32, 0), "threads_per_block"),
                       ((128, 256, 0), "registers_per_thread"),
                       ((128, 32, 232_449), "shared_memory_per_block_bytes")]:
        with pytest.raises(ValueError, match=what):
            occupancy(*args, H100)


@pytest.mark.points(2)
def test_tile_at_the_limit_fits_and_one_more_row_does_not():
    """Bugs: a strict < where the limit itself fits; the 1 KiB reservation subtracted a second
    time; one stage, or only the A tile, counted."""
    # (131 + 96) x 64 x 2 B x 8 stages = 232,448 B = 227 KiB, exactly the H100's per-block limit
    assert smem_bytes_for_tile(131, 96, 64, 2, 8) == 232_448
    assert tile_fits(131, 96, 64, 2, 8, H100), "a tile at exactly 227 KiB fits an H100 block"
    assert not tile_fits(132, 96, 64, 2, 8, H100), "(132 + 96) x 64 x 2 x 8 = 233,472 B > 227 KiB"
    # fp8, 3 stages of a 256 x 128 tile: 3 x (256 x 128 + 128 x 128) x 1 = 147,456 B
    assert smem_bytes_for_tile(256, 128, 128, 1, 3) == 147_456
    assert tile_fits(256, 128, 128, 1, 3, A100) and not tile_fits(256, 128, 128, 1, 3, L4)


@pytest.mark.points(1)
@pytest.mark.parametrize("bm, bn, bk, dtype_bytes, stages, want", [
    (64, 256, 32, 2, 3, 3 * (64 * 32 + 32 * 256) * 2),    # 61,440: A and B differ in shape
    (16, 16, 16, 4, 1, 2048),
    (128, 64, 64, 2, 5, 5 * (128 * 64 + 64 * 64) * 2),    # 122,880
])
def test_tile_bytes_formula(bm, bn, bk, dtype_bytes, stages, want):
    """Bugs: bm x bn instead of bk x bn for the B tile; dtype bytes or stages left out."""
    got = smem_bytes_for_tile(bm, bn, bk, dtype_bytes, stages)
    assert got == want, f"smem_bytes_for_tile({bm}, {bn}, {bk}, {dtype_bytes}, {stages}) = {got}, expected {want}"
