"""Planted bugs in the lesson 18 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): all planted below but one, listed in
NOT_APPLICABLE with the reason.
"""

from . import Mutation

H18 = "autograder/hidden/lesson18/"
SCHED = H18 + "test_scheduler_grading.py::"
SIM = H18 + "test_simulation.py::"
SWAP = H18 + "test_swap_grading.py::"
MODEL = H18 + "test_real_model.py::"
INVARIANTS = SIM + "test_invariants_hold_on_every_step"

MUTATIONS = [
    # victims and preemption
    Mutation("LIFO preempts the oldest running sequence", "lesson18", "scheduler.py",
             "        return max(self.running, key=lambda s: s.admitted_order)\n",
             "        return min(self.running, key=lambda s: s.admitted_order)\n",
             (SCHED + "test_lifo_victim_is_the_newest_and_frees_all_its_blocks",), kind="logic"),
    Mutation("priority victim ignores aging", "lesson18", "scheduler.py",
             "key=lambda s: (self.effective_priority(s), s.admitted_order))",
             "key=lambda s: (s.request.priority, s.admitted_order))",
             (SCHED + "test_priority_victim_ages_and_breaks_ties_by_recency",), kind="logic"),
    Mutation("priority ties broken towards the oldest admission", "lesson18", "scheduler.py",
             "key=lambda s: (self.effective_priority(s), s.admitted_order))",
             "key=lambda s: (self.effective_priority(s), -s.admitted_order))",
             (SCHED + "test_priority_victim_ages_and_breaks_ties_by_recency",), kind="boundary"),
    Mutation("a preempted request loses its generated tokens", "lesson18", "scheduler.py",
             "        seq.preemptions += 1\n",
             "        seq.preemptions += 1\n        seq.output = []\n",
             (SCHED + "test_lifo_victim_is_the_newest_and_frees_all_its_blocks", INVARIANTS,
              MODEL + "test_preempted_and_recomputed_request_produces_the_same_tokens"),
             kind="logic"),
    Mutation("recompute keeps num_computed after dropping the KV", "lesson18", "scheduler.py",
             "        else:\n            seq.num_computed = 0\n",
             "        else:\n            pass\n",
             (SCHED + "test_lifo_victim_is_the_newest_and_frees_all_its_blocks", INVARIANTS),
             kind="logic"),
    Mutation("the victim's blocks are not freed (leak)", "lesson18", "scheduler.py",
             "        self.free_blocks += seq.blocks\n        seq.blocks = 0\n        seq.preemptions",
             "        seq.blocks = 0\n        seq.preemptions",
             (SCHED + "test_lifo_victim_is_the_newest_and_frees_all_its_blocks", INVARIANTS),
             kind="logic"),
    Mutation("a victim already scheduled stays in the plan", "lesson18", "scheduler.py",
             "        plan.tokens.pop(seq.id, None)\n", "",
             (SCHED + "test_victim_already_scheduled_gives_back_its_tokens",), kind="contract"),
    Mutation("swap mode recomputes too (pays for the copy and the prefill)", "lesson18",
             "scheduler.py",
             "            seq.swapped = True\n",
             "            seq.swapped = True\n            seq.num_computed = 0\n",
             (SCHED + "test_swap_keeps_the_kv_and_copies_it_back",), kind="cost"),
    Mutation("mode ignored: swap behaves as recompute", "lesson18", "scheduler.py",
             '        if self.mode == "swap":\n            plan.swap_out',
             '        if False:\n            plan.swap_out',
             (SCHED + "test_swap_keeps_the_kv_and_copies_it_back",), kind="unvaried-arg"),
    # budgets
    Mutation("blocks compared with >= (preempts on an exact fit)", "lesson18", "scheduler.py",
             "            while need > self.free_blocks and seq in self.running:",
             "            while need >= self.free_blocks and seq in self.running:",
             (SCHED + "test_exact_fit_does_not_preempt",), kind="boundary"),
    Mutation("admission stops while one token of budget is left", "lesson18", "scheduler.py",
             "        while not plan.preempted and self.waiting and budget > 0 \\\n",
             "        while not plan.preempted and self.waiting and budget > 1 \\\n",
             (SCHED + "test_token_budget_is_used_exactly_and_never_exceeded",), kind="boundary"),
    Mutation("every running sequence is fed one token (a chunked prefill stalls)", "lesson18",
             "scheduler.py",
             "            n = min(len(seq.tokens) - seq.num_computed, budget)\n"
             "            need = blocks_for(seq.num_computed + n, self.block_size) - seq.blocks",
             "            n = 1\n"
             "            need = blocks_for(seq.num_computed + n, self.block_size) - seq.blocks",
             (SCHED + "test_token_budget_is_used_exactly_and_never_exceeded",), kind="rows-differ"),
    Mutation("a prompt admitted whole, over the token budget", "lesson18", "scheduler.py",
             "            n = min(len(seq.tokens) - seq.num_computed, budget)\n"
             "            need = blocks_for(seq.num_computed + n, self.block_size)\n",
             "            n = len(seq.tokens) - seq.num_computed\n"
             "            need = blocks_for(seq.num_computed + n, self.block_size)\n",
             (SCHED + "test_token_budget_is_used_exactly_and_never_exceeded", INVARIANTS),
             kind="multi-token"),
    # admission control
    Mutation("no admission control: a request too big for the cache waits forever", "lesson18",
             "scheduler.py",
             "        if need > self.num_blocks:\n            raise ValueError",
             "        if False:\n            raise ValueError",
             (SCHED + "test_admission_control_boundary_and_message",), kind="contract"),
    Mutation("admission control counts one slot too many", "lesson18", "scheduler.py",
             "        need = blocks_for(len(request.prompt) + request.max_new_tokens - 1, self.block_size)",
             "        need = blocks_for(len(request.prompt) + request.max_new_tokens, self.block_size)",
             (SCHED + "test_admission_control_boundary_and_message",), kind="boundary"),
    # swap or recompute
    Mutation("swap counted one way only", "lesson18", "swap.py",
             "    return 2 * ctx_len * per_token / link_bytes_per_s_per_direction",
             "    return ctx_len * per_token / link_bytes_per_s_per_direction",
             (SWAP + "test_costs_match_the_formulas_on_the_fixtures",), kind="logic"),
    Mutation("KV dtype ignored in the swap", "lesson18", "swap.py",
             "cfg.d_head * dtype_bytes\n", "cfg.d_head * 2\n",
             (SWAP + "test_kv_dtype_and_link_are_used",), kind="dtype-device"),
    Mutation("causal attention counted as a full square", "lesson18", "swap.py",
             "ctx_len * (ctx_len + 1)\n", "ctx_len * ctx_len * 2\n",
             (SWAP + "test_costs_match_the_formulas_on_the_fixtures",), kind="logic"),
    Mutation("crossover rounded down", "lesson18", "swap.py",
             "    crossover = max(1, math.ceil(", "    crossover = max(1, math.floor(",
             (SWAP + "test_crossover_is_the_first_length_where_swap_wins",), kind="boundary"),
    Mutation("crossover negative when swap always wins", "lesson18", "swap.py",
             "    crossover = max(1, math.ceil((per_token_swap_flops - 2 * layer_params(cfg)) / a - 1))",
             "    crossover = math.ceil((per_token_swap_flops - 2 * layer_params(cfg)) / a - 1)",
             (SWAP + "test_crossover_is_the_first_length_where_swap_wins",), kind="extreme"),
    Mutation("choice inverted on the comparison", "lesson18", "swap.py",
             '"swap" if swap <= recompute else "recompute"',
             '"recompute" if swap <= recompute else "swap"',
             (SWAP + "test_crossover_is_the_first_length_where_swap_wins",), kind="logic"),
]

NOT_APPLICABLE = {
    "special-value": "length 1 prompts, max_new_tokens=1, a one-block cache and request id 0 "
                     "are graded (test_single_token_requests_and_id_zero, the admission "
                     "boundary), but the scheduler's arithmetic (a ceiling of slots over the "
                     "block size, a minimum against the budget) has no branch that treats them "
                     "apart: every bug we could plant there is one of the boundary bugs above. "
                     "A zero-token plan entry cannot arise either: a running sequence is only "
                     "ever behind sequences that were admitted before it, so the budget is "
                     "spent before it only while one of them is mid-prefill, and nothing is "
                     "admitted behind a prefill that used up the budget.",
}
