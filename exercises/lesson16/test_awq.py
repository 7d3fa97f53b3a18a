"""Lesson 16, part 3: RTN and AWQ weight quantization. Run: pytest exercises/lesson16"""

import pytest
import torch

from course.testing import assert_close
from exercises.lesson16.awq import quantize_awq, quantize_rtn


def layer_case(seed=0, tokens=256, d_in=256, d_out=128):
    gen = torch.Generator().manual_seed(seed)
    loud = torch.ones(d_in)
    loud[torch.randperm(d_in, generator=gen)[:8]] = 20.0      # salient input channels
    x = torch.randn(2 * tokens, d_in, generator=gen) * loud
    w = torch.randn(d_out, d_in, generator=gen) / d_in**0.5
    return w, x[:tokens], x[tokens:]


def test_rtn_error_at_most_half_a_step():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    g = quantize_rtn(w, bits=4, group_size=16)
    assert g.q.dtype == torch.uint8 and g.q.shape == w.shape and int(g.q.max()) <= 15
    assert g.scale.shape == (16, 4) and g.zero.shape == (16, 4)
    err = (g.dequantize() - w).abs().view(16, 4, 16)
    assert (err <= g.scale[..., None] / 2 + 1e-5).all(), "RTN error must be <= scale / 2"


def test_rtn_is_exact_on_grid_values():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0, -1.0, 0.5, 1.0, 2.0]])
    assert_close(quantize_rtn(w, bits=2, group_size=4).dequantize()[0, :4], w[0, :4],
                 atol=1e-6, what="RTN of a group already on the 2-bit grid",
                 reference="the weights themselves")


def test_rtn_all_positive_group_within_half_a_step():
    # Every entry of the group is positive. The range [min, max] = [1, 4] widened to include 0
    # is [0, 4]: scale 4/3, zero 0, q = round([0.75, 1.5, 2.25, 3]) = [1, 2, 2, 3]. Without the
    # widening, a zero point clamped to [0, 3] cannot reach 4 and the group comes back [1, 2, 3, 3].
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    g = quantize_rtn(w, bits=2, group_size=4)
    assert 0 <= float(g.zero[0, 0]) <= 3, f"zero point {float(g.zero[0, 0])} must fit in 2 bits"
    assert_close(g.scale, torch.tensor([[4 / 3]]), atol=1e-6, what="scale of the group [1, 2, 3, 4]",
                 reference="(max(4, 0) - min(1, 0)) / 3")
    assert_close(g.dequantize(), torch.tensor([[4 / 3, 8 / 3, 8 / 3, 4.0]]), atol=1e-5,
                 what="RTN of [1, 2, 3, 4] at 2 bits", reference="(q - zero) * scale, each within 2/3")


@pytest.mark.parametrize("bits", [3, 4])
def test_awq_beats_rtn_on_held_out_tokens(bits):
    w, x_cal, x_test = layer_case()
    rtn = quantize_rtn(w, bits, 64).dequantize()
    awq = quantize_awq(w, x_cal, bits, 64, n_grid=20)
    assert 0 <= awq.alpha < 1 and awq.input_scale.shape == (256,)
    assert awq.quant.scale.shape == (128, 256 // 64), \
        f"group_size 64 gives 4 groups per row, got scales {tuple(awq.quant.scale.shape)}"
    for x, name in ((x_cal, "calibration"), (x_test, "held-out")):
        e_rtn = ((x @ rtn.T - x @ w.T) ** 2).mean()
        e_awq = ((x @ awq.dequantize().T - x @ w.T) ** 2).mean()
        assert e_awq < e_rtn, f"{name}: AWQ error {e_awq:.3g} must be below RTN's {e_rtn:.3g}"
