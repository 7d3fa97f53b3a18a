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
             (PHASES + "test_decode_leaves_the_given_cache_alone",), kind="contract"),
    Mutation("prefill computes logits for every position", "lesson03", "phases.py",
             "    return hidden[:, -1] @ weights[\"lm_head.weight\"].T, cache\n"
             "    ### END SOLUTION\n\n\ndef decode_step",
             "    return (hidden @ weights[\"lm_head.weight\"].T)[:, -1], cache\n"
             "    ### END SOLUTION\n\n\ndef decode_step",
             (PHASES + "test_prefill_projects_only_the_last_position",), kind="cost"),
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
             (TIME + "test_phase_time_model_against_a_step_loop",), kind="boundary"),
    Mutation("KV read for one sequence only", "lesson03", "time_model.py",
             "    decode = sum(decode_step_time_s(n_params, batch, batch * (n_in + s),",
             "    decode = sum(decode_step_time_s(n_params, batch, (n_in + s),",
             (TIME + "test_phase_time_model_against_a_step_loop",)),
    # Added for issue 9: one planted bug per class of learner mistake.
    Mutation("new K/V placed before the cached ones", "lesson03", "phases.py",
             "            k = torch.cat([cache[i][0], k], dim=2)\n"
             "            v = torch.cat([cache[i][1], v], dim=2)\n",
             "            k = torch.cat([k, cache[i][0]], dim=2)\n"
             "            v = torch.cat([v, cache[i][1]], dim=2)\n",
             (PHASES + "test_a_chunk_of_new_tokens_and_the_cache_contents",), kind="multi-token"),
    Mutation("decode logits squeezed: a batch of one loses its batch axis", "lesson03", "phases.py",
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n"
             "    return hidden[:, -1] @",
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n"
             "    return hidden.squeeze() @",
             (PHASES + "test_a_chunk_of_new_tokens_and_the_cache_contents",), kind="special-value"),
    Mutation("decode feeds the batch's tokens as one sequence", "lesson03", "phases.py",
             "run_layers(weights, cfg, token[:, None], cache)",
             "run_layers(weights, cfg, token[None, :], cache)",
             (PHASES + "test_a_chunk_of_new_tokens_and_the_cache_contents",
              PHASES + "test_decode_leaves_the_given_cache_alone"), kind="rows-differ"),
    Mutation("final RMSNorm with a hard-coded eps", "lesson03", "phases.py",
             "    return hf_rms_norm(x, weights[\"model.norm.weight\"], cfg.rms_eps), new_cache\n",
             "    return hf_rms_norm(x, weights[\"model.norm.weight\"], 1e-5), new_cache\n",
             (PHASES + "test_a_chunk_of_new_tokens_and_the_cache_contents",), kind="unvaried-arg"),
    Mutation("positions built on the CPU", "lesson03", "phases.py",
             "    positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)\n",
             "    positions = torch.arange(start, start + input_ids.shape[1])\n",
             (PHASES + "test_new_tensors_are_made_on_the_inputs_device",), kind="dtype-device"),
    Mutation("a decode step reads the cache before its own token is in it", "lesson03",
             "time_model.py",
             "    decode = sum(decode_step_time_s(n_params, batch, batch * (n_in + s),",
             "    decode = sum(decode_step_time_s(n_params, batch, batch * (n_in + s - 1),",
             (TIME + "test_phase_time_model_against_a_step_loop",), kind="boundary"),
    Mutation("GPU: weights upcast to float32 every decode step", "lesson03", "phases.py",
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n",
             "    weights = {name: t.float() for name, t in weights.items()}\n"
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n",
             (GPU_DECODE,), gpu=True, kind="cost"),
    Mutation("GPU: decode step checks its tokens on the host (.item() every step)", "lesson03",
             "phases.py",
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n"
             "    return hidden[:, -1] @",
             "    if int(token.min().item()) < 0:\n"
             "        raise ValueError(\"token ids must be >= 0\")\n"
             "    hidden, cache = run_layers(weights, cfg, token[:, None], cache)\n"
             "    return hidden[:, -1] @",
             (GPU_DECODE,), gpu=True, kind="contract"),
]

NOT_APPLICABLE = {
    "extreme": "the learner's code in lesson 03 has no exp, softmax or scale of its own: "
               "attention's softmax is the given course.cached_attention.attend, and the time "
               "model is a max of two ratios of positive floats (hypothesis already spans "
               "1e6..1e11 parameters and 1e9..1e16 FLOP/s)",
}
