"""Planted bugs in the lesson 09 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): planted below, except the one in
NOT_APPLICABLE, with the reason it has nothing to catch in this lesson.
"""

from . import Mutation

H09 = "autograder/hidden/lesson09/"
TIMING = H09 + "test_timing_grading.py::"
BOOT = H09 + "test_bootstrap_grading.py::"
LOAD = H09 + "test_load_grading.py::"
GPU = H09 + "test_gpu_timing.py::"

FLUSHED = TIMING + "test_flushed_calls_take_the_cold_time_exactly"
WARM = TIMING + "test_without_flush_the_calls_find_a_warm_cache"
WARMUP = TIMING + "test_warmup_count_and_first_call"
ONE_SYNC = TIMING + "test_one_synchronize_and_python_floats"
DETECTOR = TIMING + "test_detector_on_planted_timers"
COVERAGE = BOOT + "test_coverage_on_known_distributions"
PROPERTIES = BOOT + "test_interval_is_ordered_inside_the_data_repeatable_and_seeded"
OFFSET = BOOT + "test_microsecond_differences_after_a_long_offset"
OPEN_FORM = LOAD + "test_open_loop_matches_the_closed_form"
OPEN_MM1 = LOAD + "test_open_loop_mm1_mean_and_growth"
CLOSED_SIM = LOAD + "test_closed_loop_matches_a_second_simulation"
CLOSED_MVA = LOAD + "test_closed_loop_mean_matches_mean_value_analysis"
STALL = LOAD + "test_a_closed_loop_hides_a_stall"

NOT_APPLICABLE = {
    "multi-token": "no tokens, attention or cache in this lesson: it times kernels, bootstraps "
                   "samples and simulates a queue",
}

FLUSH_THEN_START = ("        if flush:\n            device.flush_l2()\n"
                    "        device.record(start)\n")
DETECTOR_BODY = ("    device = SimDevice()\n"
                 "    kernel = device.kernel(KNOWN_KERNEL_S)\n"
                 "    kernel()\n"
                 "    device.synchronize()\n"
                 "    try:\n"
                 "        reported = timer(kernel, device)\n"
                 "    except EventNotReady:\n"
                 "        return True\n"
                 "    return reported < 0.9 * KNOWN_KERNEL_S\n")
RESAMPLE = ("    gen = torch.Generator().manual_seed(seed)\n"
            "    rows = torch.randint(0, x.numel(), (int(n_boot), x.numel()), generator=gen)\n"
            "    stats = torch.quantile(x[rows], q, dim=1)\n"
            "    tails = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)\n")

