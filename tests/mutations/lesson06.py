"""Planted bugs in the lesson 06 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): planted below, except the ones in
NOT_APPLICABLE, each with the reason it has nothing to catch in this lesson.
"""

from . import Mutation

H06 = "autograder/hidden/lesson06/"
CAP = H06 + "test_capacity_grading.py::"
PLAN = H06 + "test_planner_grading.py::"

NOT_APPLICABLE = {
    "extreme": "no exp, softmax or scale: the lesson is integer byte arithmetic, and real "
               "capacities stay far below 2**53 B, where float and int division agree (the "
               "memory model's reserve is itself a float product, so past it there is no exact "
               "answer to grade)",
    "rows-differ": "there is no batch of rows: every sequence of a plan has the same context "
                   "length, so no per-row quantity can be computed over the whole batch",
    "multi-token": "no attention, cache contents or token steps: the plan counts bytes and "
                   "tokens, it never runs one",
    "dtype-device": "no tensors: formats enter only as bytes per number, and a format argument "
                    "that is ignored is planted as unvaried-arg",
    "cost": "a handful of integer operations per plan and at most max_gpus plans per "
            "min_gpus: there is no tensor work whose cost a grader could see",
}

MUTATIONS = [
    Mutation("K/V projections sized like Q (MHA count)", "lesson06", "capacity.py",
             "attention = d * q + 2 * d * kv + q * d", "attention = d * q + 2 * d * q + q * d",
             (CAP + "test_num_params_equals_sum_of_weight_shapes",
              CAP + "test_num_params_equals_hf_transformers")),
    Mutation("a tied embedding counted twice", "lesson06", "capacity.py",
             "(1 if cfg.tie_embeddings else 2)", "2",
             (CAP + "test_num_params_equals_sum_of_weight_shapes",
              CAP + "test_num_params_equals_hf_transformers")),
    Mutation("RMSNorm weights forgotten", "lesson06", "capacity.py",
             "per_layer = attention + mlp + 2 * d", "per_layer = attention + mlp",
             (CAP + "test_num_params_equals_sum_of_weight_shapes",
              CAP + "test_num_params_equals_hf_transformers")),
    Mutation("fractional weight bytes truncated", "lesson06", "capacity.py",
             "return math.ceil(num_params(cfg) * per)", "return int(num_params(cfg) * per)",
             (CAP + "test_bytes_round_up_and_follow_the_formula",), kind="boundary"),
    Mutation("KV bytes without the factor 2 for K and V", "lesson06", "capacity.py",
             "math.ceil(2 * cfg.n_layers * cfg.n_kv_heads", "math.ceil(cfg.n_layers * cfg.n_kv_heads",
             (CAP + "test_bytes_round_up_and_follow_the_formula",
              PLAN + "test_plan_matches_the_memory_model")),
    Mutation("KV bytes with n_heads", "lesson06", "capacity.py",
             "2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * per",
             "2 * cfg.n_layers * cfg.n_heads * cfg.d_head * per",
             (CAP + "test_bytes_round_up_and_follow_the_formula",)),
    Mutation("weights replicated on every GPU", "lesson06", "planner.py",
             "budget = max(0, usable - weights)", "budget = max(0, usable - n_gpus * weights)",
             (PLAN + "test_plan_matches_the_memory_model",
              PLAN + "test_capacity_properties", PLAN + "test_min_gpus_is_minimal")),
    Mutation("reserve ignored", "lesson06", "planner.py",
             "per_gpu = int(gpu.memory_bytes * (1 - reserve_fraction)) - overhead_bytes",
             "per_gpu = gpu.memory_bytes - overhead_bytes",
             (PLAN + "test_plan_matches_the_memory_model", PLAN + "test_capacity_properties")),
    Mutation("overhead charged once, not per GPU", "lesson06", "planner.py",
             "usable = n_gpus * per_gpu", "usable = n_gpus * (per_gpu + overhead_bytes) - overhead_bytes",
             (PLAN + "test_plan_matches_the_memory_model", PLAN + "test_capacity_properties")),
    Mutation("negative KV budget when the weights do not fit", "lesson06", "planner.py",
             "budget = max(0, usable - weights)", "budget = usable - weights",
             (PLAN + "test_plan_matches_the_memory_model",), kind="special-value"),
    Mutation("batch for max_position, not the context asked for", "lesson06", "planner.py",
             "max_batch_at_context=tokens // context_len)", "max_batch_at_context=tokens // cfg.max_position)",
             (PLAN + "test_plan_matches_the_memory_model",), kind="unvaried-arg"),
    Mutation("min_gpus wants more than the target", "lesson06", "planner.py",
             "if p.max_batch_at_context >= target_batch:", "if p.max_batch_at_context > target_batch:",
             (PLAN + "test_min_gpus_is_minimal",), kind="boundary"),
    Mutation("min_gpus ignores choices", "lesson06", "planner.py",
             "counts = sorted(set(range(1, max_gpus + 1) if choices is None else choices))",
             "counts = list(range(1, max_gpus + 1))",
             (PLAN + "test_min_gpus_is_minimal",), kind="unvaried-arg"),
    Mutation("min_gpus drops the plan options", "lesson06", "planner.py",
             "p = plan(cfg, gpu, n, context_len=context_len, **plan_kwargs)",
             "p = plan(cfg, gpu, n, context_len=context_len)",
             (PLAN + "test_min_gpus_is_minimal",), kind="unvaried-arg"),
    Mutation("GPU: KV bytes without the factor 2 (the plan over-commits)", "lesson06",
             "capacity.py", "math.ceil(2 * cfg.n_layers * cfg.n_kv_heads",
             "math.ceil(cfg.n_layers * cfg.n_kv_heads",
             (H06 + "test_gpu_capacity.py::test_planned_kv_tokens_really_allocate",), gpu=True),
    Mutation("GPU: KV bytes with n_heads (the plan strands memory)", "lesson06", "capacity.py",
             "2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * per",
             "2 * cfg.n_layers * cfg.n_heads * cfg.d_head * per",
             (H06 + "test_gpu_capacity.py::test_planned_kv_tokens_really_allocate",), gpu=True),
    # Added in the pass over the classes of learner mistakes (issue 9).
    Mutation("usable bytes rounded to nearest, not floored", "lesson06", "planner.py",
             "per_gpu = int(gpu.memory_bytes * (1 - reserve_fraction)) - overhead_bytes",
             "per_gpu = round(gpu.memory_bytes * (1 - reserve_fraction)) - overhead_bytes",
             (PLAN + "test_usable_memory_rounds_down_and_none_when_nothing_fits",),
             kind="boundary"),
    Mutation("min_gpus returns the largest count when none is enough", "lesson06", "planner.py",
             "            return n\n    return None\n",
             "            return n\n    return counts[-1]\n",
             (PLAN + "test_usable_memory_rounds_down_and_none_when_nothing_fits",
              PLAN + "test_min_gpus_is_minimal"), kind="contract"),
    Mutation("plan ignores kv_bytes_per_elem", "lesson06", "planner.py",
             "    per_token = kv_bytes_per_token(cfg, kv_bytes_per_elem)\n",
             "    per_token = kv_bytes_per_token(cfg)\n",
             (PLAN + "test_plan_matches_the_memory_model", PLAN + "test_min_gpus_is_minimal"),
             kind="unvaried-arg"),
    Mutation("plan ignores weight_bytes_per_param", "lesson06", "planner.py",
             "    weights = weights_bytes(cfg, weight_bytes_per_param)\n",
             "    weights = weights_bytes(cfg)\n",
             (PLAN + "test_plan_matches_the_memory_model",), kind="unvaried-arg"),
]
