"""Planted bugs in the lesson 12 reference that its hidden graders must catch."""

from . import Mutation

H12 = "autograder/hidden/lesson12/"

MUTATIONS = [
    Mutation("free ignores reference counts", "lesson12", "allocator.py",
             "            self._ref[block] -= 1\n", "            self._ref[block] = 0\n",
             (H12 + "test_allocator_stateful.py::TestAllocatorMachine",), kind="logic"),
    Mutation("allocate is not all-or-nothing", "lesson12", "allocator.py",
             "        if n > len(self._free):\n            raise OutOfBlocks",
             "        if n > len(self._free):\n            self._free.popleft()\n"
             "            raise OutOfBlocks",
             (H12 + "test_allocator_stateful.py::TestAllocatorMachine",), kind="contract"),
    Mutation("copy-on-write writes a shared block in place", "lesson12", "allocator.py",
             "        if self._ref[block] == 1:\n            return block, False",
             "        if self._ref[block] >= 1:\n            return block, False",
             (H12 + "test_allocator_stateful.py::TestAllocatorMachine",
              H12 + "test_block_table_edges.py::test_fork_then_both_append_never_write_a_shared_block"), kind="logic"),
    Mutation("free of a list with a bad id frees part of it", "lesson12", "allocator.py",
             "        self._check_used(blocks)\n        for block in blocks:\n"
             "            self._ref[block] -= 1",
             "        for block in blocks:\n            self._check_used([block])\n"
             "            self._ref[block] -= 1",
             (H12 + "test_allocator_stateful.py::TestAllocatorMachine",), kind="contract"),
    Mutation("a new block one token early", "lesson12", "block_table.py",
             "        if offset == 0:\n",
             "        if offset == 0 or offset == self.block_size - 1:\n",
             (H12 + "test_block_table_edges.py::test_blocks_held_is_exactly_ceil",), kind="boundary"),
    Mutation("append bumps num_tokens before a failed copy-on-write", "lesson12", "block_table.py",
             "            last = self.blocks[-1]\n",
             "            last = self.blocks[-1]\n            self.num_tokens += 1\n"
             "            self.num_tokens -= 1 if self.allocator.num_free else 0\n",
             (H12 + "test_block_table_edges.py::test_shortage_during_copy_on_write_changes_nothing",), kind="contract"),
    Mutation("paged attention ignores context_lens", "lesson12", "paged_attention.py",
             "mask = (positions[None, :] < context_lens.to(q.device)[:, None])",
             "mask = (positions[None, :] >= 0).expand(batch, tokens)",
             (H12 + "test_paged_grading.py::test_paged_equals_dense_any_layout",
              H12 + "test_paged_grading.py::test_block_table_padding_is_never_read"), kind="logic"),
    Mutation("query head h reads KV head h % n_kv", "lesson12", "paged_attention.py",
             "queries = q.view(batch, n_kv_heads, group, d_head)",
             "queries = q.view(batch, group, n_kv_heads, d_head).transpose(1, 2)",
             (H12 + "test_paged_grading.py::test_paged_equals_dense_any_layout",), kind="logic"),
    Mutation("the whole cache is copied every step", "lesson12", "paged_attention.py",
             "    tables = block_tables[:, :used].long()\n",
             "    tables = block_tables[:, :used].long()\n"
             "    k_cache, v_cache = k_cache.contiguous().clone(), v_cache.clone()\n",
             (H12 + "test_paged_grading.py::test_never_copies_the_whole_cache",), kind="cost"),
    Mutation("a Python loop over tokens (the spec, called)", "lesson12", "paged_attention.py",
             "    longest = int(context_lens.max()) if batch else 0\n",
             "    return paged_attention_decode_spec(q, k_cache, v_cache, block_tables,\n"
             "                                       context_lens, scale)\n",
             (H12 + "test_paged_grading.py::test_work_does_not_loop_over_tokens",), kind="cost"),
    Mutation("admission counts only the prompt's blocks", "lesson12", "batcher.py",
             "        need = worst_case_blocks(request, self.block_size)\n"
             "        return self.allocator.num_free - self.reserved_blocks() >= need",
             "        need = -(-request.prompt_len // self.block_size)\n"
             "        return self.allocator.num_free >= need",
             (H12 + "test_batcher_traces.py::test_random_trace_never_overcommits_and_finishes",), kind="logic"),
    Mutation("the just-admitted request also decodes", "lesson12", "batcher.py",
             "        for seq in before:\n            self.decode(seq)\n"
             "            result.decoded.append(seq.request.id)\n        self.retire_finished",
             "        for seq in list(self.running):\n            self.decode(seq)\n"
             "            result.decoded.append(seq.request.id)\n        self.retire_finished",
             (H12 + "test_batcher_traces.py::test_random_trace_never_overcommits_and_finishes",
              H12 + "test_batcher_traces.py::test_a_slot_freed_this_step_is_reused_next_step"), kind="logic"),
    Mutation("static batching in disguise", "lesson12", "batcher.py",
             "        while self.waiting and self.waiting[0].arrival <= self.steps \\\n",
             "        while not before and self.waiting and self.waiting[0].arrival <= self.steps \\\n",
             (H12 + "test_batcher_traces.py::test_continuous_beats_static_on_a_mixed_trace",), kind="logic"),
    Mutation("paged waste counts a full block for exact multiples", "lesson12", "fragmentation.py",
             "    return sum(-(-int(n) // block_size) * block_size - int(n) for n in lengths)",
             "    return sum((int(n) // block_size + 1) * block_size - int(n) for n in lengths)",
             (H12 + "test_batcher_traces.py::test_paged_waste_matches_brute_force",), kind="boundary"),
    Mutation("the TTL is not refreshed by a read", "lesson12", "prompt_cache.py",
             "        if last_use is None or t - last_use > pricing.ttl_s:\n"
             "            cost += pricing.write_multiplier * prefix_tokens\n"
             "        else:\n            cost += pricing.read_multiplier * prefix_tokens\n"
             "        last_use = t\n",
             "        if last_use is None or t - last_use > pricing.ttl_s:\n"
             "            cost += pricing.write_multiplier * prefix_tokens\n"
             "            last_use = t\n"
             "        else:\n            cost += pricing.read_multiplier * prefix_tokens\n",
             (H12 + "test_batcher_traces.py::test_ttl_boundary_and_refresh_on_read",), kind="logic"),
    Mutation("break-even as the ceiling of the real root", "lesson12", "prompt_cache.py",
             "    n = int((w - 1) // (1 - r)) + 1",
             "    import math\n    return math.ceil((w - 1) / (1 - r))\n"
             "    n = int((w - 1) // (1 - r)) + 1",
             (H12 + "test_batcher_traces.py::test_breakeven_matches_brute_force",), kind="boundary"),
    Mutation("GPU: a Python loop over sequences", "lesson12", "paged_attention.py",
             "    longest = int(context_lens.max()) if batch else 0\n",
             "    if batch > 1:\n"
             "        return torch.cat([paged_attention_decode(q[i:i + 1], k_cache, v_cache,\n"
             "                          block_tables[i:i + 1], context_lens[i:i + 1], scale)\n"
             "                          for i in range(batch)])\n"
             "    longest = int(context_lens.max()) if batch else 0\n",
             (H12 + "test_gpu_paged.py::test_paged_decode_speed",), gpu=True, kind="cost"),
    Mutation("GPU: the gathered cache upcast to float32", "lesson12", "paged_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n",
             "    out = F.scaled_dot_product_attention(queries.float(), k.float(), v.float(),\n"
             "                                         attn_mask=mask, scale=scale).to(q.dtype)\n",
             (H12 + "test_gpu_paged.py::test_paged_decode_speed",), gpu=True, kind="cost"),
    Mutation("allocate(-1) quietly returns nothing", "lesson12", "allocator.py",
             "        if n < 0:\n            raise ValueError(f\"cannot allocate a negative number of blocks ({n})\")\n",
             "        if n < 0:\n            return []\n",
             (H12 + "test_allocator_stateful.py::test_allocate_zero_and_negative",), kind="contract"),
    Mutation("allocating exactly every free block is refused", "lesson12", "allocator.py",
             "        if n > len(self._free):\n",
             "        if n >= len(self._free) and n > 0:\n",
             (H12 + "test_allocator_stateful.py::test_exactly_full_then_one_more",), kind="boundary"),
    Mutation("copy-on-write of a full shared block at a block boundary", "lesson12",
             "block_table.py",
             "        if offset == 0:\n            self.blocks.extend(self.allocator.allocate(1))\n",
             "        if offset == 0 and self.blocks:\n"
             "            block, copied = self.allocator.copy_on_write(self.blocks[-1])\n"
             "            if copied:\n"
             "                self.pending_copies.append((self.blocks[-1], block))\n"
             "                self.blocks[-1] = block\n"
             "        if offset == 0:\n            self.blocks.extend(self.allocator.allocate(1))\n",
             (H12 + "test_block_table_edges.py::test_fork_at_a_block_boundary_needs_no_copy",), kind="boundary"),
    Mutation("slot_mapping gives each sequence's first slot", "lesson12", "block_table.py",
             "    return torch.tensor([t.slot(t.num_tokens - 1) for t in tables], dtype=torch.int64)",
             "    return torch.tensor([t.slot(0) for t in tables], dtype=torch.int64)",
             (H12 + "test_block_table_edges.py::test_slot_mapping_for_ragged_batch",), kind="logic"),
    Mutation("float32 output for bfloat16 inputs", "lesson12", "paged_attention.py",
             "    out = out.view(batch, n_heads, d_head)\n",
             "    out = out.view(batch, n_heads, d_head).float()\n",
             (H12 + "test_paged_grading.py::test_bfloat16_inputs_give_bfloat16_close_to_dense",), kind="dtype-device"),
    Mutation("write_kv writes into a copy of the cache", "lesson12", "paged_attention.py",
             "    k_cache.view(flat, *k_cache.shape[2:])[slots.long()] = k.to(k_cache.dtype)\n",
             "    k_cache.transpose(0, 1).reshape(flat, *k_cache.shape[2:])[slots.long()] = k.to(k_cache.dtype)\n",
             (H12 + "test_paged_grading.py::test_write_kv_then_attend_roundtrip",), kind="contract"),

    # Each class of learner mistake (tests/mutations/__init__.py BUG_CLASSES), written as a
    # learner would from the lesson text.
    Mutation("the mask uses the longest sequence's length for every row", "lesson12",
             "paged_attention.py",
             "mask = (positions[None, :] < context_lens.to(q.device)[:, None])",
             "mask = (positions[None, :] < context_lens.to(q.device).max()).expand(batch, tokens)",
             (H12 + "test_paged_grading.py::test_paged_equals_dense_any_layout",),
             kind="rows-differ"),
    Mutation("a hand-written softmax without subtracting the maximum", "lesson12",
             "paged_attention.py",
             "    out = F.scaled_dot_product_attention(queries, k, v, attn_mask=mask, scale=scale)\n",
             "    s_ = 1.0 / math.sqrt(d_head) if scale is None else scale\n"
             "    weights = (queries.float() @ k.float().transpose(-1, -2) * s_).exp() * mask\n"
             "    weights = weights / weights.sum(-1, keepdim=True)\n"
             "    out = (weights @ v.float()).to(q.dtype)\n",
             (H12 + "test_paged_grading.py::test_logits_in_the_thousands_stay_finite",),
             kind="extreme"),
    Mutation("scale= accepted but not passed on", "lesson12", "paged_attention.py",
             "attn_mask=mask, scale=scale)", "attn_mask=mask)",
             (H12 + "test_paged_grading.py::test_non_default_scale_is_used",),
             kind="unvaried-arg"),
    Mutation("slot_mapping of no tables is float32", "lesson12", "block_table.py",
             "for t in tables], dtype=torch.int64)", "for t in tables])",
             (H12 + "test_block_table_edges.py::test_slot_mapping_of_no_tables_and_of_an_empty_table",),
             kind="special-value"),
    Mutation("an empty table mapped to slot 0", "lesson12", "block_table.py",
             "[t.slot(t.num_tokens - 1) for t in tables]",
             "[t.slot(t.num_tokens - 1) if t.num_tokens else 0 for t in tables]",
             (H12 + "test_block_table_edges.py::test_slot_mapping_of_no_tables_and_of_an_empty_table",),
             kind="special-value"),
    Mutation("write_kv without a range check (a negative slot wraps around)", "lesson12",
             "paged_attention.py",
             "    if bad.any():\n",
             "    if False:\n",
             (H12 + "test_paged_grading.py::test_write_kv_rejects_slots_outside_the_cache",),
             kind="contract"),
    Mutation("a chunk written to consecutive slots from its first one", "lesson12",
             "paged_attention.py",
             "    k_cache.view(flat, *k_cache.shape[2:])[slots.long()] = k.to(k_cache.dtype)\n"
             "    v_cache.view(flat, *v_cache.shape[2:])[slots.long()] = v.to(v_cache.dtype)\n",
             "    first = int(slots[0])\n"
             "    k_cache.view(flat, *k_cache.shape[2:])[first:first + len(slots)] = k.to(k_cache.dtype)\n"
             "    v_cache.view(flat, *v_cache.shape[2:])[first:first + len(slots)] = v.to(v_cache.dtype)\n",
             (H12 + "test_paged_grading.py::test_write_kv_chunk_that_crosses_blocks",),
             kind="multi-token"),
    Mutation("break-even returns 0 at a write price of exactly base", "lesson12",
             "prompt_cache.py",
             "    if w < 1:\n        return 0\n", "    if w <= 1:\n        return 0\n",
             (H12 + "test_batcher_traces.py::test_breakeven_at_a_write_price_of_exactly_base",),
             kind="boundary"),
    Mutation("contiguous waste of a sequence longer than its reservation goes negative",
             "lesson12", "fragmentation.py",
             "    if any(int(n) > int(r) for n, r in zip(lengths, reserved)):\n",
             "    if False:\n",
             (H12 + "test_batcher_traces.py::test_contiguous_waste_with_a_reservation_per_sequence",),
             kind="contract"),
]

