"""course.bench (GPU timing harness) and course.counting (CPU cost counters).

References: FLOPs of an (m, k) @ (k, n) product are 2mkn; a view shares its input's storage
and allocates nothing; a measured rate above the datasheet roof is a timing bug.
"""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hardware_fixtures as hf
from course import bench
from course.counting import AllocationCounter, count_flops, count_flops_by_op

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")


# --- course.bench without a GPU ------------------------------------------------------------

@needs_no_cuda
@pytest.mark.parametrize("call", [
    lambda: bench.cuda_time(lambda: None),
    lambda: bench.measure_copy_bandwidth(1 << 20),
    lambda: bench.measure_gemm_flops(64),
    lambda: bench.l2_flush_bytes(),
    lambda: bench.capture_cuda_graph(lambda: None),
])
def test_timing_functions_raise_a_clear_error_without_cuda(call):
    with pytest.raises(bench.CudaUnavailableError, match="needs a CUDA GPU") as info:
        call()
    assert "require_cuda" in str(info.value)


@needs_no_cuda
def test_require_cuda_skips_without_cuda():
    with pytest.raises(pytest.skip.Exception, match="needs a CUDA GPU"):
        bench.require_cuda()


def test_timing_summary():
    t = bench.Timing.from_samples([3e-3, 1e-3, 2e-3, 4e-3, 5e-3])
    assert (t.median_s, t.min_s) == (3e-3, 1e-3)
    assert t.min_s <= t.median_s <= t.p90_s <= max(t.samples_s)
    assert t.samples_s == (3e-3, 1e-3, 2e-3, 4e-3, 5e-3)
    assert "median 3.0000 ms" in str(t)
    assert bench.Timing.from_samples([2e-3]).p90_s == 2e-3
    with pytest.raises(ValueError):
        bench.Timing.from_samples([])


def test_check_roofline_accepts_points_under_the_roof():
    assert bench.check_roofline(3.0e12, 3.35e12, "copy (bytes/s)") == pytest.approx(0.8955, abs=1e-4)
    assert bench.check_roofline(1.04, 1.0, "x", tolerance=0.05) == pytest.approx(1.04)


def test_check_roofline_rejects_points_above_the_roof():
    with pytest.raises(bench.RooflineViolation) as info:
        bench.check_roofline(5e12, 3.35e12, "copy bandwidth (bytes/s)")
    message = str(info.value)
    assert "copy bandwidth (bytes/s)" in message and "timing bug" in message
    assert "synchronize" in message
    assert isinstance(info.value, AssertionError)         # pytest reports it as a failure
    with pytest.raises(ValueError):
        bench.check_roofline(1.0, 0.0, "x")


# --- course.bench on a GPU (skipped on CPU) --------------------------------------------------

@pytest.mark.gpu
def test_cuda_time_returns_sane_samples():
    bench.require_cuda()
    x = torch.randn(1 << 22, device="cuda")
    t = bench.cuda_time(lambda: x.mul_(1.0), warmup=2, iters=20)
    assert len(t.samples_s) == 20 and all(s > 0 for s in t.samples_s)
    assert t.min_s <= t.median_s <= t.p90_s
    big = torch.randn(1 << 26, device="cuda")
    assert bench.cuda_time(lambda: big.mul_(1.0), iters=20).median_s > t.median_s


@pytest.mark.gpu
def test_cuda_time_host_lead_leaves_out_the_host_time():
    """A call that spends 1 ms on the host before a tiny kernel: without a lead the timing
    includes most of that millisecond (the flush covers less); with a 3 ms lead it is the
    kernel alone."""
    bench.require_cuda()
    x = torch.randn(1 << 16, device="cuda")

    def slow_host():
        deadline = time.perf_counter() + 1e-3
        while time.perf_counter() < deadline:
            pass
        x.mul_(1.0)

    plain = bench.cuda_time(slow_host, warmup=2, iters=10).median_s
    led = bench.cuda_time(slow_host, warmup=2, iters=10, host_lead_s=3e-3).median_s
    assert plain > 5e-4 and led < 2e-4, (
        f"without lead {plain * 1e6:.0f} us, with {led * 1e6:.0f} us")
    with pytest.raises(ValueError, match="host_lead_s"):
        bench.cuda_time(slow_host, iters=1, host_lead_s=-1.0)


