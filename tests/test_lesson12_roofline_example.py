"""Lesson 12's Llama-3-8B decode-step example, recomputed: every figure the text quotes.

Each kind of work is timed against its own roof: the weight GEMMs at max(bytes / bandwidth,
FLOPs / peak), attention (4 FLOP/byte, the GQA group size) at KV bytes / bandwidth.
"""

from pathlib import Path

import pytest

# Whitespace folded, so rewrapping a paragraph does not break a quote.
TEXT = " ".join((Path(__file__).resolve().parents[1] / "learning" / "lesson12.md").read_text().split())
PEAK, BW = 989.4e12, 3.35e12  # H100 SXM datasheet: dense BF16 FLOP/s, HBM3 B/s
# Llama-3-8B: 32 layers, d_model 4096, 32 query heads and 8 KV heads of 128, d_ff 14336,
# vocabulary 128256, untied output head.
LAYERS, D, HEADS, KV_HEADS, D_HEAD, D_FF, VOCAB = 32, 4096, 32, 8, 128, 14336, 128256
LINEAR_PARAMS = LAYERS * (2 * D * D + 2 * D * KV_HEADS * D_HEAD + 3 * D * D_FF) + VOCAB * D
KV_PER_TOKEN = 2 * 2 * LAYERS * KV_HEADS * D_HEAD  # K and V, 2 bytes each
CONTEXT = 1000  # tokens per sequence, on average


def step(batch):
    gemm_flops = 2 * LINEAR_PARAMS * batch
    gemm = max(2 * LINEAR_PARAMS / BW, gemm_flops / PEAK)
    kv = batch * CONTEXT * KV_PER_TOKEN
    attention = kv / BW
    return {"gemm_flops": gemm_flops, "gemm": gemm, "kv": kv, "attention": attention,
            "step": gemm + attention, "rate": batch / (gemm + attention)}


def quoted(text):
    text = " ".join(text.split())
    assert text in TEXT, f"lesson 12 should quote {text!r} (recomputed here)"


def test_parameters_ridge_and_intensities():
    total = LINEAR_PARAMS + VOCAB * D  # plus the embedding table
    assert total / 1e9 == pytest.approx(8.03, abs=0.005)
    quoted(f"{LINEAR_PARAMS / 1e9:.2f}\n  billion parameters, {2 * LINEAR_PARAMS / 1e9:.1f} GB")
    quoted(f"the other {VOCAB * D / 1e9:.2f} billion")
    quoted(f"a ridge of 989.4e12 / 3.35e12 = {PEAK / BW:.0f} FLOP/byte")
    flops_per_token_layer = 2 * (2 * HEADS * D_HEAD)
    bytes_per_token_layer = 2 * KV_HEADS * D_HEAD * 2
    assert flops_per_token_layer / bytes_per_token_layer == HEADS // KV_HEADS == 4
    quoted(f"{flops_per_token_layer:,} FLOPs, against 2 x 8 x 128 x 2 B\n  = "
           f"{bytes_per_token_layer:,} B")


def test_step_times_and_throughput():
    small, large = step(55), step(454)
    assert 55 < PEAK / BW < 454  # the two batches sit on opposite sides of the ridge
    quoted(f"| GEMM FLOPs, 2 x 7.50e9 x batch | {small['gemm_flops'] / 1e12:.2f} TFLOP | "
           f"{large['gemm_flops'] / 1e12:.2f} TFLOP |")
    quoted(f"= {small['gemm'] * 1e3:.2f} ms | 6.81 TFLOP / 989.4 TFLOP/s = "
           f"{large['gemm'] * 1e3:.2f} ms |")
    quoted(f"| {small['kv'] / 1e9:.2f} GB | {large['kv'] / 1e9:.1f} GB |")
    quoted(f"= {small['attention'] * 1e3:.2f} ms | 59.5 GB / 3.35 TB/s = "
           f"{large['attention'] * 1e3:.1f} ms |")
    quoted(f"| step time | {small['step'] * 1e3:.2f} ms | {large['step'] * 1e3:.1f} ms |")
    quoted(f"{round(small['rate'], -1):,.0f} tokens/s | 454 / 24.7 ms = "
           f"{round(large['rate'], -2):,.0f} tokens/s |")
    quoted(f"Paging gives {large['rate'] / small['rate']:.1f}x the throughput")
    quoted(f"the GEMMs take only {large['gemm'] / small['gemm']:.1f}x as long for "
           f"{454 / 55:.1f}x the sequences")
    quoted(f"which is {100 * large['attention'] / large['step']:.0f}% of the larger step")
