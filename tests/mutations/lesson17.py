"""Planted bugs in the lesson 17 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below except those
in NOT_APPLICABLE, with the reason it has nothing to catch in this lesson.
"""

from . import Mutation

H17 = "autograder/hidden/lesson17/"
M = H17 + "test_metrics_grading.py::"
U = H17 + "test_utilization_grading.py::"
TRACES = M + "test_interleaved_traces_built_from_known_latencies"

NOT_APPLICABLE = {
    "extreme": "no exponentials, scales or softmax here: the extreme legal input of a trace, "
               "a clock 10^6 s from its origin, is graded, and the mistake it exposes "
               "(float32 times) is planted as dtype-device",
}

# Also caught, checked once and left out to keep this lesson's run short: TPOT as E2E / n_out
# (the TPOT graders), mfu dividing by a fixed 989.4e12 instead of its peak argument
# (test_mbu_and_mfu_definitions).
MUTATIONS = [
    # --- request_metrics
    Mutation("TPOT divided by every output token", "lesson17", "metrics.py",
             "tpot = (times[-1] - times[0]) / (n_out - 1) if n_out > 1 else None",
             "tpot = (times[-1] - times[0]) / n_out if n_out > 1 else None",
             (TRACES, M + "test_tpot_leaves_the_first_token_out")),
    Mutation("gaps taken across requests", "lesson17", "metrics.py",
             "            deliveries[e.request].append((e.time_s, e.tokens))\n",
             "            for q in deliveries:\n"
             "                if q != e.request and deliveries[q]:\n"
             "                    deliveries[q].append((e.time_s, 0))\n"
             "            deliveries[e.request].append((e.time_s, e.tokens))\n",
             (TRACES,), kind="rows-differ"),
    Mutation("tokens counted as events", "lesson17", "metrics.py",
             "n_out = sum(n for _, n in deliveries[rid])",
             "n_out = len(deliveries[rid])",
             (TRACES, M + "test_one_token_requests_and_id_zero"), kind="multi-token"),
    Mutation("one-token TPOT 0 instead of None", "lesson17", "metrics.py",
             "/ (n_out - 1) if n_out > 1 else None",
             "/ (n_out - 1) if n_out > 1 else 0.0",
             (M + "test_one_token_requests_and_id_zero",), kind="special-value"),
    Mutation("request id 0 taken as missing", "lesson17", "metrics.py",
             "        if rid not in finish:\n",
             "        if not rid or rid not in finish:\n",
             (TRACES, M + "test_one_token_requests_and_id_zero"), kind="special-value"),
    Mutation("times in float32", "lesson17", "metrics.py",
             "        times = [t for t, _ in deliveries[rid]]\n",
             "        import numpy as np\n"
             "        times = [float(t) for t in np.float32([t for t, _ in deliveries[rid]])]\n"
             "        t0 = float(np.float32(t0))\n",
             (M + "test_a_clock_far_from_its_origin",), kind="dtype-device"),
    Mutation("unfinished requests reported", "lesson17", "metrics.py",
             "        if rid not in finish:\n            continue\n",
             "        finish.setdefault(rid, deliveries[rid][-1][0] if deliveries[rid] else t0)\n"
             "        if not deliveries[rid]:\n            continue\n",
             (TRACES, M + "test_finish_after_the_last_token_and_arrival_order"), kind="contract"),
    Mutation("results in finish order", "lesson17", "metrics.py",
             "    for rid, t0 in arrival.items():\n",
             "    for rid, t0 in sorted(arrival.items(), key=lambda kv: finish.get(kv[0], 0.0)):\n",
             (M + "test_finish_after_the_last_token_and_arrival_order",), kind="contract"),
    Mutation("E2E ends at the last token", "lesson17", "metrics.py",
             "itl, finish[rid] - t0))", "itl, times[-1] - t0))",
             (M + "test_finish_after_the_last_token_and_arrival_order",), kind="contract"),
    Mutation("the trace scanned once per request", "lesson17", "metrics.py",
             "        times = [t for t, _ in deliveries[rid]]\n",
             "        deliveries[rid] = [(e.time_s, e.tokens) for e in events if e.request == rid\n"
             "                           and e.kind in ('first_token', 'token')]\n"
             "        times = [t for t, _ in deliveries[rid]]\n",
             (M + "test_the_trace_is_read_a_few_times_not_once_per_request",), kind="cost"),
    # --- percentile
    Mutation("nearest-rank percentile", "lesson17", "metrics.py",
             "    return x[lo] + (h - lo) * (x[hi] - x[lo])\n",
             "    return x[round(h)]\n",
             (M + "test_percentile_equals_numpy",)),
    Mutation("percentile of unsorted values", "lesson17", "metrics.py",
             "    x = sorted(values)\n", "    x = values\n",
             (M + "test_percentile_equals_numpy",)),
    Mutation("percentile position n q / 100", "lesson17", "metrics.py",
             "    h = (len(x) - 1) * q / 100\n", "    h = min(len(x) * q / 100, len(x) - 1)\n",
             (M + "test_percentile_equals_numpy",), kind="boundary"),
    Mutation("one past the end at q = 100", "lesson17", "metrics.py",
             "    hi = min(lo + 1, len(x) - 1)\n", "    hi = lo + 1\n",
             (M + "test_percentile_equals_numpy",), kind="boundary"),
    # --- summarize
    Mutation("summary left in seconds", "lesson17", "metrics.py",
             "{q: percentile(values, q) * 1e3 for q in qs}",
             "{q: percentile(values, q) for q in qs}",
             (M + "test_summarize_matches_numpy_in_milliseconds",)),
    Mutation("qs ignored", "lesson17", "metrics.py",
             "{q: percentile(values, q) * 1e3 for q in qs}",
             "{q: percentile(values, q) * 1e3 for q in (50, 90, 99)}",
             (M + "test_summarize_matches_numpy_in_milliseconds",), kind="unvaried-arg"),
    Mutation("ITL percentiles over per-request means", "lesson17", "metrics.py",
             '"itl_ms": table([gap for m in metrics for gap in m.itl_s]),',
             '"itl_ms": table([sum(m.itl_s) / len(m.itl_s) for m in metrics if m.itl_s]),',
             (M + "test_summarize_matches_numpy_in_milliseconds",)),
    # --- slo_attainment
    Mutation("a target met exactly counted as missed", "lesson17", "metrics.py",
             "if m.ttft_s <= ttft_slo_s and", "if m.ttft_s < ttft_slo_s and",
             (M + "test_slo_targets_met_exactly_count",), kind="boundary"),
    Mutation("one-token requests miss the TPOT target", "lesson17", "metrics.py",
             "(m.tpot_s is None or m.tpot_s <= tpot_slo_s)",
             "(m.tpot_s is not None and m.tpot_s <= tpot_slo_s)",
             (M + "test_slo_targets_met_exactly_count",), kind="special-value"),
    # --- utilization
    Mutation("weights read once per sequence", "lesson17", "utilization.py",
             "return float(weight_bytes + kv_bytes_per_token * sum(context_lens))",
             "return float(len(context_lens) * weight_bytes + kv_bytes_per_token * sum(context_lens)"
             " if context_lens else weight_bytes)",
             (U + "test_decode_step_bytes_per_sequence",
              U + "test_mbu_of_a_batch_whose_contexts_differ")),
    Mutation("every sequence as long as the longest", "lesson17", "utilization.py",
             "return float(weight_bytes + kv_bytes_per_token * sum(context_lens))",
             "return float(weight_bytes + kv_bytes_per_token * len(context_lens)"
             " * max(context_lens, default=0))",
             (U + "test_decode_step_bytes_per_sequence",
              U + "test_mbu_of_a_batch_whose_contexts_differ"), kind="rows-differ"),
    Mutation("MBU in percent", "lesson17", "utilization.py",
             "share = bytes_per_step / step_time_s / peak_bytes_per_s\n",
             "share = 100 * bytes_per_step / step_time_s / peak_bytes_per_s\n"
             "    share = share if share <= 1 else share / 100\n",
             (U + "test_mbu_and_mfu_definitions",)),
    Mutation("MBU returned before the given check above 1", "lesson17", "utilization.py",
             "    share = bytes_per_step / step_time_s / peak_bytes_per_s\n",
             "    return bytes_per_step / step_time_s / peak_bytes_per_s\n",
             (U + "test_above_1_is_refused_in_plain_words",), kind="contract"),
]