@pytest.mark.gpu
def test_measured_ceilings_are_under_the_datasheet_roofs():
    bench.require_cuda()
    copy = bench.measure_copy_bandwidth(1 << 30)
    gemm = bench.measure_gemm_flops(4096, torch.bfloat16)
    spec = hf.current()
    if spec is None:
        pytest.skip(f"no fixture for {torch.cuda.get_device_name()}")
    assert bench.check_roofline(copy, spec.memory_bandwidth_bytes_per_s, "copy (bytes/s)") > 0.3
    assert bench.check_roofline(gemm, spec.peak_flops("bf16"), "bf16 GEMM (FLOP/s)") > 0.3


@pytest.mark.gpu
def test_a_missing_synchronize_is_caught_by_the_roofline():
    bench.require_cuda()
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    torch.mm(a, a)
    torch.cuda.synchronize()
    start = time.perf_counter()
    torch.mm(a, a)                                        # launch only: no synchronize
    host_s = time.perf_counter() - start
    peak = bench.spec_or_measure().peak_flops("bf16")
    with pytest.raises(bench.RooflineViolation):
        bench.check_roofline(2 * n**3 / host_s, peak, "unsynchronised bf16 GEMM (FLOP/s)")
    torch.cuda.synchronize()


# --- course.counting -------------------------------------------------------------------------

def test_count_flops_of_a_matmul_is_2mkn():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    assert count_flops(torch.mm, a, b) == 2 * 4 * 8 * 3
    assert count_flops(lambda x, y: x @ y, a, b) == 192
    assert count_flops_by_op(torch.mm, a, b) == {"aten.mm": 192}


def test_count_flops_of_a_linear_layer_and_of_elementwise_ops():
    layer = torch.nn.Linear(16, 32, bias=False)
    x = torch.randn(5, 16)
    assert count_flops(layer, x) == 2 * 5 * 16 * 32
    assert count_flops(torch.relu, x) == 0                # FlopCounterMode counts matmul-like ops


@pytest.mark.parametrize("make_view", [
    lambda x: x.reshape(6, 4),
    lambda x: x.view(-1),
    lambda x: x.t(),
    lambda x: x.transpose(0, 1),
    lambda x: x[1:, ::2],
    lambda x: x.unsqueeze(0).expand(3, 4, 6),
    lambda x: x.add_(1.0),
    lambda x: torch.add(x, 1.0, out=x),
])
def test_views_and_in_place_ops_allocate_nothing(make_view):
    x = torch.randn(4, 6)
    with AllocationCounter() as alloc:
        make_view(x)
    assert alloc.total_bytes == 0, alloc.report()
    assert alloc.log == [] and alloc.peak_single_bytes == 0


def test_clone_counts_its_bytes():
    x = torch.randn(4, 6)
    with AllocationCounter() as alloc:
        x.clone()
    assert alloc.total_bytes == x.nbytes == 96
    assert alloc.log[0].op == "aten.clone.default"
    assert alloc.log[0].shape == (4, 6) and alloc.log[0].dtype == torch.float32


def test_reshape_of_a_non_contiguous_tensor_copies():
    x = torch.randn(4, 6)
    with AllocationCounter() as alloc:
        x.t().reshape(24)
    assert alloc.total_bytes == 96, alloc.report()


def test_gathers_count_their_outputs():
    x = torch.randn(10, 8)
    idx = torch.tensor([0, 3, 3])
    with AllocationCounter() as alloc:
        x.index_select(0, idx)
    assert alloc.total_bytes == 3 * 8 * 4
    gidx = torch.zeros(10, 2, dtype=torch.long)
    with AllocationCounter() as alloc:
        torch.gather(x, 1, gidx)
    assert alloc.total_bytes == 10 * 2 * 4
    with AllocationCounter() as alloc:
        x[idx]                                           # advanced indexing copies too
    assert alloc.total_bytes == 3 * 8 * 4, alloc.report()


def test_matmul_counts_its_output_and_the_log_is_readable():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with AllocationCounter() as alloc:
        a @ b
        torch.zeros(100, dtype=torch.float16)
    assert [e.nbytes for e in alloc.log] == [4 * 3 * 4, 200]
    assert alloc.peak_single_bytes == 200 and alloc.num_allocations == 2
    report = alloc.report()
    assert "aten.mm" in report and "[4, 3]" in report and "aten.zeros" in report


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.int8, torch.float64]))
def test_clone_counts_exactly_and_views_never(shape, dtype):
    x = torch.zeros(shape, dtype=dtype)
    with AllocationCounter() as alloc:
        x.reshape(-1)
        x.unsqueeze(0)
        x.clone()
    assert alloc.total_bytes == x.numel() * x.element_size(), alloc.report()
