"""Planted bugs in the lesson 03 reference that its hidden graders must catch."""

from . import Mutation

H03 = "autograder/hidden/lesson03/"
PHASES = H03 + "test_phases_grading.py::"
TIME = H03 + "test_time_model_grading.py::"
GPU_DECODE = H03 + "test_gpu_decode.py::test_batch1_decode_is_near_weight_bytes_over_bandwidth"

MUTATIONS = [
    Mutation("decode tokens rotated from position 0", "lesson03", "phases.py",
             "    start = cache_length(cache)\n", "    start = 0\n",
             (PHASES + "test_prefill_then_decode_equals_full_forward",
              PHASES + "test_real_model_prefill_and_decode")),
    Mutation("the cache stops growing after prefill", "lesson03", "phases.py",
             "        new_cache.append((k, v))\n",
             "        new_cache.append((k, v) if not cache else cache[i])\n",
             (PHASES + "test_prefill_then_decode_equals_full_forward",)),
    Mutation("decode writes into the cache it was given", "lesson03", "phases.py",
             "        new_cache.append((k, v))\n",
             "        new_cache.append((k, v))\n        if cache:\n            cache[i] = (k, v)\n",
             (PHASES + "test_decode_leaves_the_given_cache_alone",)),
    Mutation("prefill computes logits for every position", "lesson03", "phases.py",
             "    return hidden[:, -1] @ weights[\"lm_head.weight\"].T, cache\n"
             "    ### END SOLUTION\n\n\ndef decode_step",
             "    return (hidden @ weights[\"lm_head.weight\"].T)[:, -1], cache\n"
             "    ### END SOLUTION\n\n\ndef decode_step",
             (PHASES + "test_prefill_projects_only_the_last_position",)),
    Mutation("compute and memory times added", "lesson03", "time_model.py",
             "    return max(2 * n_params * batch / peak_flops, nbytes / bandwidth)",
             "    return 2 * n_params * batch / peak_flops + nbytes / bandwidth",
             (TIME + "test_worked_examples", TIME + "test_roofline_properties")),
    Mutation("prefill is memory-bound only", "lesson03", "time_model.py",
             "    return max(2 * n_params * n_tokens / peak_flops, n_params * bytes_per_param / bandwidth)",
             "    return n_params * bytes_per_param / bandwidth",
             (TIME + "test_worked_examples", TIME + "test_roofline_properties")),
    Mutation("decode FLOPs ignore the batch", "lesson03", "time_model.py",
             "    return max(2 * n_params * batch / peak_flops, nbytes / bandwidth)",
             "    return max(2 * n_params / peak_flops, nbytes / bandwidth)",
             (TIME + "test_roofline_properties", TIME + "test_worked_examples")),
    Mutation("weights read once per sequence", "lesson03", "time_model.py",
             "    nbytes = n_params * bytes_per_param + kv_tokens",
             "    nbytes = batch * n_params * bytes_per_param + kv_tokens",
             (TIME + "test_memory_bound_decode_grows_with_batch_only_through_kv",)),
    Mutation("one decode step per output token", "lesson03", "time_model.py",
             "                 for s in range(1, n_out))",
             "                 for s in range(n_out))",
             (TIME + "test_phase_time_model_against_a_step_loop",)),
    Mutation("KV read for one sequence only", "lesson03", "time_model.py",
             "    decode = sum(decode_step_time_s(n_params, batch, batch * (n_in + s),",
             "    decode = sum(decode_step_time_s(n_params, batch, (n_in + s),",
             (TIME + "test_phase_time_model_against_a_step_loop",)),
    Mutation("GPU: weights upcast to float32 every decode step", "lesson03", "phases.py",
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n",
             "    weights = {name: t.float() for name, t in weights.items()}\n"
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n",
             (GPU_DECODE,), gpu=True, kind="cost"),
]
