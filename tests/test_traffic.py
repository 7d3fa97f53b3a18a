"""course.traffic: what the byte counter of an eager chain counts (lesson 08's oracle)."""

import doctest

import torch

import course.traffic
from course.traffic import count_traffic


def test_docstring_example():
    assert doctest.testmod(course.traffic).failed == 0


def test_views_move_nothing_and_copies_do():
    x = torch.randn(4, 6)
    t = count_traffic(lambda: (x.t(), x.view(24), x[1:3], x.unsqueeze(0), x.expand(2, 4, 6)))
    assert t.total_bytes == 0 and t.log == []
    t = count_traffic(lambda: x.t().contiguous())
    assert (t.bytes_read, t.bytes_written) == (96, 96)


def test_in_place_broadcast_and_casts():
    x, row = torch.randn(4, 6), torch.randn(6)
    t = count_traffic(lambda: x.add_(1.0))           # in place: reads and writes its target
    assert (t.bytes_read, t.bytes_written) == (96, 96)
    t = count_traffic(lambda: x * row)               # a broadcast input counts at its own size
    assert (t.bytes_read, t.bytes_written) == (96 + 24, 96)
    t = count_traffic(lambda: x.bfloat16())
    assert (t.bytes_read, t.bytes_written) == (96, 48)
    assert count_traffic(lambda: x.float()).total_bytes == 0  # already float32: no op runs


def test_empty_results_and_matmul():
    x, w = torch.randn(3, 5), torch.randn(5, 2)
    assert count_traffic(lambda: x[:0] * 2).total_bytes == 0
    t = count_traffic(lambda: x @ w)
    assert (t.bytes_read, t.bytes_written) == (60 + 40, 24)
    assert len(t.log) == 1 and "mm" in t.log[0].op and "read 100 B" in t.report()
