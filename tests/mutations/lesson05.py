"""Planted bugs in the lesson 05 reference that its hidden graders must catch."""

from . import Mutation

H05 = "autograder/hidden/lesson05/"

MUTATIONS = [
    Mutation("repeat_kv tiles heads instead of interleaving", "lesson05", "grouped_attention.py",
             "x = x[:, :, None, :, :].expand(batch, n_kv_heads, n_rep, tokens, d_head)",
             "x = x[:, None, :, :, :].expand(batch, n_rep, n_kv_heads, tokens, d_head)",
             (H05 + "test_gqa_grading.py::test_repeat_kv_equals_repeat_interleave",)),
    Mutation("query head h reads KV head h % n_kv", "lesson05", "grouped_attention.py",
             "queries = q.reshape(batch, n_kv_heads, group * T, d_head)",
             "queries = q.reshape(batch, group, n_kv_heads, T, d_head).transpose(1, 2)"
             ".reshape(batch, n_kv_heads, group * T, d_head)",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",
              H05 + "test_real_model.py::test_smollm2_layer0_attention")),
    Mutation("top-left causal mask (is_causal with T < S)", "lesson05", "grouped_attention.py",
             "dtype=torch.bool, device=q.device).tril(diagonal=S - T)",
             "dtype=torch.bool, device=q.device).tril(diagonal=0)",
             (H05 + "test_gqa_grading.py::test_gqa_equals_expanded_sdpa",)),
    Mutation("scale ignored", "lesson05", "grouped_attention.py",
             "out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)",
             "out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask)",
             (H05 + "test_gqa_grading.py::test_custom_scale_and_bfloat16",)),
    Mutation("float32 output for bf16 inputs", "lesson05", "grouped_attention.py",
             "    return out.reshape(batch, n_heads, T, d_head)\n",
             "    return out.float().reshape(batch, n_heads, T, d_head)\n",
             (H05 + "test_gqa_grading.py::test_custom_scale_and_bfloat16",)),
    Mutation("K/V repeated before attention", "lesson05", "grouped_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n"
             "    return out.reshape(batch, n_heads, T, d_head)\n",
             "    mask = None if mask is None else visible\n"
             "    return F.scaled_dot_product_attention(q, repeat_kv(k, group), repeat_kv(v, group),"
             " attn_mask=mask, scale=scale)\n",
             (H05 + "test_gqa_grading.py::test_never_allocates_repeated_kv",)),
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
             (H05 + "test_conversion_grading.py::test_kv_reduction_factor_matches_kv_bytes",)),
    Mutation("GPU: K/V repeated before attention", "lesson05", "grouped_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n"
             "    return out.reshape(batch, n_heads, T, d_head)\n",
             "    mask = None if mask is None else visible\n"
             "    return F.scaled_dot_product_attention(q, repeat_kv(k, group), repeat_kv(v, group),"
             " attn_mask=mask, scale=scale)\n",
             (H05 + "test_gpu_gqa.py::test_gqa_decode_near_copy_bandwidth",), gpu=True),
]
