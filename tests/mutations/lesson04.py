"""Planted bugs in the lesson 04 reference that its hidden graders must catch."""

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
             (ARITH + "test_max_tokens_in_budget_at_the_edges",)),
    Mutation("a negative budget gives a negative count", "lesson04", "kv_arithmetic.py",
             "    if budget_bytes <= 0:\n        return 0\n", "",
             (ARITH + "test_max_tokens_in_budget_at_the_edges",)),
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
             (CACHE + "test_append_never_reallocates_and_get_never_copies",)),
    Mutation("get returns copies", "lesson04", "kv_cache.py",
             "        return (self.k_buffer[layer, :self.batch, :, :n], self.v_buffer[layer, :self.batch, :, :n])",
             "        return (self.k_buffer[layer, :self.batch, :, :n].clone(),\n"
             "                self.v_buffer[layer, :self.batch, :, :n].clone())",
             (CACHE + "test_append_never_reallocates_and_get_never_copies",)),
    Mutation("decode positions restart at 0", "lesson04", "decode.py",
             "    start = cache.length(0)\n", "    start = 0\n",
             (COST + "test_generation_equals_the_reference", COST + "test_real_model_generation")),
    Mutation("logits for every prompt position", "lesson04", "decode.py",
             "    last = hf_rms_norm(x[:, -1], weights[\"model.norm.weight\"], cfg.rms_eps)\n"
             "    return last @ weights[\"lm_head.weight\"].T",
             "    last = hf_rms_norm(x, weights[\"model.norm.weight\"], cfg.rms_eps)\n"
             "    return (last @ weights[\"lm_head.weight\"].T)[:, -1]",
             (COST + "test_forward_cached_flops_match_the_formula",)),
    Mutation("every step re-runs the whole sequence", "lesson04", "decode.py",
             "            logits = forward_cached(weights, cfg, token, cache)",
             "            cache.reset()\n"
             "            logits = forward_cached(weights, cfg, torch.cat(out, dim=1), cache)",
             (COST + "test_generation_never_recomputes_the_prefix",)),
]
