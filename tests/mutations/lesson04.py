"""Planted bugs in the lesson 04 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below; "extreme" is
a budget past 2**53 B, where float division stops being exact.
"""

from . import Mutation

H04 = "autograder/hidden/lesson04/"
ARITH = H04 + "test_kv_arithmetic_grading.py::"
CACHE = H04 + "test_kv_cache_grading.py::"
COST = H04 + "test_decode_cost_grading.py::"

MUTATIONS = [
    Mutation("query heads counted instead of KV heads", "lesson04", "kv_arithmetic.py",
             "    return 2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * dtype_bytes",
             "    return 2 * cfg.n_layers * cfg.n_heads * cfg.d_head * dtype_bytes",
             (ARITH + "test_published_models_and_errata",
              ARITH + "test_cache_bytes_are_linear_in_batch_and_length")),
    Mutation("K only, no V", "lesson04", "kv_arithmetic.py",
             "    return 2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * dtype_bytes",
             "    return cfg.n_layers * cfg.n_kv_heads * cfg.d_head * dtype_bytes",
             (ARITH + "test_published_models_and_errata",)),
    Mutation("cache bytes ignore the batch", "lesson04", "kv_arithmetic.py",
             "    return batch * seq_len * kv_bytes_per_token(cfg, dtype_bytes)",
             "    return seq_len * kv_bytes_per_token(cfg, dtype_bytes)",
             (ARITH + "test_cache_bytes_are_linear_in_batch_and_length",
              ARITH + "test_formula_equals_the_bytes_of_a_real_cache")),
    Mutation("tokens in a budget rounded up", "lesson04", "kv_arithmetic.py",
             "    return int(budget_bytes // kv_bytes_per_token(cfg, dtype_bytes))",
             "    return -int(-budget_bytes // kv_bytes_per_token(cfg, dtype_bytes))",
             (ARITH + "test_max_tokens_in_budget_at_the_edges",), kind="boundary"),
    Mutation("a negative budget gives a negative count", "lesson04", "kv_arithmetic.py",
             "    if budget_bytes <= 0:\n        return 0\n", "",
             (ARITH + "test_max_tokens_in_budget_at_the_edges",), kind="special-value"),
    Mutation("append overwrites from the start", "lesson04", "kv_cache.py",
             "        self.lengths[layer] = stop\n",
             "        self.lengths[layer] = k.shape[2]\n",
             (CACHE + "test_contents_equal_a_concatenation",)),
    Mutation("get returns the whole buffer", "lesson04", "kv_cache.py",
             "        n = self.lengths[layer]\n", "        n = self.max_seq\n",
             (CACHE + "test_contents_equal_a_concatenation",
              COST + "test_generation_equals_the_reference")),
    Mutation("append reallocates the buffers", "lesson04", "kv_cache.py",
             "        self.k_buffer[layer, :batch, :, start:stop].copy_(k)\n",
             "        self.k_buffer = self.k_buffer.clone()\n"
             "        self.k_buffer[layer, :batch, :, start:stop].copy_(k)\n",
             (CACHE + "test_append_never_reallocates_and_get_never_copies",), kind="cost"),
    Mutation("get returns copies", "lesson04", "kv_cache.py",
             "        return (self.k_buffer[layer, :self.batch, :, :n], self.v_buffer[layer, :self.batch, :, :n])",
             "        return (self.k_buffer[layer, :self.batch, :, :n].clone(),\n"
             "                self.v_buffer[layer, :self.batch, :, :n].clone())",
             (CACHE + "test_append_never_reallocates_and_get_never_copies",), kind="contract"),
    Mutation("decode positions restart at 0", "lesson04", "decode.py",
             "    start = cache.length(0)\n", "    start = 0\n",
             (COST + "test_generation_equals_the_reference", COST + "test_real_model_generation")),
    Mutation("logits for every prompt position", "lesson04", "decode.py",
             "    last = hf_rms_norm(x[:, -1], weights[\"model.norm.weight\"], cfg.rms_eps)\n"
             "    return last @ weights[\"lm_head.weight\"].T",
             "    last = hf_rms_norm(x, weights[\"model.norm.weight\"], cfg.rms_eps)\n"
             "    return (last @ weights[\"lm_head.weight\"].T)[:, -1]",
             (COST + "test_forward_cached_flops_match_the_formula",), kind="cost"),
    Mutation("every step re-runs the whole sequence", "lesson04", "decode.py",
             "            logits = forward_cached(weights, cfg, token, cache)",
             "            cache.reset()\n"
             "            logits = forward_cached(weights, cfg, torch.cat(out, dim=1), cache)",
             (COST + "test_generation_never_recomputes_the_prefix",), kind="cost"),
    # Added in the pass over the classes of learner mistakes (issue 9).
    Mutation("tokens in a budget by float division", "lesson04", "kv_arithmetic.py",
             "    return int(budget_bytes // kv_bytes_per_token(cfg, dtype_bytes))",
             "    return int(budget_bytes / kv_bytes_per_token(cfg, dtype_bytes))",
             (ARITH + "test_max_tokens_is_exact_past_two_to_the_53",), kind="extreme"),
    Mutation("kv_cache_bytes drops dtype_bytes", "lesson04", "kv_arithmetic.py",
             "    return batch * seq_len * kv_bytes_per_token(cfg, dtype_bytes)",
             "    return batch * seq_len * kv_bytes_per_token(cfg)",
             (ARITH + "test_cache_bytes_are_linear_in_batch_and_length",
              ARITH + "test_formula_equals_the_bytes_of_a_real_cache"), kind="unvaried-arg"),
    Mutation("max_tokens_in_budget drops dtype_bytes", "lesson04", "kv_arithmetic.py",
             "    return int(budget_bytes // kv_bytes_per_token(cfg, dtype_bytes))",
             "    return int(budget_bytes // kv_bytes_per_token(cfg))",
             (ARITH + "test_max_tokens_in_budget_at_the_edges",), kind="unvaried-arg"),
    Mutation("get reads layer 0 whatever layer is asked", "lesson04", "kv_cache.py",
             "        return (self.k_buffer[layer, :self.batch, :, :n], self.v_buffer[layer, :self.batch, :, :n])",
             "        return (self.k_buffer[0, :self.batch, :, :n], self.v_buffer[0, :self.batch, :, :n])",
             (CACHE + "test_contents_equal_a_concatenation",), kind="unvaried-arg"),
    Mutation("append advances the length by one token, not T", "lesson04", "kv_cache.py",
             "        self.lengths[layer] = stop\n",
             "        self.lengths[layer] = start + 1\n",
             (CACHE + "test_contents_equal_a_concatenation",), kind="multi-token"),
    Mutation("one argmax over the whole batch", "lesson04", "decode.py",
             "        token = logits.argmax(dim=-1, keepdim=True)  # [B, 1]",
             "        token = (logits.argmax() % logits.shape[-1]).expand(logits.shape[0], 1)",
             (COST + "test_generation_equals_the_reference",), kind="rows-differ"),
    Mutation("the last token picked is also run", "lesson04", "decode.py",
             "        if step + 1 < max_new:\n            logits",
             "        if True:\n            logits",
             (COST + "test_generation_equals_the_reference",
              COST + "test_generation_never_recomputes_the_prefix"), kind="boundary"),
    Mutation("the residual stream upcast to float32", "lesson04", "decode.py",
             "    x = weights[\"model.embed_tokens.weight\"][input_ids]\n",
             "    x = weights[\"model.embed_tokens.weight\"][input_ids].float()\n",
             (COST + "test_bfloat16_model_on_a_bfloat16_cache",), kind="dtype-device"),
    Mutation("a float budget answered with a float", "lesson04", "kv_arithmetic.py",
             "    return int(budget_bytes // kv_bytes_per_token(cfg, dtype_bytes))",
             "    return budget_bytes // kv_bytes_per_token(cfg, dtype_bytes)",
             (ARITH + "test_max_tokens_is_exact_past_two_to_the_53",), kind="contract"),
]
