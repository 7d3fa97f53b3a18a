"""Lesson 22, part 4: colocated against disaggregated serving in the simulator.
Run: pytest exercises/lesson22
"""

import pytest

from course.trace import Event
from exercises.lesson22.serving_sim import CostModel, colocated_vs_disagg, latencies


def test_latencies_of_a_hand_written_trace():
    # request 0 (id 0): arrives 0.0, tokens at 0.3, 0.35, 0.45; request 1: 0.1, then 0.5
    trace = [Event(0, "arrival", 0.0), Event(1, "arrival", 0.1), Event(0, "first_token", 0.3),
             Event(0, "token", 0.35), Event(0, "token", 0.45), Event(0, "finish", 0.45),
             Event(1, "first_token", 0.5), Event(1, "finish", 0.5)]
    ttfts, itls = latencies(trace)
    assert ttfts == pytest.approx([0.3, 0.4])
    assert itls == pytest.approx([0.05, 0.1])


def test_disaggregation_removes_the_itl_spikes():
    # 200 tokens of prefill at 0.1 ms per token = 20 ms, a decode step 10 ms
    cost = CostModel(prefill_s_per_token=1e-4, decode_step_s=0.01, transfer_s_per_token=1e-6)
    s = colocated_vs_disagg(8.0, 40, 200, 30, cost, seed=0)
    assert s["disaggregated"]["max_itl_s"] == pytest.approx(0.01), \
        "disaggregated: every ITL is one decode step"
    assert s["colocated"]["max_itl_s"] >= 0.01 + 0.02 - 1e-12, \
        "colocated: a step that also runs a 200-token prefill lasts 30 ms"
