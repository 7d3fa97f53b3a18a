"""Planted bugs in the lesson 23 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below.
"""

from . import Mutation

H23 = "autograder/hidden/lesson23/"
MASK = H23 + "test_window_grading.py::test_mask_equals_definition"
WATTN = H23 + "test_window_grading.py::test_window_attention_equals_masked_sdpa"
SINK = H23 + "test_window_grading.py::test_sink_keep_indices_definition"
SINKCACHE = H23 + "test_window_grading.py::test_sink_cache_over_chunks"
H2O = H23 + "test_window_grading.py::test_h2o_keep_equals_definition"
SCALES = H23 + "test_kv_int8_grading.py::test_scales_codes_and_half_step_bound"
REAL_WINDOW = H23 + "test_real_model.py::test_plain_window_loses_the_first_tokens"
REAL_SINK = H23 + "test_real_model.py::test_sink_cache_stays_close_to_the_full_cache"

MUTATIONS = [
    # sliding_window_mask
    Mutation("window one key too wide (<= instead of <)", "lesson23", "window.py",
             "return (j <= i) & (j > i - window)", "return (j <= i) & (j >= i - window)",
             (MASK, WATTN), kind="boundary"),
    Mutation("a query does not see itself", "lesson23", "window.py",
             "return (j <= i) & (j > i - window)", "return (j < i) & (j >= i - window)",
             (MASK, WATTN), kind="boundary"),
    Mutation("window ignored: a plain causal mask", "lesson23", "window.py",
             "return (j <= i) & (j > i - window)", "return (j <= i) & (j > i - kv_len)",
             (MASK, WATTN, REAL_WINDOW), kind="unvaried-arg"),
    Mutation("queries taken with [-q_len:] (all of them when q_len is 0)", "lesson23", "window.py",
             "i = torch.arange(kv_len - q_len, kv_len, device=device)[:, None]",
             "i = torch.arange(kv_len, device=device)[-q_len:, None]",
             (MASK,), kind="special-value"),
    Mutation("window 0 accepted", "lesson23", "window.py",
             "    ### BEGIN SOLUTION\n    _check_count(\"window\", window, 1)\n",
             "    ### BEGIN SOLUTION\n",
             (H23 + "test_window_grading.py::test_mask_refuses_window_zero",), kind="special-value"),
    # window_attention
    Mutation("whole cache masked instead of sliced", "lesson23", "window.py",
             "start = max(0, S - (window + T - 1))", "start = 0",
             (H23 + "test_window_grading.py::test_window_attention_never_reads_outside_the_window",),
             kind="cost"),
    Mutation("GPU: whole cache masked instead of sliced", "lesson23", "window.py",
             "start = max(0, S - (window + T - 1))\n"
             "    k, v = k[:, :, start:], v[:, :, start:]\n"
             "    mask = None if T == 1 else",
             "start = 0\n"
             "    k, v = k[:, :, start:], v[:, :, start:]\n"
             "    mask = None if False else",
             (H23 + "test_gpu_window.py::test_window_decode_at_32k_costs_a_window",), gpu=True,
             kind="cost"),
    Mutation("slice one key short", "lesson23", "window.py",
             "start = max(0, S - (window + T - 1))", "start = max(0, S - (window + T - 2))",
             (WATTN,), kind="boundary"),
    Mutation("no mask for several queries", "lesson23", "window.py",
             "mask = None if T == 1 else sliding_window_mask", "mask = None if T >= 1 else sliding_window_mask",
             (WATTN,), kind="multi-token"),
    Mutation("scale ignored", "lesson23", "window.py",
             "attn_mask=mask, scale=scale, enable_gqa=True)", "attn_mask=mask, enable_gqa=True)",
             (H23 + "test_window_grading.py::test_window_attention_keeps_bf16_and_scale",),
             kind="unvaried-arg"),
    Mutation("float32 output for bf16 inputs", "lesson23", "window.py",
             "    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)\n",
             "    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,"
             " scale=scale, enable_gqa=True)\n",
             (H23 + "test_window_grading.py::test_window_attention_keeps_bf16_and_scale",),
             kind="dtype-device"),
    # sink_keep_indices and SinkCache
    Mutation("sinks evicted once the window wraps", "lesson23", "window.py",
             "    return torch.cat([torch.arange(n_sink, device=device),\n",
             "    return torch.cat([torch.arange(0, device=device),\n"
             "                      torch.arange(cache_len - window - n_sink, cache_len - window, device=device),\n",
             (SINK, SINKCACHE, REAL_SINK), kind="logic"),
    Mutation("sink window one token short", "lesson23", "window.py",
             "torch.arange(cache_len - window, cache_len, device=device)])",
             "torch.arange(cache_len - window + 1, cache_len, device=device)])",
             (SINK, SINKCACHE), kind="boundary"),
    Mutation("positions kept twice before the cache is full", "lesson23", "window.py",
             "if cache_len <= n_sink + window:", "if cache_len <= window:",
             (SINK, SINKCACHE), kind="boundary"),
    Mutation("one token evicted per append (chunks overflow)", "lesson23", "window.py",
             "        keep = sink_keep_indices(k.shape[2], self.n_sink, self.window, device=k.device)\n",
             "        keep = torch.arange(k.shape[2], device=k.device)\n"
             "        if k.shape[2] > self.n_sink + self.window:\n"
             "            keep = torch.cat([keep[:self.n_sink], keep[self.n_sink + 1:]])\n",
             (SINKCACHE,), kind="multi-token"),
    Mutation("seen counts appends, not tokens", "lesson23", "window.py",
             "self.seen += k.shape[2]", "self.seen += 1",
             (SINKCACHE,), kind="contract"),
    Mutation("values not moved with their keys", "lesson23", "window.py",
             "self.k, self.v = k.index_select(2, keep), v.index_select(2, keep)",
             "self.k, self.v = k.index_select(2, keep), v[:, :, -len(keep):]",
             (SINKCACHE,), kind="logic"),
    # h2o_keep
    Mutation("H2O keeps the lowest scores", "lesson23", "window.py",
             "torch.sort(middle, dim=1, descending=True, stable=True)",
             "torch.sort(middle, dim=1, descending=False, stable=True)",
             (H2O,), kind="logic"),
    Mutation("H2O ties go to the later position", "lesson23", "window.py",
             "order = torch.sort(middle, dim=1, descending=True, stable=True).indices",
             "order = middle.shape[1] - 1 - torch.sort(middle.flip(1), dim=1, descending=True,"
             " stable=True).indices",
             (H2O,), kind="boundary"),
    Mutation("H2O scores pooled over the rows", "lesson23", "window.py",
             "middle = scores[:, n_sink:S - n_recent]",
             "middle = scores[:, n_sink:S - n_recent].sum(0, keepdim=True).expand(R, -1)",
             (H2O,), kind="rows-differ"),
    Mutation("H2O n_sink ignored", "lesson23", "window.py",
             "fixed = torch.cat([torch.arange(n_sink), torch.arange(S - n_recent, S)])",
             "fixed = torch.cat([torch.arange(0), torch.arange(S - n_recent, S)])",
             (H2O,), kind="unvaried-arg"),
    Mutation("H2O budget below the fixed positions accepted", "lesson23", "window.py",
             "    ### BEGIN SOLUTION\n    _check_count(\"budget\", budget, n_sink + n_recent)\n",
             "    ### BEGIN SOLUTION\n",
             (H23 + "test_window_grading.py::test_h2o_refuses_a_budget_below_the_fixed_positions",),
             kind="contract"),
    # kv_quant_int8
    Mutation("scale from max, not absmax (negative outliers clip)", "lesson23", "kv_int8.py",
             "absmax = x.abs().amax(dim=AXES[axis], keepdim=True)",
             "absmax = x.amax(dim=AXES[axis], keepdim=True)",
             (SCALES,), kind="extreme"),
    Mutation("no scale floor: NaN on all-zero rows", "lesson23", "kv_int8.py",
             "scale = (absmax / QMAX).clamp(min=SCALE_FLOOR)", "scale = absmax / QMAX",
             (H23 + "test_kv_int8_grading.py::test_all_zero_rows_and_columns",), kind="special-value"),
    Mutation("axes swapped", "lesson23", "kv_int8.py",
             "absmax = x.abs().amax(dim=AXES[axis], keepdim=True)",
             "absmax = x.abs().amax(dim=-2 if axis == \"token\" else -1, keepdim=True)",
             (SCALES, H23 + "test_kv_int8_grading.py::test_keys_with_outlier_channels_want_per_channel_scales"),
             kind="logic"),
    Mutation("truncation instead of rounding", "lesson23", "kv_int8.py",
             "q = torch.round(x / scale)", "q = torch.trunc(x / scale)",
             (SCALES, H23 + "test_kv_int8_grading.py::test_round_half_to_even"), kind="boundary"),
    Mutation("halves rounded away from zero", "lesson23", "kv_int8.py",
             "q = torch.round(x / scale)", "q = torch.sign(x) * torch.floor((x / scale).abs() + 0.5)",
             (H23 + "test_kv_int8_grading.py::test_round_half_to_even",), kind="boundary"),
    Mutation("range of 128 steps instead of 127", "lesson23", "kv_int8.py",
             "scale = (absmax / QMAX).clamp(min=SCALE_FLOOR)",
             "scale = (absmax / 128).clamp(min=SCALE_FLOOR)",
             (SCALES,), kind="boundary"),
    Mutation("scale left in x's dtype", "lesson23", "kv_int8.py",
             "    x = x.float()\n    absmax", "    absmax",
             (SCALES,), kind="dtype-device"),
    Mutation("dequant dtype ignored", "lesson23", "kv_int8.py",
             "return (q.float() * scale).to(dtype)", "return q.float() * scale",
             (H23 + "test_kv_int8_grading.py::test_dequant_dtype",), kind="dtype-device"),
]
