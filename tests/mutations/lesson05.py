"""Planted bugs in the lesson 05 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below.
"""

from . import Mutation

H05 = "autograder/hidden/lesson05/"

MUTATIONS = [
    Mutation("repeat_kv tiles heads instead of interleaving", "lesson05", "grouped_attention.py",
             "x = x[:, :, None, :, :].expand(batch, n_kv_heads, n_rep, tokens, d_head)",
             "x = x[:, None, :, :, :].expand(batch, n_rep, n_kv_heads, tokens, d_head)",
             (H05 + "test_gqa_grading.py::test_repeat_kv_equals_repeat_interleave",), kind="logic"),
    Mutation("query head h reads KV head h % n_kv", "lesson05", "grouped_attention.py",
             "queries = q.reshape(batch, n_kv_heads, group * T, d_head)",
             "queries = q.reshape(batch, group, n_kv_heads, T, d_head).transpose(1, 2)"
             ".reshape(batch, n_kv_heads, group * T, d_head)",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",
              H05 + "test_real_model.py::test_smollm2_layer0_attention")),
    Mutation("top-left causal mask (is_causal with T < S)", "lesson05", "grouped_attention.py",
             "dtype=torch.bool, device=q.device).tril(diagonal=S - T)",
             "dtype=torch.bool, device=q.device).tril(diagonal=0)",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",), kind="multi-token"),
    Mutation("scale ignored", "lesson05", "grouped_attention.py",
             "out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)",
             "out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask)",
             (H05 + "test_gqa_grading.py::test_custom_scale_and_bfloat16",), kind="unvaried-arg"),
    Mutation("float32 output for bf16 inputs", "lesson05", "grouped_attention.py",
             "    return out.reshape(batch, n_heads, T, d_head)\n",
             "    return out.float().reshape(batch, n_heads, T, d_head)\n",
             (H05 + "test_gqa_grading.py::test_custom_scale_and_bfloat16",), kind="dtype-device"),
    Mutation("K/V repeated before attention", "lesson05", "grouped_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n"
             "    return out.reshape(batch, n_heads, T, d_head)\n",
             "    mask = None if mask is None else visible\n"
             "    return F.scaled_dot_product_attention(q, repeat_kv(k, group), repeat_kv(v, group),"
             " attn_mask=mask, scale=scale)\n",
             (H05 + "test_gqa_grading.py::test_never_allocates_repeated_kv",), kind="cost"),
    Mutation("strided groups in the conversion", "lesson05", "conversion.py",
             "grouped = w.reshape(n_groups, per_group, d_head, d_model)",
             "grouped = w.reshape(per_group, n_groups, d_head, d_model).transpose(0, 1)",
             (H05 + "test_conversion_grading.py::test_convert_matches_brute_force_mean_pool",
              H05 + "test_real_model.py::test_mha_copy_of_smollm2_converts_back_exactly")),
    Mutation("sum instead of mean", "lesson05", "conversion.py",
             ".float().mean(dim=1)", ".float().sum(dim=1)",
             (H05 + "test_conversion_grading.py::test_convert_matches_brute_force_mean_pool",
              H05 + "test_real_model.py::test_mha_copy_of_smollm2_converts_back_exactly")),
    Mutation("first head of each group kept", "lesson05", "conversion.py",
             ".float().mean(dim=1)", ".float()[:, 0]",
             (H05 + "test_conversion_grading.py::test_convert_matches_brute_force_mean_pool",)),
    Mutation("kv_reduction_factor ignores its n_kv_heads argument", "lesson05", "conversion.py",
             "    return mha // (2 * cfg.n_layers * kv * cfg.d_head)\n",
             "    return cfg.n_heads // cfg.n_kv_heads\n",
             (H05 + "test_conversion_grading.py::test_kv_reduction_factor_matches_kv_bytes",), kind="unvaried-arg"),
    Mutation("GPU: K/V repeated before attention", "lesson05", "grouped_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n"
             "    return out.reshape(batch, n_heads, T, d_head)\n",
             "    mask = None if mask is None else visible\n"
             "    return F.scaled_dot_product_attention(q, repeat_kv(k, group), repeat_kv(v, group),"
             " attn_mask=mask, scale=scale)\n",
             (H05 + "test_gpu_gqa.py::test_gqa_decode_near_copy_bandwidth",), gpu=True, kind="cost"),
    # Added in the pass over the classes of learner mistakes (issue 9).
    Mutation("repeat_kv copies for n_rep == 1", "lesson05", "grouped_attention.py",
             "    if n_rep == 1:\n        return x\n",
             "    if n_rep == 1:\n        return x.clone()\n",
             (H05 + "test_gqa_grading.py::test_repeat_kv_equals_repeat_interleave",),
             kind="contract"),
    Mutation("q.view on a transposed q", "lesson05", "grouped_attention.py",
             "queries = q.reshape(batch, n_kv_heads, group * T, d_head)",
             "queries = q.view(batch, n_kv_heads, group * T, d_head)",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",
              H05 + "test_real_model.py::test_smollm2_layer0_attention"), kind="contract"),
    Mutation("grouped mask repeated row by row", "lesson05", "grouped_attention.py",
             "mask = visible.repeat(group, 1)",
             "mask = visible.repeat_interleave(group, dim=0)",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",), kind="multi-token"),
    Mutation("a query does not see its own key", "lesson05", "grouped_attention.py",
             "dtype=torch.bool, device=q.device).tril(diagonal=S - T)",
             "dtype=torch.bool, device=q.device).tril(diagonal=S - T - 1)",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",), kind="boundary"),
    Mutation("MHA shortcut through is_causal=True", "lesson05", "grouped_attention.py",
             "    group = n_heads // n_kv_heads\n",
             "    group = n_heads // n_kv_heads\n"
             "    if group == 1:\n"
             "        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)\n",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",), kind="special-value"),
    Mutation("sequences of the batch attend to each other", "lesson05", "grouped_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n",
             "    fold = lambda t: t.transpose(0, 1).reshape(1, t.shape[1], -1, d_head)  # noqa\n"
             "    out = F.scaled_dot_product_attention(fold(queries), fold(k), fold(v),\n"
             "                                         attn_mask=mask, scale=scale)\n"
             "    out = out.reshape(n_kv_heads, batch, group * T, d_head).transpose(0, 1)\n",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",), kind="rows-differ"),
    Mutation("softmax without subtracting the maximum", "lesson05", "grouped_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n",
             "    scores = queries @ k.transpose(-1, -2) * (d_head ** -0.5 if scale is None else scale)\n"
             "    if mask is not None:\n"
             "        scores = scores.masked_fill(~mask, float('-inf'))\n"
             "    weights = scores.exp()\n"
             "    out = (weights / weights.sum(-1, keepdim=True)) @ v\n",
             (H05 + "test_gqa_grading.py::test_custom_scale_and_bfloat16",), kind="extreme"),
    Mutation("converted weights returned in float32", "lesson05", "conversion.py",
             ".float().mean(dim=1).to(w.dtype)", ".float().mean(dim=1)",
             (H05 + "test_conversion_grading.py::test_convert_keeps_the_dtype",),
             kind="dtype-device"),
    Mutation("scale 0 taken for the default", "lesson05", "grouped_attention.py",
             "    group = n_heads // n_kv_heads\n",
             "    group = n_heads // n_kv_heads\n    scale = scale or None\n",
             (H05 + "test_gqa_grading.py::test_custom_scale_and_bfloat16",),
             kind="special-value"),
]
