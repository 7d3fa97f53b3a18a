"""Planted bugs in the lesson 24 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below except those
in NOT_APPLICABLE, with the reason it has nothing to catch in this lesson.
"""

from . import Mutation

H = "autograder/hidden/lesson24/"
C = H + "test_chunking_grading.py::"
L = H + "test_load_grading.py::"

NOT_APPLICABLE = {
    "dtype-device": "the graded functions take and return Python numbers, plans and "
                    "course.trace events, never tensors; the one clock-precision trap (a clock "
                    "far from its origin) is graded in test_littles_law_is_a_time_average",
    "cost": "each graded function is one pass over its inputs; the simulator, where the time "
            "goes, is given",
}

# Also caught, checked once and left out of the catchers to keep this lesson's run short (a
# failing hypothesis test shrinks its example, a long simulation takes seconds):
# test_plan_properties catches the stall, the last chunk over the budget and chunk_size
# ignored; test_littles_law_holds_in_a_long_simulated_run catches the per-event average and
# the ignored window.
MUTATIONS = [
    # --- chunked_prefill_plan
    Mutation("prefill chunks before the decodes (a stall)", "lesson24", "chunking.py",
             "    plan = StepPlan(decodes=list(decodes))\n"
             "    left = token_budget - len(decodes)\n",
             "    plan = StepPlan()\n"
             "    left = token_budget\n",
             (C + "test_decodes_first_then_partial_then_new_prefills",), kind="logic"),
    Mutation("new prefills before partial ones", "lesson24", "chunking.py",
             "ordered = [p for p in prefills if p.done > 0] + [p for p in prefills if p.done == 0]",
             "ordered = list(prefills)",
             (C + "test_decodes_first_then_partial_then_new_prefills",), kind="logic"),
    Mutation("last chunk one token over the budget (< vs <=)", "lesson24", "chunking.py",
             "n = min(p.remaining, chunk_size, left)",
             "n = min(p.remaining, chunk_size, left + 1)",
             (C + "test_budget_edges",), kind="boundary"),
    Mutation("decodes that exactly fill the budget refused", "lesson24", "chunking.py",
             "if len(decodes) > token_budget:", "if len(decodes) >= token_budget:",
             (C + "test_budget_edges",), kind="boundary"),
    Mutation("a chunk of 0 tokens when the budget is used up", "lesson24", "chunking.py",
             "        if left == 0:\n            break\n", "",
             (C + "test_budget_edges",), kind="special-value"),
    Mutation("chunk starts one token early (a token fed twice)", "lesson24", "chunking.py",
             "Chunk(p.id, p.done, n)", "Chunk(p.id, max(p.done - 1, 0), n)",
             (C + "test_plan_properties",
              C + "test_chunked_and_whole_prefill_give_the_same_tokens"), kind="multi-token"),
    Mutation("chunk_size ignored", "lesson24", "chunking.py",
             "n = min(p.remaining, chunk_size, left)", "n = min(p.remaining, left)",
             (C + "test_decodes_first_then_partial_then_new_prefills",), kind="unvaried-arg"),
    # --- littles_law
    Mutation("L averaged per event, not over time", "lesson24", "load.py",
             "    area = sum(max(0.0, min(finish[r], t1) - max(a, t0)) for r, a in arrival.items())\n",
             "    changes = sorted([(a, 1) for a in arrival.values()]\n"
             "                     + [(f, -1) for f in finish.values()])\n"
             "    count, seen = 0, []\n"
             "    for _, d in changes:\n"
             "        count += d\n"
             "        seen.append(count)\n"
             "    area = sum(seen) / len(seen) * (t1 - t0)\n",
             (L + "test_littles_law_is_a_time_average",), kind="logic"),
    Mutation("the window ignored", "lesson24", "load.py",
             "    t0 = min(arrival.values()) if start_s is None else start_s\n"
             "    t1 = max(finish.values()) if end_s is None else end_s\n",
             "    t0 = min(arrival.values())\n"
             "    t1 = max(finish.values())\n",
             (L + "test_littles_law_window",), kind="unvaried-arg"),
    Mutation("W over every request, not those arriving in the window", "lesson24", "load.py",
             "w = sum(finish[r] - arrival[r] for r in inside) / len(inside)",
             "w = sum(finish[r] - arrival[r] for r in arrival) / len(arrival)",
             (L + "test_littles_law_window",), kind="rows-differ"),
    Mutation("requests before the window counted whole", "lesson24", "load.py",
             "min(finish[r], t1) - max(a, t0)", "min(finish[r], t1) - a",
             (L + "test_littles_law_window",), kind="boundary"),
    Mutation("unfinished requests ignored", "lesson24", "load.py",
             "    if unfinished:\n", "    if False:\n",
             (L + "test_littles_law_errors",), kind="contract"),
    # --- find_knee
    Mutation("knee returned as an index", "lesson24", "load.py",
             "return loads[gaps.index(max(gaps))]", "return gaps.index(max(gaps))",
             (L + "test_planted_knee",), kind="contract"),
    Mutation("knee without normalising the axes", "lesson24", "load.py",
             "gaps = [(x - x0) / (x1 - x0) - (y - y0) / (y1 - y0) for x, y in zip(loads, latencies)]",
             "gaps = [(x - x0) - (y - y0) for x, y in zip(loads, latencies)]",
             (L + "test_planted_knee",), kind="extreme"),
    Mutation("knee on the wrong side of the chord", "lesson24", "load.py",
             "return loads[gaps.index(max(gaps))]", "return loads[gaps.index(min(gaps))]",
             (L + "test_planted_knee",), kind="logic"),
    Mutation("a flat curve accepted", "lesson24", "load.py",
             "    if not y1 > y0:\n", "    if y1 == y0:\n",
             (L + "test_knee_errors",), kind="contract"),
    # --- goodput
    Mutation("goodput counts either SLO instead of both", "lesson24", "load.py",
             "if ttft <= ttft_slo_s and (tpot is None or tpot <= tpot_slo_s)",
             "if ttft <= ttft_slo_s or (tpot is not None and tpot <= tpot_slo_s)",
             (L + "test_goodput_needs_both_slos",), kind="logic"),
    Mutation("attainment > instead of >=", "lesson24", "load.py",
             "if met / len(run) < target:", "if met / len(run) <= target:",
             (L + "test_goodput_boundaries",), kind="boundary"),
    Mutation("a latency equal to its SLO counted as missed", "lesson24", "load.py",
             "if ttft <= ttft_slo_s and", "if ttft < ttft_slo_s and",
             (L + "test_goodput_boundaries",), kind="boundary"),
    Mutation("target ignored (always 90%)", "lesson24", "load.py",
             "if met / len(run) < target:", "if met / len(run) < 0.9:",
             (L + "test_goodput_boundaries",), kind="unvaried-arg"),
    Mutation("SLOs read as ms, latencies in s", "lesson24", "load.py",
             "if ttft <= ttft_slo_s and (tpot is None or tpot <= tpot_slo_s)",
             "if ttft <= ttft_slo_s * 1e3 and (tpot is None or tpot <= tpot_slo_s * 1e3)",
             (L + "test_goodput_runs_of_different_sizes_and_first_failure",
              L + "test_goodput_needs_both_slos"), kind="logic"),
    Mutation("share over the first run's size", "lesson24", "load.py",
             "if met / len(run) < target:", "if met / len(runs[0]) < target:",
             (L + "test_goodput_runs_of_different_sizes_and_first_failure",), kind="rows-differ"),
    Mutation("a rate above a failing one reported", "lesson24", "load.py",
             "            break\n        best = rate\n",
             "            continue\n        best = rate\n",
             (L + "test_goodput_runs_of_different_sizes_and_first_failure",), kind="contract"),
    Mutation("an empty run divides by zero", "lesson24", "load.py",
             "        if len(run) == 0:\n", "        if False:\n",
             (L + "test_goodput_empty_run",), kind="special-value"),
]