# The kernel track (triton_paged.py): the mistakes a learner makes writing the split-KV kernel.
# Caught by the CPU graders, which run the kernel in Triton's interpreter.
TK = H12 + "test_triton_paged_grading.py::"
MUTATIONS += [
    Mutation("Triton kernel: token mask includes the end", "lesson12", "triton_paged.py",
             "        tok_ok = tokens < end\n", "        tok_ok = tokens <= end\n",
             (TK + "test_tile_boundaries",), kind="boundary"),
    Mutation("Triton kernel: the accumulator is not rescaled when the max grows", "lesson12",
             "triton_paged.py",
             "        acc = acc * alpha[:, None] + tl.dot(",
             "        acc = acc + tl.dot(",
             (TK + "test_running_max_rescales_earlier_tiles",), kind="logic"),
    Mutation("Triton kernel: query head h reads KV head h % n_kv", "lesson12", "triton_paged.py",
             "    heads = kv_head * GROUP + rows\n",
             "    heads = kv_head + rows * tl.num_programs(1)\n",
             (TK + "test_query_heads_read_their_kv_head",), kind="logic"),
    Mutation("Triton kernel: every sequence reads row 0 of the block table", "lesson12",
             "triton_paged.py",
             "    table_row = tables_ptr + b * stride_tb\n", "    table_row = tables_ptr\n",
             (TK + "test_each_sequence_reads_its_own_table_row",), kind="rows-differ"),
    Mutation("Triton merge: NaN when every split is empty (length 0)", "lesson12",
             "triton_paged.py",
             "    top = tl.where(top == float(\"-inf\"), 0.0, top)",
             "    top = top",
             (TK + "test_splits_merge_with_empty_ones",), kind="special-value"),
    Mutation("Triton merge: weights exp(lse) of a base-2 log-sum-exp", "lesson12",
             "triton_paged.py",
             "    w = tl.exp2(lse - top)  # 0 for empty splits",
             "    w = tl.exp(lse - top)  # 0 for empty splits",
             (TK + "test_splits_merge_with_empty_ones",), kind="logic"),
    Mutation("Triton kernel: exp2 of raw scores, no running max", "lesson12", "triton_paged.py",
             "        m_new = tl.maximum(m, tl.max(s, axis=1))",
             "        m_new = tl.maximum(m, 0.0)",
             (TK + "test_huge_scores_stay_finite",), kind="extreme"),
]