MUTATIONS = [
    # -- time_kernel
    Mutation("flush inside the timed window", "lesson09", "timing.py", FLUSH_THEN_START,
             "        device.record(start)\n        if flush:\n            device.flush_l2()\n",
             (FLUSHED,)),
    Mutation("one pair of events around all calls", "lesson09", "timing.py",
             "    return [device.elapsed_s(start, end) for start, end in windows]\n",
             "    total = device.elapsed_s(windows[0][0], windows[-1][1])\n"
             "    return [total / iters] * iters\n",
             (FLUSHED,)),
    Mutation("warm-up calls timed and returned", "lesson09", "timing.py",
             "    for _ in range(warmup):\n        fn()\n"
             "    windows = [(device.event(), device.event()) for _ in range(iters)]\n",
             "    windows = [(device.event(), device.event()) for _ in range(warmup + iters)]\n",
             (FLUSHED, WARMUP)),
    Mutation("samples sorted, not in call order", "lesson09", "timing.py",
             "    return [device.elapsed_s(start, end) for start, end in windows]\n",
             "    return sorted(device.elapsed_s(start, end) for start, end in windows)\n",
             (FLUSHED,), kind="rows-differ"),
    Mutation("flush flag ignored (always flush)", "lesson09", "timing.py", FLUSH_THEN_START,
             "        device.flush_l2()\n        device.record(start)\n",
             (WARM,), kind="unvaried-arg"),
    Mutation("warm-up one call short", "lesson09", "timing.py",
             "    for _ in range(warmup):\n", "    for _ in range(warmup - 1):\n",
             (WARMUP,), kind="boundary"),
    Mutation("synchronize after every timed call", "lesson09", "timing.py",
             "        device.record(end)\n",
             "        device.record(end)\n        device.synchronize()\n",
             (WARM, ONE_SYNC), kind="cost"),
    # -- detect_missing_sync
    Mutation("known kernel shorter than a launch", "lesson09", "timing.py", DETECTOR_BODY,
             DETECTOR_BODY.replace("KNOWN_KERNEL_S", "1e-6"), (DETECTOR,), kind="contract"),
    Mutation("kernel's first call left to the timer", "lesson09", "timing.py", DETECTOR_BODY,
             DETECTOR_BODY.replace("    kernel()\n    device.synchronize()\n", ""),
             (DETECTOR,), kind="contract"),
    Mutation("EventNotReady not caught", "lesson09", "timing.py", DETECTOR_BODY,
             DETECTOR_BODY.replace("    try:\n        reported = timer(kernel, device)\n"
                                   "    except EventNotReady:\n        return True\n",
                                   "    reported = timer(kernel, device)\n"),
             (DETECTOR,), kind="contract"),
    Mutation("detector comparison reversed", "lesson09", "timing.py",
             "    return reported < 0.9 * KNOWN_KERNEL_S\n",
             "    return reported > 0.9 * KNOWN_KERNEL_S\n", (DETECTOR,)),
    # -- percentile_ci
    Mutation("resampling without replacement", "lesson09", "bootstrap.py",
             "    rows = torch.randint(0, x.numel(), (int(n_boot), x.numel()), generator=gen)\n",
             "    rows = torch.stack([torch.randperm(x.numel(), generator=gen)\n"
             "                        for _ in range(int(n_boot))])\n",
             (COVERAGE,)),
    Mutation("mean of each resample instead of its quantile", "lesson09", "bootstrap.py",
             "    stats = torch.quantile(x[rows], q, dim=1)\n",
             "    stats = x[rows].mean(dim=1)\n", (COVERAGE,)),
    Mutation("tails not halved", "lesson09", "bootstrap.py",
             "[(1 - level) / 2, (1 + level) / 2]", "[1 - level, level]", (COVERAGE,)),
    Mutation("level ignored", "lesson09", "bootstrap.py",
             "[(1 - level) / 2, (1 + level) / 2]", "[0.025, 0.975]", (COVERAGE,),
             kind="unvaried-arg"),
    Mutation("quantile down the resamples (wrong axis)", "lesson09", "bootstrap.py",
             "    stats = torch.quantile(x[rows], q, dim=1)\n",
             "    stats = torch.quantile(x[rows], q, dim=0)\n", (COVERAGE,), kind="rows-differ"),
    Mutation("seed ignored", "lesson09", "bootstrap.py",
             "    gen = torch.Generator().manual_seed(seed)\n",
             "    gen = torch.Generator().manual_seed(0)\n", (PROPERTIES,), kind="unvaried-arg"),
    Mutation("samples in float32", "lesson09", "bootstrap.py", RESAMPLE,
             "    x = x.float()\n" + RESAMPLE.replace("torch.float64", "torch.float32"),
             (OFFSET,), kind="extreme"),
    Mutation("0-d tensors returned", "lesson09", "bootstrap.py",
             "    lo, hi = torch.quantile(stats, tails).tolist()\n",
             "    lo, hi = torch.quantile(stats, tails)\n", (PROPERTIES,), kind="dtype-device"),
    Mutation("ends swapped", "lesson09", "bootstrap.py",
             "    return lo, hi\n", "    return hi, lo\n", (COVERAGE, PROPERTIES)),
    # -- open and closed loops
    Mutation("open loop: service left out of the response", "lesson09", "load.py",
             "        latencies.append(finish - arrival)\n",
             "        latencies.append(finish - need - arrival)\n", (OPEN_FORM, OPEN_MM1)),
    Mutation("open loop: started at the previous finish even when idle", "lesson09", "load.py",
             "        finish = max(arrival, free) + need\n",
             "        finish = free + need\n", (OPEN_FORM,)),
    Mutation("open loop without a queue", "lesson09", "load.py",
             "        finish = max(arrival, free) + need\n",
             "        finish = arrival + need\n", (OPEN_FORM, OPEN_MM1, STALL)),
    Mutation("closed loop: think time ignored", "lesson09", "load.py",
             "        heapq.heappush(waiting, (finish + think_s, user))\n",
             "        heapq.heappush(waiting, (finish, user))\n", (CLOSED_SIM, CLOSED_MVA),
             kind="unvaried-arg"),
    Mutation("closed loop: timed from the start of service", "lesson09", "load.py",
             "        latencies.append(finish - sent)\n",
             "        latencies.append(need)\n", (CLOSED_SIM, CLOSED_MVA)),
    Mutation("closed loop: user 0 left out", "lesson09", "load.py",
             "    waiting = [(0.0, user) for user in range(int(n_users))]\n",
             "    waiting = [(0.0, user) for user in range(1, int(n_users))]\n",
             (CLOSED_SIM,), kind="special-value"),
    # -- GPU: the same learner code over torch.cuda
    Mutation("GPU: flush inside the timed window", "lesson09", "timing.py", FLUSH_THEN_START,
             "        device.record(start)\n        if flush:\n            device.flush_l2()\n",
             (GPU + "test_time_kernel_agrees_with_course_bench_on_a_gemm",), gpu=True),
    Mutation("GPU: flush never done", "lesson09", "timing.py", FLUSH_THEN_START,
             "        device.record(start)\n",
             (GPU + "test_flush_makes_an_operand_that_fits_in_l2_cold",), gpu=True,
             kind="unvaried-arg"),
]
