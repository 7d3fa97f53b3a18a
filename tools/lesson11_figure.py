"""Draw learning/figures/lesson11_roofline_h100.png: the operators of lesson 11's table at
their roofs on an H100 SXM (datasheet figures from hardware_fixtures), through the reference
plot_roofline and course.plot. Run from the repository root:

    python -m tools.lesson11_figure

Each operator is given the time its roof allows, max(flops / peak, bytes / bandwidth), so every
point sits on the roof: the figure shows where each operator lies, not how fast a kernel ran.
"""

from __future__ import annotations

from pathlib import Path

import hardware_fixtures as hf
from solutions.lesson11.ops import gemm_op, sdpa_op, softmax_op
from solutions.lesson11.roofline import OpSpec, roofline_report
from solutions.lesson11.roofline_plot import plot_roofline

OUT = Path(__file__).resolve().parents[1] / "learning" / "figures" / "lesson11_roofline_h100.png"


def main() -> None:
    spec = hf.load("h100_sxm")
    named = {
        "decode GEMV": gemm_op(1, 4096, 4096),
        "decode, 16 sequences": gemm_op(16, 4096, 4096),
        "prefill GEMM, 2048 tokens": gemm_op(2048, 4096, 4096),
        "prefill GEMM, FP8": gemm_op(2048, 4096, 4096, "fp8"),
        "softmax": softmax_op(32 * 4096, 4096),
        "decode attention": sdpa_op(1, 32, 1, 4096, 128),
        "prefill attention (fused)": sdpa_op(1, 32, 4096, 4096, 128),
    }
    ops = [OpSpec(name, op.flops, op.nbytes, op.dtype) for name, op in named.items()]
    bw = spec.memory_bandwidth_bytes_per_s
    times = [max(op.flops / spec.peak_flops(op.dtype), op.nbytes / bw) for op in ops]
    data = plot_roofline(roofline_report(ops, times, spec), spec, OUT)
    print(f"wrote {data.path}: {len(data.lines)} roofs, {len(data.points)} points")


if __name__ == "__main__":
    main()
