"""Hidden GPU grader, capstone: the engine's throughput over the submission's pieces, as a
ratio to HF transformers' own ``generate`` on the same prompts, weights and GPU, both measured
by this one test.

SmolLM2-135M's shape with seeded random weights in bf16 (the GPU runner has no model wheel):
64 requests of 128 prompt tokens, 64 new tokens each, greedy. The engine gets room for all of
them at once (no preemption) and a token budget that prefills them in two steps; HF generate
runs the 64 prompts as one padded batch with its own KV cache. Both are timed from the first
call to the last token with the device synchronised, after a warm-up of each.
"""

from __future__ import annotations

import time

import pytest
import torch

from course.bench import check_roofline, record, require_cuda, spec_or_measure
from course.config import SMOLLM2_135M
from course.engine import Engine, SamplingParams
from course.model import random_weights

BATCH, PROMPT, NEW = 64, 128, 64
# Measured on an H200 pair (torch 2.11, CUDA 13, 2026-11-30; hardware_fixtures/h200_sxm.toml [calibration.ten_runs]): 0.36 .. 0.59x
# HF generate in 10 rounds, so 0.25 leaves 30%. Reasoning before the run: at 135M parameters both sides are bound
# by Python and kernel launches, not by HBM. Per decode step HF generate launches ~25 kernels
# per layer over one padded batch; the engine launches about as many per layer, plus the
# pieces' own host syncs (write_kv's range check, paged decode's max length), the scheduler
# and radix tree in Python, and one causal attention call per sequence per layer during
# prefill. We expect the reference engine at 0.4-1x HF; 0.25 fails a piece that loops over
# sequences or tokens in Python (tens of times slower) and passes any vectorised one.
THRESHOLD = 0.25
AGREE = 0.9  # share of requests whose first token must equal HF's (bf16 near-ties aside)


def _timed(fn):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start


@pytest.mark.gpu
@pytest.mark.points(2)
def test_engine_tokens_per_second_against_hf_generate(impl):
    """Bug: pieces that are right but slow on a GPU (a Python loop over sequences or tokens in
    paged attention or write_kv, a per-token host copy, a scheduler or radix walk that grows
    with the square of the queue): the engine must reach THRESHOLD x HF generate's tokens per
    second on the same prompts, with HF's first tokens (no fast wrong answer), under the roof
    of reading the weights once per step."""
    require_cuda()
    cfg = SMOLLM2_135M
    weights = random_weights(cfg, seed=0, dtype=torch.bfloat16)
    engine = Engine(impl, num_blocks=BATCH * (PROMPT + NEW) // 16 + 64, block_size=16,
                    token_budget=BATCH * PROMPT // 2, max_running=BATCH, weights=weights,
                    cfg=cfg, device="cuda", dtype=torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(1, cfg.vocab_size, (BATCH, PROMPT), generator=g)
    params = SamplingParams(max_tokens=NEW)
    engine.generate(torch.randint(1, cfg.vocab_size, (8, PROMPT), generator=g).tolist(),
                    SamplingParams(max_tokens=8))  # warm-up
    got, t_engine = _timed(lambda: engine.generate(prompts.tolist(), params))
    assert all(len(t) == NEW for t in got), "a request ended before max_tokens"

    hf = engine.model
    ids = prompts.cuda()
    mask = torch.ones_like(ids)

    def hf_generate(n=NEW):
        with torch.no_grad():
            return hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                               min_new_tokens=n, do_sample=False, pad_token_id=0)
    hf_generate(8)  # warm-up
    ref, t_hf = _timed(hf_generate)
    first_engine = torch.tensor([t[0] for t in got])
    first_hf = ref[:, PROMPT].cpu()
    agree = float((first_engine == first_hf).float().mean())

    engine_tps, hf_tps = BATCH * NEW / t_engine, BATCH * NEW / t_hf
    spec = spec_or_measure()
    weight_bytes = sum(w.numel() * w.element_size() for w in hf.parameters())
    # every step reads the weights at least once; at most BATCH tokens come out of a step
    roof = BATCH * spec.memory_bandwidth_bytes_per_s / weight_bytes
    check_roofline(engine_tps, roof, "engine output tokens per second")
    ratio = engine_tps / hf_tps
    record("capstone.engine_tokens_per_s", {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "engine_tokens_per_s": engine_tps, "hf_generate_tokens_per_s": hf_tps, "ratio": ratio,
        "engine_steps": engine.steps, "first_token_agreement": agree, "threshold": THRESHOLD})
    assert agree >= AGREE, (
        f"only {agree:.0%} of the requests' first tokens equal HF generate's on the same "
        f"weights (at least {AGREE:.0%} expected): the engine's output is wrong on the GPU")
    assert ratio >= THRESHOLD, (
        f"the engine produced {engine_tps:.0f} tokens/s, {ratio:.2f}x HF generate's "
        f"{hf_tps:.0f} tokens/s on the same prompts (at least {THRESHOLD}x expected). "
        "Look for a Python loop over sequences or tokens in your pieces.")
