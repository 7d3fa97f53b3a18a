"""Planted bugs in the lesson 14 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): all but dtype-device are planted below.
"""

from . import Mutation

H14 = "autograder/hidden/lesson14/"
ACC = H14 + "test_acceptance_grading.py::"
LEN = H14 + "test_draft_length_grading.py::"
SPEC = H14 + "test_spec_decode_grading.py::"

NOT_APPLICABLE = {
    "dtype-device": "spec_decode softmaxes every model's logits in float32 itself and the rule "
                    "takes probabilities of any float dtype; a bf16 softmax or bf16 probabilities "
                    "shift the output distribution by far less than any CPU-sized chi-square can "
                    "see, and the tokens come back as Python ints (checked under contract)",
}

MUTATIONS = [
    # ---- the rejection rule
    Mutation("accept with probability p_target[x], not min(1, p_t / p_d)", "lesson14",
             "acceptance.py",
             "ratio = p_target[rows, tokens] / p_draft[rows, tokens]",
             "ratio = p_target[rows, tokens]",
             (ACC + "test_every_emitted_position_follows_the_target",
              ACC + "test_mean_tokens_per_step_matches_the_formula")),
    Mutation("correction drawn from p_target instead of the residual", "lesson14", "acceptance.py",
             "residual = (p_target[n] - p_draft[n]).clamp(min=0)",
             "residual = p_target[n].clone()",
             (ACC + "test_every_emitted_position_follows_the_target",)),
    Mutation("bonus token from row gamma - 1", "lesson14", "acceptance.py",
             "bonus = torch.multinomial(p_target[gamma], 1, generator=generator)",
             "bonus = torch.multinomial(p_target[gamma - 1], 1, generator=generator)",
             (ACC + "test_every_emitted_position_follows_the_target",
              ACC + "test_one_hot_cases_are_deterministic")),
    Mutation("residual pooled over every draft position", "lesson14", "acceptance.py",
             "residual = (p_target[n] - p_draft[n]).clamp(min=0)",
             "residual = (p_target[:gamma] - p_draft).clamp(min=0).sum(dim=0)",
             (ACC + "test_every_emitted_position_follows_the_target",), kind="rows-differ"),
    Mutation("acceptance rate averaged over the rows", "lesson14", "acceptance.py",
             "return torch.minimum(p_draft, p_target).sum(dim=-1)",
             "return torch.minimum(p_draft, p_target).sum(dim=-1).mean().expand(p_draft.shape[:-1])",
             (ACC + "test_acceptance_rate_per_row",), kind="rows-differ"),
    Mutation("residual sampled before knowing a rejection happened", "lesson14", "acceptance.py",
             "    rejected = (u >= ratio).nonzero()\n",
             "    spare = (p_target[:gamma] - p_draft).clamp(min=0)\n"
             "    spare = torch.multinomial(spare / spare.sum(-1, keepdim=True), 1, generator=generator)\n"
             "    rejected = (u >= ratio).nonzero()\n",
             (ACC + "test_a_ratio_of_one_is_always_accepted",), kind="boundary"),
    Mutation("next token returned as a tensor", "lesson14", "acceptance.py",
             "    return n, int(nxt)\n", "    return n, nxt[0]\n",
             (ACC + "test_returns_python_ints_and_leaves_inputs_alone",), kind="contract"),
    Mutation("uniform draws from the global RNG", "lesson14", "acceptance.py",
             "    u = torch.rand(gamma, generator=generator)\n", "    u = torch.rand(gamma)\n",
             (ACC + "test_seeded_generator_is_the_only_randomness",), kind="unvaried-arg"),
    # ---- expected tokens, speedup, best draft length
    Mutation("alpha^gamma: the bonus token forgotten", "lesson14", "draft_length.py",
             "return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)",
             "return (1.0 - alpha ** gamma) / (1.0 - alpha)",
             (LEN + "test_expected_tokens_equals_the_geometric_sum",)),
    Mutation("alpha = 1 through the closed form (0 / 0)", "lesson14", "draft_length.py",
             "    if alpha == 1.0:\n        return float(gamma + 1)\n", "",
             (LEN + "test_alpha_one_and_alpha_near_one",), kind="special-value"),
    Mutation("alpha near 1 snapped to gamma + 1", "lesson14", "draft_length.py",
             "    if alpha == 1.0:\n", "    if alpha > 0.99:\n",
             (LEN + "test_alpha_one_and_alpha_near_one",), kind="extreme"),
    Mutation("gamma + 1 draft runs per step", "lesson14", "draft_length.py",
             "return expected_tokens_per_step(alpha, gamma) / (gamma * cost_ratio + 1.0)",
             "return expected_tokens_per_step(alpha, gamma) / ((gamma + 1) * cost_ratio + 1.0)",
             (LEN + "test_speedup_counts_draft_runs_and_one_target_run",)),
    Mutation("ties go to the longer draft", "lesson14", "draft_length.py",
             "if s > best_speedup:", "if s >= best_speedup:",
             (LEN + "test_ties_go_to_the_shorter_draft",), kind="boundary"),
    Mutation("gamma = 0 never considered", "lesson14", "draft_length.py",
             "best, best_speedup = 0, expected_speedup(alpha, 0, cost_ratio)",
             "best, best_speedup = 1, expected_speedup(alpha, 1, cost_ratio)",
             (LEN + "test_optimal_gamma_on_a_grid",)),
    Mutation("max_gamma ignored", "lesson14", "draft_length.py",
             "for gamma in range(1, max_gamma + 1):", "for gamma in range(1, 17):",
             (LEN + "test_max_gamma_is_honoured",), kind="unvaried-arg"),
    # ---- spec_decode
    Mutation("target rows shifted by one against the drafts", "lesson14", "spec_decode.py",
             "rows = target(torch.tensor(seq + drafted), gamma + 1).float()",
             "rows = target(torch.tensor(seq + drafted[:-1]), gamma + 1).float()",
             (SPEC + "test_greedy_equals_greedy_decoding_of_the_target",),
             kind="multi-token"),
    Mutation("accepted drafts dropped: one token per step", "lesson14", "spec_decode.py",
             "step = drafted[:n] + [nxt]", "step = [nxt]",
             (SPEC + "test_greedy_equals_greedy_decoding_of_the_target",),
             kind="multi-token"),
    Mutation("draft verified against a distribution it did not sample from", "lesson14",
             "spec_decode.py", "q_rows.append(q)", "q_rows.append(torch.softmax(last, dim=-1))",
             (SPEC + "test_sampled_output_follows_the_target[0.6]",)),
    Mutation("temperature ignored for the target", "lesson14", "spec_decode.py",
             "p = torch.softmax(rows / temperature, dim=-1)", "p = torch.softmax(rows, dim=-1)",
             (SPEC + "test_sampled_output_follows_the_target[0.6]",), kind="unvaried-arg"),
    Mutation("softmax without the maximum subtracted", "lesson14", "spec_decode.py",
             "q = torch.softmax(last / temperature, dim=-1)",
             "q = (last / temperature).exp()\n                q = q / q.sum()",
             (SPEC + "test_huge_logits_sample_like_argmax",), kind="extreme"),
    Mutation("last step not cut at max_new_tokens", "lesson14", "spec_decode.py",
             "step = step[:max_new_tokens - len(out)]", "step = step[:max_new_tokens - len(out) + 1]",
             (SPEC + "test_exactly_max_new_tokens[4]", SPEC + "test_exactly_max_new_tokens[6]"),
             kind="boundary"),
    Mutation("eos id 0 ignored (if eos_id:)", "lesson14", "spec_decode.py",
             "        if eos_id is not None and eos_id in step:\n            step = step[",
             "        if eos_id and eos_id in step:\n            step = step[",
             (SPEC + "test_eos_stops_generation_even_mid_step",), kind="special-value"),
    Mutation("tokens after eos kept within a step", "lesson14", "spec_decode.py",
             "step = step[:step.index(eos_id) + 1]", "step = step",
             (SPEC + "test_eos_stops_generation_even_mid_step",), kind="contract"),
    Mutation("an extra target call for the next token", "lesson14", "spec_decode.py",
             "            nxt = best[n]\n",
             "            nxt = int(target(torch.tensor(seq + drafted[:n]), 1)[-1].argmax())\n",
             (SPEC + "test_one_target_call_per_step",), kind="cost"),
]
