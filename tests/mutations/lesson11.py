"""Planted bugs in the lesson 11 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below except those in
NOT_APPLICABLE, each with the reason it has nothing to catch in this lesson.
"""

from . import Mutation

H11 = "autograder/hidden/lesson11/"
ROOF = H11 + "test_roofline_grading.py::"
OPS = H11 + "test_ops_grading.py::"
PLOT = H11 + "test_plot_grading.py::"
GPU = H11 + "test_gpu_roofline.py::test_measured_suite_under_its_roofs_and_near_the_ceilings"

NOT_APPLICABLE = {
    "extreme": "no exp, softmax or scale in the learner's code: the roofline is a min and a "
               "ratio of positive floats, and hypothesis already spans intensities 1e-3..1e7 "
               "FLOP/byte and rates 1e9..1e17, where nothing overflows or underflows",
    "multi-token": "there are no tokens or caches in this lesson: operators are counted from "
                   "their shapes, and a report of several operators is the rows-differ case",
}

MUTATIONS = [
    Mutation("max instead of min", "lesson11", "roofline.py",
             "    return min(peak_flops, peak_bw * ai)\n", "    return max(peak_flops, peak_bw * ai)\n",
             (ROOF + "test_attainable_is_the_min_and_non_decreasing",), kind="logic"),
    Mutation("roofs combined harmonically", "lesson11", "roofline.py",
             "    return min(peak_flops, peak_bw * ai)\n",
             "    return 1 / (1 / peak_flops + 1 / (peak_bw * ai))\n",
             (ROOF + "test_attainable_is_the_min_and_non_decreasing",), kind="logic"),
    Mutation("ridge upside down (bandwidth / peak)", "lesson11", "roofline.py",
             "    return spec.peak_flops(dtype) / spec.memory_bandwidth_bytes_per_s\n",
             "    return spec.memory_bandwidth_bytes_per_s / spec.peak_flops(dtype)\n",
             (ROOF + "test_ridge_of_every_fixture_and_dtype",
              ROOF + "test_classification_flips_exactly_at_the_ridge"), kind="logic"),
    Mutation("ridge ignores the dtype (always bf16)", "lesson11", "roofline.py",
             "    return spec.peak_flops(dtype) / spec.memory_bandwidth_bytes_per_s\n",
             "    return spec.peak_flops(\"bf16\") / spec.memory_bandwidth_bytes_per_s\n",
             (ROOF + "test_ridge_of_every_fixture_and_dtype",
              ROOF + "test_classification_flips_exactly_at_the_ridge"), kind="unvaried-arg"),
    Mutation("peak looked up by the raw dtype (a torch dtype is a KeyError)", "lesson11",
             "roofline.py",
             "    return spec.peak_flops(dtype) / spec.memory_bandwidth_bytes_per_s\n",
             "    return spec.peak_flops_per_s[dtype] / spec.memory_bandwidth_bytes_per_s\n",
             (ROOF + "test_ridge_of_every_fixture_and_dtype",), kind="dtype-device"),
    Mutation("the ridge itself called memory-bound", "lesson11", "roofline.py",
             'return "memory" if op.intensity < ridge_point(spec, op.dtype) else "compute"',
             'return "memory" if op.intensity <= ridge_point(spec, op.dtype) else "compute"',
             (ROOF + "test_classification_flips_exactly_at_the_ridge",), kind="boundary"),
    Mutation("every op judged against the first op's dtype", "lesson11", "roofline.py",
             "        peak = spec.peak_flops(op.dtype)\n",
             "        peak = spec.peak_flops(ops[0].dtype)\n",
             (ROOF + "test_report_of_mixed_dtypes",), kind="rows-differ"),
    Mutation("report looks at ops[0] and fails on no ops", "lesson11", "roofline.py",
             "    points = []\n",
             "    points, first_dtype = [], ops[0].dtype\n",
             (ROOF + "test_empty_report",), kind="special-value"),
    Mutation("a point above its roof accepted", "lesson11", "roofline.py",
             '        check_roofline(achieved, roof, f"{op.name} ({op.dtype}, FLOP/s)", tolerance=TOLERANCE)\n',
             "",
             (ROOF + "test_points_above_the_roof_fail_beyond_the_tolerance_naming_the_op",),
             kind="contract"),
    Mutation("the error does not name the op", "lesson11", "roofline.py",
             'check_roofline(achieved, roof, f"{op.name} ({op.dtype}, FLOP/s)", tolerance=TOLERANCE)',
             'check_roofline(achieved, roof, "achieved FLOP/s", tolerance=TOLERANCE)',
             (ROOF + "test_points_above_the_roof_fail_beyond_the_tolerance_naming_the_op",),
             kind="contract"),
    Mutation("the 5% tolerance ignored", "lesson11", "roofline.py",
             'FLOP/s)", tolerance=TOLERANCE)', 'FLOP/s)", tolerance=0.0)',
             (ROOF + "test_points_above_the_roof_fail_beyond_the_tolerance_naming_the_op",),
             kind="boundary"),
    Mutation("2 bytes per element whatever the dtype", "lesson11", "ops.py",
             "    size = bytes_per_element(dtype)\n", "    size = 2\n",
             (OPS + "test_gemm_counts_any_shape_and_dtype",), kind="dtype-device"),
    Mutation("GEMM output not counted", "lesson11", "ops.py",
             "(m * k + k * n + m * n) * size", "(m * k + k * n) * size",
             (OPS + "test_gemm_counts_any_shape_and_dtype",), kind="logic"),
    Mutation("softmax bytes read only", "lesson11", "ops.py",
             "                  2 * elements * bytes_per_element(dtype), dtype)",
             "                  elements * bytes_per_element(dtype), dtype)",
             (OPS + "test_softmax_counts",), kind="logic"),
    Mutation("attention bytes without q and the output", "lesson11", "ops.py",
             "    elements = batch * heads * d_head * (2 * q_len + 2 * kv_len)\n",
             "    elements = batch * heads * d_head * 2 * kv_len\n",
             (OPS + "test_sdpa_counts",), kind="logic"),
    Mutation("plot points at their roof, not the achieved rate", "lesson11", "roofline_plot.py",
             "Marker(p.name, p.intensity, p.achieved_flops)", "Marker(p.name, p.intensity, p.roof_flops)",
             (PLOT + "test_plot_of_a_mixed_dtype_report",), kind="logic"),
    Mutation("bandwidth roof stops at the lowest ridge", "lesson11", "roofline_plot.py",
             "    top_ridge = max(spec.peak_flops(d) / bw for d in dtypes)\n",
             "    top_ridge = min(spec.peak_flops(d) / bw for d in dtypes)\n",
             (PLOT + "test_plot_of_a_mixed_dtype_report",), kind="logic"),
    Mutation("GPU: host clock around an asynchronous launch", "lesson11", "ops.py",
             "        times.append(cuda_time(fn, iters=iters).median_s)\n",
             "        import time\n"
             "        fn()\n"
             "        start = time.perf_counter()\n"
             "        fn()\n"
             "        times.append(time.perf_counter() - start)\n",
             (GPU,), gpu=True, kind="logic"),
    Mutation("GPU: the suite run in float32", "lesson11", "ops.py",
             "    rand = lambda *shape: torch.randn(*shape, device=device, dtype=dtype, generator=g)",
             "    rand = lambda *shape: torch.randn(*shape, device=device, dtype=torch.float32, generator=g)",
             (GPU,), gpu=True, kind="cost"),
]
