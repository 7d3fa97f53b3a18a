"""Hidden GPU grader, lesson 08: the compiled fused RMSNorm + RoPE against the eager chain.

``torch.compile(fused_rmsnorm_rope)`` (TorchInductor, Triton kernels) runs on 4 sequences of
16384 tokens x 32 heads x 128 channels in bf16 and is timed against the eager chain ``hf_rms_norm`` then
``hf_apply_rope`` in the same run (CUDA events, L2 flushed before each call). Two grades:
its time against the eager chain's, and the bytes it must move (x, the weight, cos and sin
read once, the result written once) over its median time as a share of the device-to-device
copy rate measured in the same run.
"""

import pytest
import torch

from course.bench import check_roofline, cuda_time, measure_copy_bandwidth, record, require_cuda
from course.config import LLAMA2_7B
from course.hf_layers import hf_apply_rope, hf_rms_norm, hf_rope_cos_sin
from course.testing import assert_close
from exercises.lesson08.fusion import fused_rmsnorm_rope

# Measured on an H200 (2026-11-30, torch 2.11.0+cu130, x of 4 x 32 x 16384 x 128 bf16;
# hardware_fixtures/h200_sxm.toml [calibration.ten_runs]): the compiled reference ran 16.1x
# faster than the eager chain and moved its bytes at 0.66 of the copy rate of the same run.
# - 1.5x fails only a function that is not fused at all (the eager chain moves about 8x the
#   fused bytes).
# - The same function split in two kernels (a graph break between the norm and the rotation)
#   moves about 2x the bytes: about 0.33 of the copy rate (planted, caught). 0.5 leaves a 24%
#   margin under the reference.
MIN_SPEEDUP = 1.5
MIN_COPY_SHARE = 0.5
# batch, heads, tokens, d_head: x is 512 MiB of bf16, so one fused call moves about 1.1 GB
# (about 0.27 ms at 4 TB/s): long next to the host's cost of calling a compiled function
# (tens of microseconds, hidden behind the L2 flush that cuda_time queues before each call).
SHAPE = (4, 32, 16384, 128)


def _eager(x, weight, cos, sin, eps):
    normed = hf_rms_norm(x, weight, eps)
    return hf_apply_rope(normed, normed[:, :0], cos, sin)[0]


@pytest.mark.gpu
@pytest.mark.points(3)
def test_compiled_fused_rmsnorm_rope_beats_the_eager_chain():
    """Bugs: a fused function that torch.compile cannot make into one kernel (a graph break
    between the norm and the rotation, a Python loop over heads), so it moves intermediates
    through memory like the eager chain; a wrong result from the compiled function."""
    require_cuda()
    try:
        import triton  # noqa: F401  torch.compile's GPU code generator
    except ImportError:
        pytest.skip("needs triton: torch.compile generates Triton kernels on a GPU "
                    "(pip install triton)")
    batch, heads, tokens, d_head = SHAPE
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(SHAPE, device="cuda", generator=g).bfloat16()
    weight = (1 + 0.1 * torch.randn(d_head, device="cuda", generator=g)).bfloat16()
    cos, sin = hf_rope_cos_sin(LLAMA2_7B, torch.arange(tokens, device="cuda"))
    eps = 1e-6
    # eagerly first, on a few tokens: an unwritten or failing function reports its own error
    # here, not wrapped in the compiler's
    small = (x[:, :, :8], weight, cos[:8], sin[:8], eps)
    assert_close(fused_rmsnorm_rope(*small), _eager(*small), atol=3e-2, rtol=3e-2,
                 what="fused_rmsnorm_rope on the GPU, eager, 8 tokens",
                 reference="hf_rms_norm then hf_apply_rope")
    torch._dynamo.reset()
    compiled = torch.compile(fused_rmsnorm_rope, dynamic=False)
    try:
        got = compiled(x, weight, cos, sin, eps)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"torch.compile(fused_rmsnorm_rope) failed on the GPU: "
                    f"{type(exc).__name__}: {str(exc)[:600]}")
    want = _eager(x, weight, cos, sin, eps)
    assert_close(got, want, atol=3e-2, rtol=3e-2, what="compiled fused_rmsnorm_rope on the GPU",
                 reference="hf_rms_norm then hf_apply_rope")
    fused_t = cuda_time(lambda: compiled(x, weight, cos, sin, eps), warmup=5, iters=30)
    eager_t = cuda_time(lambda: _eager(x, weight, cos, sin, eps), warmup=3, iters=15)
    copy_bw = measure_copy_bandwidth(1 << 30, iters=20)
    fused_bytes = 2 * x.nbytes + weight.nbytes + cos.nbytes + sin.nbytes
    bw = fused_bytes / fused_t.median_s
    check_roofline(bw, copy_bw, "fused RMSNorm + RoPE bandwidth (bytes/s)", tolerance=0.15)
    speedup = eager_t.median_s / fused_t.median_s
    share = bw / copy_bw
    record("lesson08.fused_rmsnorm_rope", {
        "shape": "x".join(map(str, SHAPE)), "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "copy_bytes_per_s": copy_bw, "fused_bytes_per_s": bw, "fused_over_copy_ratio": share,
        "eager_over_fused_time_ratio": speedup, "fused_median_s": fused_t.median_s,
        "eager_median_s": eager_t.median_s})
    assert speedup >= MIN_SPEEDUP, (
        f"the compiled fused function took {fused_t.median_s * 1e6:.0f} us, the eager chain "
        f"{eager_t.median_s * 1e6:.0f} us: {speedup:.2f}x faster; at least {MIN_SPEEDUP}x is "
        "expected. Write it as one graph of plain torch ops (no .item(), no Python loop).")
    assert share >= MIN_COPY_SHARE, (
        f"the compiled fused function moved its {fused_bytes / 1e6:.0f} MB at "
        f"{bw / 1e12:.2f} TB/s, {share:.2f}x the copy rate ({copy_bw / 1e12:.2f} TB/s); at "
        f"least {MIN_COPY_SHARE}x is expected of one kernel that reads x once and writes the "
        "result once.")
