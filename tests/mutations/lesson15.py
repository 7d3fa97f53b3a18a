"""Planted bugs in the lesson 15 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below.
"""

from . import Mutation

H15 = "autograder/hidden/lesson15/"
PACK = H15 + "test_pack_grading.py::"
RTN = H15 + "test_rtn_grading.py::"
MM = H15 + "test_w4a16_grading.py::"
TRITON = H15 + "test_triton_w4a16_grading.py::"

MUTATIONS = [
    # int4_pack.py
    Mutation("nibbles in reverse order inside a word (round trip still holds)", "lesson15",
             "int4_pack.py",
             "    shifts = torch.arange(0, 32, 4, device=q.device, dtype=torch.int64)\n",
             "    shifts = torch.arange(28, -4, -4, device=q.device, dtype=torch.int64)\n",
             (PACK + "test_pack_matches_bit_formula",), kind="logic"),
    Mutation("packed words saturate at 2^31 - 1 instead of wrapping", "lesson15", "int4_pack.py",
             "    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)\n",
             "    return words.clamp(max=2**31 - 1).to(torch.int32)\n",
             (PACK + "test_pack_matches_bit_formula", PACK + "test_every_value_at_every_position"),
             kind="extreme"),
    Mutation("top nibble unpacked with an arithmetic shift and no mask", "lesson15", "int4_pack.py",
             "    nibbles = (packed[..., None] >> shifts) & 0xF\n",
             "    nibbles = torch.where(shifts == 28, packed[..., None] >> shifts,\n"
             "                          (packed[..., None] >> shifts) & 0xF)\n",
             (PACK + "test_every_value_at_every_position",), kind="boundary"),
    Mutation("unpack_int4 flattens the leading dims", "lesson15", "int4_pack.py",
             "    return nibbles.reshape(*packed.shape[:-1], -1).to(torch.uint8)\n",
             "    return nibbles.reshape(-1, packed.shape[-1] * 8).to(torch.uint8)\n",
             (PACK + "test_pack_matches_bit_formula",
              PACK + "test_unpack_keeps_leading_dims_and_device"), kind="contract"),

    # rtn.py
    Mutation("one scale for the whole tensor", "lesson15", "rtn.py",
             "        lo = groups.amin(dim=-1).clamp(max=0)\n"
             "        hi = groups.amax(dim=-1).clamp(min=0)\n",
             "        lo = groups.amin().clamp(max=0).expand(groups.shape[:2])\n"
             "        hi = groups.amax().clamp(min=0).expand(groups.shape[:2])\n",
             (RTN + "test_rtn_matches_formula_and_bound",), kind="rows-differ"),
    Mutation("scale without a guard for an all-zero group (0 / 0)", "lesson15", "rtn.py",
             "        scales = torch.where(hi > lo, (hi - lo) / top, torch.ones_like(hi))\n",
             "        scales = (hi - lo) / top\n",
             (RTN + "test_all_zero_and_constant_groups",), kind="special-value"),
    Mutation("scale floored at 1e-5 (tiny weights flattened to zero)", "lesson15", "rtn.py",
             "        scales = torch.where(hi > lo, (hi - lo) / top, torch.ones_like(hi))\n",
             "        scales = (hi - lo).clamp(min=1e-5) / top\n",
             (RTN + "test_rtn_matches_formula_and_bound",), kind="extreme"),
    Mutation("range not widened to include 0", "lesson15", "rtn.py",
             "        lo = groups.amin(dim=-1).clamp(max=0)\n"
             "        hi = groups.amax(dim=-1).clamp(min=0)\n",
             "        lo = groups.amin(dim=-1)\n"
             "        hi = groups.amax(dim=-1)\n",
             (RTN + "test_rtn_matches_formula_and_bound",), kind="logic"),
    Mutation("symmetric scale max / 2^(bits-1): the largest weight is clipped a step", "lesson15",
             "rtn.py",
             "        scales = torch.where(amax > 0, amax / (half - 1), torch.ones_like(amax))\n",
             "        scales = torch.where(amax > 0, amax / half, torch.ones_like(amax))\n",
             (RTN + "test_rtn_matches_formula_and_bound",), kind="boundary"),
    Mutation("bits ignored (always 15 levels)", "lesson15", "rtn.py",
             "    top = 2**bits - 1\n    groups = w.float()",
             "    top = 15\n    groups = w.float()",
             (RTN + "test_rtn_matches_formula_and_bound",), kind="unvaried-arg"),
    Mutation("bf16 weights quantized in bf16", "lesson15", "rtn.py",
             "    groups = w.float().reshape(n, k // g, g)\n",
             "    groups = w.reshape(n, k // g, g)\n",
             (RTN + "test_rtn_matches_formula_and_bound",), kind="dtype-device"),
    Mutation("groups run down the columns (every n_groups-th entry)", "lesson15", "rtn.py",
             "    groups = w.float().reshape(n, k // g, g)\n",
             "    groups = w.float().reshape(n, g, k // g).transpose(1, 2)\n",
             (RTN + "test_groups_beat_per_channel_with_planted_outliers",), kind="logic"),
    Mutation("dequantize tiles the scales (repeat, not repeat_interleave)", "lesson15", "rtn.py",
             "    return ((groups - zeros.float()[..., None]) * scales.float()[..., None]).reshape(n, k)\n",
             "    return (q.float() - zeros.float().repeat(1, g)) * scales.float().repeat(1, g)\n",
             (RTN + "test_dequantize_uses_each_groups_own_scale",
              MM + "test_matmul_equals_x_times_dequantized_weight"), kind="logic"),

    # w4a16.py
    Mutation("w4a16_matmul flattens the leading dims of x", "lesson15", "w4a16.py",
             "    return x @ w.T\n",
             "    return x.reshape(-1, x.shape[-1]) @ w.T\n",
             (MM + "test_matmul_equals_x_times_dequantized_weight",), kind="multi-token"),
    Mutation("w4a16_matmul returns float32 for bf16 activations", "lesson15", "w4a16.py",
             "    return x @ w.T\n",
             "    return x.float() @ w.float().T\n",
             (MM + "test_matmul_equals_x_times_dequantized_weight",), kind="dtype-device"),
    Mutation("zero point applied with a second full matmul", "lesson15", "w4a16.py",
             "    w = dequantize(unpack_int4(packed), scales, zeros, group_size).to(x.dtype)\n"
             "    return x @ w.T\n",
             "    q = unpack_int4(packed)\n"
             "    qs = dequantize(q, scales, torch.zeros_like(zeros), group_size).to(x.dtype)\n"
             "    zs = dequantize(torch.zeros_like(q), scales, zeros, group_size).to(x.dtype)\n"
             "    return x @ qs.T + x @ zs.T\n",
             (MM + "test_matmul_is_one_matmul",), kind="cost"),
    Mutation("bytes of the zeros counted with the scale's width", "lesson15", "w4a16.py",
             "    return n * k // 2 + n_groups * (scale_bytes + zero_bytes)\n",
             "    return n * k // 2 + n_groups * 2 * scale_bytes\n",
             (MM + "test_bytes_formula",), kind="unvaried-arg"),
    Mutation("4 bits counted as 4 bytes", "lesson15", "w4a16.py",
             "    return n * k // 2 + n_groups * (scale_bytes + zero_bytes)\n",
             "    return n * k * 4 + n_groups * (scale_bytes + zero_bytes)\n",
             (MM + "test_bytes_formula", MM + "test_layer_bytes_match_its_tensors"), kind="logic"),
    Mutation("torch's nibble pairs in our order (first entry low)", "lesson15", "w4a16.py",
             "    return (q[:, 0::2] << 4) | q[:, 1::2]\n",
             "    return (q[:, 1::2] << 4) | q[:, 0::2]\n",
             (MM + "test_tinygemm_conversions_match_formula",), kind="logic"),
    Mutation("torch's float zero with the wrong sign", "lesson15", "w4a16.py",
             "    zero_f = (2 ** (bits - 1) - zeros.float()) * s\n",
             "    zero_f = (zeros.float() - 2 ** (bits - 1)) * s\n",
             (MM + "test_tinygemm_conversions_match_formula",
              MM + "test_torch_cpu_int4_kernel_on_your_layer"), kind="logic"),
    Mutation("scales_and_zeros not moved groups-first", "lesson15", "w4a16.py",
             "    return torch.stack([s, zero_f], dim=-1).transpose(0, 1).contiguous().to(dtype)\n",
             "    return torch.stack([s, zero_f], dim=-1).reshape(s.shape[1], s.shape[0], 2).to(dtype)\n",
             (MM + "test_tinygemm_conversions_match_formula",
              MM + "test_torch_cpu_int4_kernel_on_your_layer"), kind="logic"),
    # triton_w4a16.py (the kernel track; caught by Triton's interpreter on the CPU)
    Mutation("Triton GEMV: the two nibbles of a shift paired with each other's x", "lesson15",
             "triton_w4a16.py",
             "            d16 += hi * x_hi[None, :]\n            d256 += lo * x_lo[None, :]\n",
             "            d16 += hi * x_lo[None, :]\n            d256 += lo * x_hi[None, :]\n",
             (TRITON + "test_every_nibble_value_at_every_position",), kind="logic"),
    Mutation("Triton GEMV: the low nibble taken four bits too low (bits 11..14)", "lesson15",
             "triton_w4a16.py",
             "    lo = ((r & 0x00078000) | one_bits)",
             "    lo = ((r & 0x00007800) | one_bits)",
             (TRITON + "test_every_nibble_value_at_every_position",), kind="boundary"),
    Mutation("Triton GEMV: x of a nibble read at pack_int4's place, not the re-packed one",
             "lesson15", "triton_w4a16.py",
             "first + V * J",
             "words * 8 + J",
             (TRITON + "test_every_nibble_value_at_every_position",
              TRITON + "test_matches_the_float64_product"), kind="logic"),
    Mutation("Triton GEMV: the floats 1 + q/16 and 1 + q/256 used as q (1s and scales not "
             "removed)", "lesson15", "triton_w4a16.py",
             "        acc += s * (16.0 * d16_r + 256.0 * d256_r - ones - z * xs_r)\n",
             "        acc += s * (d16_r + d256_r - z * xs_r)\n",
             (TRITON + "test_matches_the_float64_product",), kind="logic"),
    Mutation("Triton GEMV: the 1 + q/256 nibbles weighted as 1 + q/16", "lesson15",
             "triton_w4a16.py",
             "        acc += s * (16.0 * d16_r + 256.0 * d256_r - ones - z * xs_r)\n",
             "        acc += s * (16.0 * d16_r + 16.0 * d256_r - ones - z * xs_r)\n",
             (TRITON + "test_matches_the_float64_product",
              TRITON + "test_every_nibble_value_at_every_position"), kind="logic"),
    Mutation("Triton GEMV: 16-bit scales and zeros multiplied in 16 bits (s z rounded)",
             "lesson15", "triton_w4a16.py",
             "        s = s.to(tl.float32)\n        z = z.to(tl.float32)\n"
             "        acc += s * (16.0 * d16_r + 256.0 * d256_r - ones - z * xs_r)\n",
             "        acc += s * (16.0 * d16_r + 256.0 * d256_r - ones) - (s * z) * xs_r\n",
             (TRITON + "test_16_bit_scales_and_zeros",), kind="dtype-device"),
    Mutation("Triton GEMV: a run's group from its word index (words, not entries)", "lesson15",
             "triton_w4a16.py",
             "        group = (k0 + runs * (8 * V)) // GROUP ",
             "        group = (k0 // 8 + runs * V) // GROUP ",
             (TRITON + "test_matches_the_float64_product",), kind="logic"),
    Mutation("Triton GEMV: split-K partial sums stored, not added", "lesson15",
             "triton_w4a16.py",
             "        tl.atomic_add(out, y, mask=row_ok)\n",
             "        tl.store(out, y, mask=row_ok)\n",
             (TRITON + "test_split_k_adds_every_partial_sum",), kind="logic"),
]
