"""Hidden GPU grader, lesson 03: a batch-1 decode step is memory-bound, so it should take about
the time needed to read the weights once: weight bytes / the device's copy bandwidth.

Model: a Llama with 4 layers of d_model 4096, d_ff 11008 (Llama-2-7B's layer shape) and a
32000-token vocabulary, random bf16 weights (2.14 GB read per step, embedding table excluded:
a step reads one of its rows). Copy bandwidth is measured in the same run (course.bench).
"""


import pytest
import torch

from course.bench import check_roofline, cuda_time, measure_copy_bandwidth, record, require_cuda
from course.config import LlamaConfig
from course.llama_reference import llama_forward
from course.model import weight_shapes
from course.testing import assert_close
from exercises.lesson03.phases import decode_step, prefill

# A decode step may take at most THRESHOLD x (weight bytes / copy bandwidth). The reference
# took 6.4x (4.03 ms for 1.88 GB read at 3.0 TB/s) on an H100 80GB HBM3 (2026-11-22, torch
# 2.11.0+cu130; hardware_fixtures/h100_sxm.toml [calibration.lesson03]): eager PyTorch at
# batch 1 is launch-bound (about 30 kernels per layer, each waiting on Python), which is what
# CUDA graphs remove in real engines. 8.0 leaves a 24% margin; an fp32 upcast of the weights
# every step adds several floors on top.
THRESHOLD = 8.0
CFG = LlamaConfig(name="gemv-4L-4096d", n_layers=4, d_model=4096, n_heads=32, n_kv_heads=32,
                  d_head=128, d_ff=11008, vocab_size=32000, rope_theta=10000.0, rms_eps=1e-5,
                  tie_embeddings=False, max_position=4096)


def _weights():
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = {}
    for name, shape in weight_shapes(CFG).items():
        w = torch.randn(shape, generator=gen, device="cuda", dtype=torch.bfloat16)
        if len(shape) == 1:
            out[name] = 1.0 + 0.1 * w
        elif name == "model.embed_tokens.weight":
            out[name] = w
        else:
            out[name] = w / shape[1] ** 0.5  # unit-variance outputs for unit-variance inputs
    return out


@pytest.mark.gpu
@pytest.mark.points(2)
@torch.no_grad()
def test_batch1_decode_is_near_weight_bytes_over_bandwidth():
    """Bug: a decode step that upcasts the weights to float32 every step, copies the whole
    cache, or computes logits with a Python loop: far slower than reading the weights once.
    (Re-running a short prompt is caught by the CPU FLOP-count graders: at batch 1 it reads
    the same weights and hides on the GPU.)"""
    require_cuda()
    w = _weights()
    ids = torch.randint(0, CFG.vocab_size, (1, 64), device="cuda",
                        generator=torch.Generator(device="cuda").manual_seed(1))
    _, cache = prefill(w, CFG, ids[:, :-1])
    logits, _ = decode_step(w, CFG, ids[:, -1], cache)
    want = llama_forward(w, CFG, ids)[:, -1]
    assert_close(logits.float(), want.float(), atol=0.1, rtol=0.05,
                 what="decode step logits on the GPU (bf16)", reference="a full forward")
    weight_bytes = sum(t.nbytes for n, t in w.items() if n != "model.embed_tokens.weight")
    t = cuda_time(lambda: decode_step(w, CFG, ids[:, -1], cache), warmup=5, iters=30)
    copy_bw = measure_copy_bandwidth(1 << 30, iters=20)
    achieved = weight_bytes / t.median_s
    check_roofline(achieved, copy_bw, "weight bytes read per second in decode", tolerance=0.25)
    floor_s = weight_bytes / copy_bw
    ratio = t.median_s / floor_s
    figures = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "weight_bytes": weight_bytes, "copy_bytes_per_s": copy_bw,
               "decode_median_s": t.median_s, "floor_s": floor_s, "ratio_to_floor": ratio}
    record("lesson03.batch1_decode", figures)
    assert ratio <= THRESHOLD, (
        f"a batch-1 decode step took {t.median_s * 1e3:.2f} ms, {ratio:.2f}x the time to read "
        f"the {weight_bytes / 1e9:.2f} GB of weights at the measured {copy_bw / 1e12:.2f} TB/s; "
        f"at most {THRESHOLD}x is expected. Run only the new token, keep bf16, reuse the cache.")
