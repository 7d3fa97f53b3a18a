"""Planted bugs in the lesson pieces that the capstone's graders must catch: the engine runs
them together (tests/test_graders_catch_bugs.py copies every lesson the engine needs and plants
one bug in one file, named ``lessonNN/module.py``).

Some of these a lesson's own graders catch too; here they must show up as what a serving
engine does with them: wrong tokens, blocks that never come back, a plan the engine refuses,
or more engine steps. Classes (tests/mutations/__init__.py BUG_CLASSES): all planted below but
two, listed in NOT_APPLICABLE with the reason. The real-model grader
(test_engine_real_model.py) names the same bugs as the fixed trace on the tiny model; it is
left out of the catchers here because loading the model would triple this file's time.
"""

from . import Mutation

T = "autograder/hidden/capstone/test_engine_trace.py::"
FINISH = T + "test_fixed_trace_finishes_every_request_with_the_oracles_tokens"
FREE = T + "test_fixed_trace_frees_every_block_and_writes_a_valid_trace"
STEPS = T + "test_throughput_in_engine_steps_is_a_share_of_the_reference"
ABORT = T + "test_abort_frees_blocks_at_once"

MUTATIONS = [
    # lesson 18: the scheduler
    Mutation("preemption does not give the victim's blocks back", "capstone",
             "lesson18/scheduler.py",
             "        self.free_blocks += seq.blocks\n        seq.blocks = 0\n"
             "        seq.preemptions += 1\n",
             "        seq.blocks = 0\n        seq.preemptions += 1\n",
             (FREE,), kind="contract"),
    Mutation("recompute keeps num_computed after its KV is dropped", "capstone",
             "lesson18/scheduler.py",
             "        else:\n            seq.num_computed = 0\n",
             "        else:\n            pass\n",
             (FINISH,), kind="logic"),
    Mutation("a running sequence's chunk feeds one token more than it has left", "capstone",
             "lesson18/scheduler.py",
             "            n = min(len(seq.tokens) - seq.num_computed, budget)\n"
             "            need = blocks_for(seq.num_computed + n, self.block_size) - seq.blocks\n",
             "            n = min(len(seq.tokens) - seq.num_computed + 1, budget)\n"
             "            need = blocks_for(seq.num_computed + n, self.block_size) - seq.blocks\n",
             (FINISH, STEPS), kind="boundary"),
    Mutation("admission ignores max_running", "capstone", "lesson18/scheduler.py",
             "        while not plan.preempted and self.waiting and budget > 0 \\\n"
             "                and len(self.running) < self.max_running:\n",
             "        while not plan.preempted and self.waiting and budget > 0:\n",
             (ABORT,), kind="unvaried-arg"),
    # lesson 13: the prefix cache
    Mutation("the prefix cache never hits", "capstone", "lesson13/radix_cache.py",
             "        return PrefixMatch(matched, tuple(blocks))\n",
             "        return PrefixMatch(0, ())\n",
             (FINISH, STEPS), kind="cost"),
    Mutation("a full hit on whole blocks computes nothing (no logits for the first token)",
             "capstone", "lesson13/radix_cache.py",
             "    reuse = min(num_matched, (num_prompt_tokens - 1) // block_size * block_size)\n",
             "    reuse = min(num_matched, num_prompt_tokens // block_size * block_size)\n",
             (FINISH,), kind="boundary"),
    Mutation("a match that ends inside an edge counts the whole edge", "capstone",
             "lesson13/radix_cache.py",
             "            path.append(child)\n            pos += k * self.block_size\n",
             "            path.append(child)\n            pos += len(child.blocks) * self.block_size\n",
             (FINISH,), kind="boundary"),
    Mutation("release leaves the reference count up (cached blocks never evictable)",
             "capstone", "lesson13/radix_cache.py",
             "        for node in path:\n            node.ref -= 1\n",
             "        for node in path:\n            node.ref -= 0\n",
             (FREE,), kind="contract"),
    # lesson 12: blocks, the KV cache and paged attention
    Mutation("allocate hands out blocks without taking them off the free list", "capstone",
             "lesson12/allocator.py",
             "        blocks = [self._free.popleft() for _ in range(n)]\n",
             "        blocks = [self._free[i] for i in range(n)]\n",
             (FINISH,), kind="contract"),
    Mutation("write_kv stores only the newest token (a prefill chunk loses the rest)",
             "capstone", "lesson12/paged_attention.py",
             "    k_cache.view(flat, *k_cache.shape[2:])[slots.long()] = k.to(k_cache.dtype)\n"
             "    v_cache.view(flat, *v_cache.shape[2:])[slots.long()] = v.to(v_cache.dtype)\n",
             "    k_cache.view(flat, *k_cache.shape[2:])[slots.long()[-1:]] = k[-1:].to(k_cache.dtype)\n"
             "    v_cache.view(flat, *v_cache.shape[2:])[slots.long()[-1:]] = v[-1:].to(v_cache.dtype)\n",
             (FINISH,), kind="multi-token"),
    Mutation("write_kv refuses slot 0 (block 0, offset 0)", "capstone",
             "lesson12/paged_attention.py",
             "    bad = (slots < 0) | (slots >= flat)\n",
             "    bad = (slots <= 0) | (slots >= flat)\n",
             (FINISH,), kind="special-value"),
    Mutation("paged decode attends to one slot past the context", "capstone",
             "lesson12/paged_attention.py",
             "    mask = (positions[None, :] < context_lens.to(q.device)[:, None])",
             "    mask = (positions[None, :] <= context_lens.to(q.device)[:, None])",
             (FINISH,), kind="boundary"),
    Mutation("paged decode masks every row to the longest context", "capstone",
             "lesson12/paged_attention.py",
             "    mask = (positions[None, :] < context_lens.to(q.device)[:, None])",
             "    mask = (positions[None, :] < context_lens.to(q.device).max()).expand(batch, tokens)",
             (FINISH,), kind="rows-differ"),
    # lesson 02: the sampler
    Mutation("greedy takes the argmax over the whole batch, not per row", "capstone",
             "lesson02/sampling.py",
             "    if temperature == 0:\n        return logits.argmax(dim=-1)\n",
             "    if temperature == 0:\n        return logits.flatten().argmax().expand(logits.shape[:-1]) % logits.shape[-1]\n",
             (FINISH,), kind="rows-differ"),
]

NOT_APPLICABLE = {
    "extreme": "the engine decodes greedily in every grader, on float32 logits of a real and a "
               "random model; numerically extreme inputs (logits in the hundreds, temperatures "
               "near zero, long contexts) are graded where they are chosen on purpose, in "
               "lessons 02 and 12",
    "dtype-device": "the CPU graders run float32 on the host, so a piece that returns another "
                    "dtype or device cannot show there; the bf16 CUDA run is the GPU grader, "
                    "which lessons 02 and 12's GPU and dtype graders already cover piece by "
                    "piece",
}
