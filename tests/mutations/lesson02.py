"""Planted bugs in the lesson 02 reference that its hidden graders must catch."""

from . import Mutation

H02 = "autograder/hidden/lesson02/"
SAMP = H02 + "test_sampling_grading.py::"
GEN = H02 + "test_generation_grading.py::"

MUTATIONS = [
    Mutation("top-p drops the token that crosses the threshold", "lesson02", "sampling.py",
             "        keep &= before < top_p\n", "        keep &= mass.cumsum(-1) < top_p\n",
             (SAMP + "test_filtered_probs_equal_brute_force",
              SAMP + "test_nucleus_is_the_smallest_prefix_reaching_top_p")),
    Mutation("top-k keeps one token too many", "lesson02", "sampling.py",
             "        keep[..., top_k:] = False\n", "        keep[..., top_k + 1:] = False\n",
             (SAMP + "test_filtered_probs_equal_brute_force",
              SAMP + "test_draws_follow_the_filtered_distribution",
              SAMP + "test_edge_settings")),
    Mutation("temperature applied after the softmax", "lesson02", "sampling.py",
             "    probs = torch.softmax(logits.float() / temperature, dim=-1)\n",
             "    probs = torch.softmax(logits.float(), dim=-1) / temperature\n"
             "    probs = probs / probs.sum(-1, keepdim=True)\n",
             (SAMP + "test_filtered_probs_equal_brute_force",
              SAMP + "test_draws_follow_the_filtered_distribution")),
    Mutation("min-p as an absolute threshold", "lesson02", "sampling.py",
             "        keep &= mass >= min_p * mass[..., :1]\n", "        keep &= mass >= min_p\n",
             (SAMP + "test_filtered_probs_equal_brute_force",
              SAMP + "test_draws_follow_the_filtered_distribution")),
    Mutation("filtered tokens keep their mass (no renormalisation, no mask)", "lesson02", "sampling.py",
             "    probs = probs * mask\n", "    probs = probs * mask.float().clamp(min=0.01)\n",
             (SAMP + "test_draws_follow_the_filtered_distribution",)),
    Mutation("the global RNG instead of the generator", "lesson02", "sampling.py",
             "    ids = torch.multinomial(flat, 1, generator=generator)\n",
             "    ids = torch.multinomial(flat, 1)\n",
             (SAMP + "test_randomness_comes_only_from_the_generator",)),
    Mutation("temperature 0 still samples", "lesson02", "sampling.py",
             "    if temperature == 0:\n        return logits.argmax(dim=-1)\n",
             "    if temperature == 0:\n        temperature = 1.0\n",
             (SAMP + "test_edge_settings",)),
    Mutation("cache ignored: the whole sequence re-fed", "lesson02", "generation.py",
             "        logits, cache = forward_fn(next_ids[:, None], cache)\n",
             "        logits, cache = forward_fn(torch.cat(out, dim=1), None)\n",
             (GEN + "test_each_decode_step_feeds_exactly_one_token",)),
    Mutation("an extra forward call after the last token", "lesson02", "generation.py",
             "        if step + 1 == max_new_tokens or (eos_id is not None and bool(finished.all())):\n"
             "            break\n        logits, cache = forward_fn(next_ids[:, None], cache)\n",
             "        logits, cache = forward_fn(next_ids[:, None], cache)\n"
             "        if step + 1 == max_new_tokens or (eos_id is not None and bool(finished.all())):\n"
             "            break\n",
             (GEN + "test_each_decode_step_feeds_exactly_one_token",)),
    Mutation("sampling from the first position's logits", "lesson02", "generation.py",
             "        next_ids = sampler(logits[:, -1])", "        next_ids = sampler(logits[:, 0])",
             (GEN + "test_cached_greedy_equals_uncached", GEN + "test_eos_stops_each_row_and_pads_with_eos",
              GEN + "test_greedy_matches_hf_generate_on_the_real_model")),
    Mutation("eos stops the whole batch", "lesson02", "generation.py",
             "(eos_id is not None and bool(finished.all()))",
             "(eos_id is not None and bool(finished.any()))",
             (GEN + "test_eos_stops_each_row_and_pads_with_eos",)),
]
