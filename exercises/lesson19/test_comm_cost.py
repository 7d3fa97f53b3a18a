"""Lesson 19, part 3: the ring all-reduce, as a formula and simulated. Run: pytest exercises/lesson19"""

import pytest

from exercises.lesson19.comm_cost import ring_allreduce_time, simulate_ring_allreduce


def test_ring_allreduce_time_worked_example():
    # 1 GB over 4 ranks at 100 GB/s per direction: 2 x 3 steps of 0.25 GB = 15 ms
    assert ring_allreduce_time(1e9, 4, 100e9) == pytest.approx(0.015)
    # with 5 us per step: 6 steps add 30 us
    assert ring_allreduce_time(1e9, 4, 100e9, 5e-6) == pytest.approx(0.015 + 30e-6)
    assert ring_allreduce_time(1e9, 1, 100e9, 5e-6) == 0.0


def test_simulated_ring_sums_and_sends_2_n_minus_1_over_n():
    data = [[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0], [100.0, 200.0, 300.0, 400.0],
            [0.5, 0.5, 0.5, 0.5]]
    result, sent = simulate_ring_allreduce(data, bytes_per_element=4)
    assert result == [[111.5, 222.5, 333.5, 444.5]] * 4
    assert sent == [2 * 3 * 4] * 4  # 2 (N-1) steps of one 1-element chunk (4 bytes)
    assert data[0] == [1.0, 2.0, 3.0, 4.0], "the input must not be modified"
