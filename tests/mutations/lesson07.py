"""Planted bugs in the lesson 07 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below except those in
NOT_APPLICABLE, with the reason.
"""

from . import Mutation

H07 = "autograder/hidden/lesson07/"
TABLE = H07 + "test_occupancy_grading.py::test_hand_worked_occupancy_table"
FILL = H07 + "test_occupancy_grading.py::test_occupancy_matches_a_block_by_block_fill"
KNEE = H07 + "test_knee_grading.py::"
GPU = H07 + "test_gpu_memory.py::"

NOT_APPLICABLE = {
    "extreme": "occupancy and tile sizes are small integer arithmetic, and find_knee compares "
               "ratios of positive bandwidths: no input is numerically extreme (the noisy-step "
               "property still scales bandwidths by 1e12 to catch an absolute threshold)",
    "rows-differ": "no function of this lesson takes a batch: each call is one launch "
                   "configuration, one tile or one curve",
    "multi-token": "nothing here handles tokens, sequences or a cache of keys",
}

MUTATIONS = [
    # occupancy
    Mutation("a part-filled warp dropped (threads // 32, at least 1)", "lesson07", "occupancy.py",
             "warps_per_block = -(-threads_per_block // sm.threads_per_warp_count)",
             "warps_per_block = max(1, threads_per_block // sm.threads_per_warp_count)",
             (TABLE, FILL), kind="logic"),
    Mutation("threads // 32 is zero warps for a block of one thread", "lesson07", "occupancy.py",
             "warps_per_block = -(-threads_per_block // sm.threads_per_warp_count)",
             "warps_per_block = threads_per_block // sm.threads_per_warp_count",
             (TABLE, FILL), kind="special-value"),
    Mutation("registers not rounded up to the 256-register unit", "lesson07", "occupancy.py",
             "regs_per_warp = _round_up(registers_per_thread * sm.threads_per_warp_count,\n"
             "                              sm.register_allocation_unit_count)",
             "regs_per_warp = registers_per_thread * sm.threads_per_warp_count",
             (TABLE, FILL), kind="logic"),
    Mutation("registers pooled over the SM instead of per sub-partition", "lesson07", "occupancy.py",
             "    warps_per_part = sm.registers_per_sm_count // parts // regs_per_warp\n"
             "    by_registers = warps_per_part * parts // warps_per_block\n",
             "    by_registers = sm.registers_per_sm_count // regs_per_warp // warps_per_block\n",
             (TABLE, FILL), kind="logic"),
    Mutation("shared memory without the 1 KiB reserved per block", "lesson07", "occupancy.py",
             "smem = _round_up(shared_memory_per_block_bytes + sm.reserved_shared_memory_per_block_bytes,",
             "smem = _round_up(max(shared_memory_per_block_bytes, 1),",
             (TABLE, FILL), kind="logic"),
    Mutation("shared memory not rounded to the 128 B unit", "lesson07", "occupancy.py",
             "                     sm.shared_memory_allocation_unit_bytes)",
             "                     1)",
             (TABLE,), kind="logic"),   # the 128 B unit changes the count only near a step
    Mutation("H100 warp limit hard-coded", "lesson07", "occupancy.py",
             "by_warps = sm.max_warps_per_sm_count // warps_per_block",
             "by_warps = 64 // warps_per_block",
             (TABLE, FILL), kind="unvaried-arg"),
    Mutation("a tie between limits reported as one limit", "lesson07", "occupancy.py",
             "tuple(name for name in LIMITS if limits[name] == blocks)",
             "(min(LIMITS, key=limits.get),)",
             (TABLE,), kind="boundary"),
    Mutation("occupancy as threads over max threads", "lesson07", "occupancy.py",
             "active / sm.max_warps_per_sm_count,",
             "blocks * threads_per_block / sm.max_threads_per_sm_count,",
             (TABLE,), kind="logic"),
    # tiles
    Mutation("a tile exactly at the limit refused (<)", "lesson07", "occupancy.py",
             "stages) <= sm.max_shared_memory_per_block_bytes",
             "stages) < sm.max_shared_memory_per_block_bytes",
             (H07 + "test_occupancy_grading.py::test_tile_at_the_limit_fits_and_one_more_row_does_not",),
             kind="boundary"),
    Mutation("the 1 KiB reservation subtracted from the per-block limit again", "lesson07",
             "occupancy.py",
             "stages) <= sm.max_shared_memory_per_block_bytes",
             "stages) <= sm.max_shared_memory_per_block_bytes - sm.reserved_shared_memory_per_block_bytes",
             (H07 + "test_occupancy_grading.py::test_tile_at_the_limit_fits_and_one_more_row_does_not",),
             kind="logic"),
    Mutation("B tile sized bm x bn", "lesson07", "occupancy.py",
             "return stages * (bm * bk + bk * bn) * dtype_bytes",
             "return stages * (bm * bk + bm * bn) * dtype_bytes",
             (H07 + "test_occupancy_grading.py::test_tile_bytes_formula",), kind="logic"),
    # knee
    Mutation("floor taken over the whole curve", "lesson07", "probes.py",
             "min(bandwidths[p:])", "min(bandwidths)",
             (KNEE + "test_the_floor_is_taken_after_the_peak",), kind="logic"),
    Mutation("floor taken strictly after the peak (a curve peaking at its end crashes)",
             "lesson07", "probes.py",
             "min(bandwidths[p:])", "min(bandwidths[p + 1:])",
             (KNEE + "test_no_knee_is_none",), kind="special-value"),
    Mutation("crossing interpolated in linear size", "lesson07", "probes.py",
             "    return 2 ** (lo + t * (hi - lo))\n",
             "    return sizes_bytes[i] + t * (sizes_bytes[j] - sizes_bytes[i])\n",
             (KNEE + "test_step_and_slope",), kind="logic"),
    Mutation("a drop of exactly min_drop_ratio is not a knee", "lesson07", "probes.py",
             "if peak < min_drop_ratio * floor:", "if peak <= min_drop_ratio * floor:",
             (KNEE + "test_a_drop_of_exactly_min_drop_ratio_is_a_knee",), kind="boundary"),
    Mutation("min_drop_ratio ignored", "lesson07", "probes.py",
             "if peak < min_drop_ratio * floor:", "if peak < 1.25 * floor:",
             (KNEE + "test_min_drop_ratio_is_honoured",), kind="unvaried-arg"),
    Mutation("no knee reported as the largest size", "lesson07", "probes.py",
             "    if peak < min_drop_ratio * floor:\n        return None\n",
             "    if peak < min_drop_ratio * floor:\n        return float(sizes_bytes[-1])\n",
             (KNEE + "test_no_knee_is_none",), kind="contract"),
    Mutation("knee read as the last point on the plateau", "lesson07", "probes.py",
             "    return 2 ** (lo + t * (hi - lo))\n",
             "    return float(sizes_bytes[i])\n",
             (KNEE + "test_step_and_slope", KNEE + "test_equal_peaks_and_a_noisy_floor"),
             kind="logic"),
    # GPU probes
    Mutation("GPU: copy probe on float32 elements, counted as n_bytes", "lesson07", "probes.py",
             'src = torch.randint(0, 256, (n_bytes,), dtype=torch.uint8, device="cuda")',
             'src = torch.randint(0, 256, (n_bytes,), dtype=torch.float32, device="cuda")',
             (GPU + "test_copy_bandwidth_near_the_datasheet",), gpu=True, kind="dtype-device"),
    Mutation("GPU: copy probe counts only the bytes read", "lesson07", "probes.py",
             "    return 2 * n_bytes * iters / seconds\n",
             "    return n_bytes * iters / seconds\n",
             (GPU + "test_copy_bandwidth_near_the_datasheet",), gpu=True, kind="logic"),
    Mutation("GPU: copy probe copies 64 KiB at a time from Python", "lesson07", "probes.py",
             "    for _ in range(iters):\n        dst.copy_(src)\n    end.record()\n",
             "    for _ in range(iters):\n"
             "        for a, b in zip(dst.split(1 << 16), src.split(1 << 16)):\n"
             "            a.copy_(b)\n    end.record()\n",
             (GPU + "test_copy_bandwidth_near_the_datasheet",), gpu=True, kind="cost"),
    Mutation("GPU: L2 probe counts one half of the working set", "lesson07", "probes.py",
             "rates.append(2 * half * repeats /", "rates.append(half * repeats /",
             (GPU + "test_l2_knee_near_the_fixture_l2",), gpu=True, kind="logic"),
    Mutation("GPU: L2 probe copies with copy_ inside the graph (memcpy nodes)", "lesson07",
             "probes.py", "                torch.neg(src, out=dst)\n",
             "                dst.copy_(src)\n",
             (GPU + "test_l2_knee_near_the_fixture_l2",), gpu=True, kind="cost"),
]
