"""Planted bugs in the lesson 20 reference that its hidden graders must catch."""

from . import Mutation

H20 = "autograder/hidden/lesson20/"
SPLIT = H20 + "test_schedule_grading.py::test_split_layers_covers_in_order_balanced_remainder_first"
SPLIT_RAISE = H20 + "test_schedule_grading.py::test_split_layers_refuses_empty_stages"
BUBBLE = H20 + "test_schedule_grading.py::test_bubble_fraction_exact"
IDLE = H20 + "test_schedule_grading.py::test_measured_idle_fraction_equals_the_formula"
PEAK = H20 + "test_schedule_grading.py::test_peak_microbatches_in_flight_gpipe_m_1f1b_p_minus_s"
BAD_ARGS = H20 + "test_schedule_grading.py::test_bad_arguments_raise"
PIPE3 = H20 + "test_pipeline_grading.py::test_three_uneven_stages_equal_the_whole_model"
PIPE1 = H20 + "test_pipeline_grading.py::test_one_stage_and_one_microbatch"
RING = H20 + "test_ring_grading.py::test_ring_attention_equals_full_attention_uneven_chunks"
ORDER = H20 + "test_ring_grading.py::test_ring_order_and_skipped_future_chunks"
LOUD = H20 + "test_ring_grading.py::test_loud_scores_and_rows_that_differ"
BF16 = H20 + "test_ring_grading.py::test_bfloat16_in_bfloat16_out"
ZIGZAG = H20 + "test_ring_grading.py::test_zigzag_positions_exact"
ZIGZAG_RING = H20 + "test_ring_grading.py::test_ring_attention_on_zigzag_positions_is_exact_and_balanced"
MERGE = H20 + "test_ring_grading.py::test_merge_states_empty_rows_and_inputs_unchanged"
GPU_PP = H20 + "test_gpu_pipeline.py::test_two_stage_pipeline_throughput_on_two_gpus"

SPLIT_RET = ("    return [range(s * base + min(s, extra), (s + 1) * base + min(s + 1, extra))\n"
             "            for s in range(pp)]\n")
MASK = ("                allowed = positions[j][None, :] <= positions[r][:, None]  # [n_r, n_j]\n")
SEND = ("        if rank < world - 1:\n"
        "            dist.send(y.contiguous(), dst=rank + 1)\n"
        "        else:\n"
        "            outputs.append(y)\n")

MUTATIONS = [
    # split_layers
    Mutation("remainder given to the last stages", "lesson20", "schedule.py", SPLIT_RET,
             "    return [range(s * base + max(0, s - pp + extra), "
             "(s + 1) * base + max(0, s + 1 - pp + extra))\n"
             "            for s in range(pp)]\n",
             (SPLIT,), kind="boundary"),
    Mutation("off by one: a stage with an extra layer ends one layer early", "lesson20",
             "schedule.py", SPLIT_RET,
             SPLIT_RET.replace("(s + 1) * base + min(s + 1, extra)", "(s + 1) * base + min(s, extra)"),
             (SPLIT,), kind="boundary"),
    Mutation("ceil division: the last stages come out short or empty", "lesson20",
             "schedule.py", SPLIT_RET,
             "    size = -(-n_layers // pp)\n"
             "    return [range(min(s * size, n_layers), min((s + 1) * size, n_layers))\n"
             "            for s in range(pp)]\n",
             (SPLIT,), kind="logic"),
    Mutation("more stages than layers accepted", "lesson20", "schedule.py",
             "    if pp > n_layers:\n", "    if False:\n",
             (SPLIT_RAISE,), kind="contract"),
    # bubble
    Mutation("bubble p / (m + p)", "lesson20", "schedule.py",
             "    return (pp - 1) / (n_microbatches + pp - 1)\n",
             "    return pp / (n_microbatches + pp)\n",
             (BUBBLE,), kind="logic"),
    Mutation("bubble (p - 1) / (m + p)", "lesson20", "schedule.py",
             "    return (pp - 1) / (n_microbatches + pp - 1)\n",
             "    return (pp - 1) / (n_microbatches + pp)\n",
             (BUBBLE,), kind="boundary"),
    # schedules
    Mutation("forward on stage s ignores the previous stage", "lesson20", "schedule.py",
             "                    dep = (\"F\", s - 1, i) if s > 0 else None\n",
             "                    dep = None\n",
             (IDLE,), kind="logic"),
    Mutation("backward waits for the next stage's forward, not its backward", "lesson20",
             "schedule.py",
             "                    dep = (\"B\", s + 1, i) if s < p - 1 else (\"F\", s, i)\n",
             "                    dep = (\"F\", s + 1, i) if s < p - 1 else (\"F\", s, i)\n",
             (IDLE,), kind="logic"),
    Mutation("op starts one tick after it could", "lesson20", "schedule.py",
             "                start = max(free[s], ends[dep] if dep is not None else 0)\n",
             "                start = max(free[s], ends[dep] + 1 if dep is not None else 0)\n",
             (IDLE,), kind="boundary"),
    Mutation("1F1B warms up with p - s forwards", "lesson20", "schedule.py",
             "            warm = min(p - 1 - s, m)\n", "            warm = min(p - s, m)\n",
             (PEAK,), kind="boundary"),
    Mutation("1F1B runs its backwards at the end (GPipe's memory)", "lesson20", "schedule.py",
             "            order = forwards[:warm]\n"
             "            for i in range(m - warm):\n"
             "                order += [forwards[warm + i], backwards[i]]\n"
             "            order += backwards[m - warm:]\n",
             "            order = forwards + backwards\n",
             (PEAK,), kind="logic"),
    Mutation("unknown kind runs as 1F1B", "lesson20", "schedule.py",
             "    if kind not in KINDS:\n", "    if False:\n",
             (BAD_ARGS,), kind="contract"),
    # pipelined forward
    Mutation("middle and last ranks receive from rank + 1 (deadlock)", "lesson20",
             "pipeline.py", "            dist.recv(x, src=rank - 1)\n",
             "            dist.recv(x, src=(rank + 1) % world)\n",
             (PIPE3,), kind="logic"),
    Mutation("outputs kept back, all sent at the end (no overlap: GPU only)", "lesson20",
             "pipeline.py", SEND,
             "        outputs.append(y)\n"
             "    if rank < world - 1:\n"
             "        for y in outputs:\n"
             "            dist.send(y.contiguous(), dst=rank + 1)\n"
             "        return []\n"
             "    if False:\n"
             "        pass\n",
             (GPU_PP,), gpu=True, kind="cost"),
    # ring attention
    Mutation("merge without rescaling", "lesson20", "ring_attention.py",
             "    return m, a1 * l1 + a2 * l2, a1[..., None] * o1 + a2[..., None] * o2\n",
             "    return m, l1 + l2, o1 + o2\n",
             (RING, MERGE), kind="logic"),
    Mutation("merge of two empty states gives NaN", "lesson20", "ring_attention.py",
             "    m_safe = torch.where(m == float(\"-inf\"), torch.zeros_like(m), m)\n",
             "    m_safe = m\n",
             (MERGE,), kind="special-value"),
    Mutation("causal triangle from local indices on every chunk", "lesson20",
             "ring_attention.py", MASK,
             "                allowed = torch.ones(len(positions[r]), len(positions[j]), "
             "dtype=torch.bool).tril()\n",
             (RING, ZIGZAG_RING), kind="multi-token"),
    Mutation("diagonal chunk without its triangle", "lesson20", "ring_attention.py", MASK,
             "                allowed = (positions[j][None, :] <= positions[r][:, None]) "
             "| (j == r)\n",
             (RING,), kind="multi-token"),
    Mutation("a token does not see itself (strict inequality)", "lesson20",
             "ring_attention.py", MASK, MASK.replace("<=", "<"),
             (RING,), kind="boundary"),
    Mutation("positions of chunk r assumed to start at r x len(chunk 0)", "lesson20",
             "ring_attention.py",
             "    if positions is None:\n"
             "        positions = contiguous_positions([q.shape[-2] for q in q_chunks])\n",
             "    if positions is None:\n"
             "        n0 = q_chunks[0].shape[-2]\n"
             "        positions = [torch.arange(r * n0, r * n0 + q.shape[-2])\n"
             "                     for r, q in enumerate(q_chunks)]\n",
             (RING,), kind="boundary"),
    Mutation("positions argument ignored", "lesson20", "ring_attention.py",
             "    if positions is None:\n        positions = contiguous_positions(",
             "    if True:\n        positions = contiguous_positions(",
             (ZIGZAG_RING,), kind="unvaried-arg"),
    Mutation("ring turns the wrong way", "lesson20", "ring_attention.py",
             "            j = (r - t) % p\n", "            j = (r + t) % p\n",
             (ORDER,), kind="logic"),
    Mutation("future chunks computed and masked instead of skipped", "lesson20",
             "ring_attention.py",
             "                if not allowed.any():\n                    continue\n",
             "", (ORDER,), kind="cost"),
    Mutation("exp of raw scores (no maximum subtracted)", "lesson20", "ring_attention.py",
             "            m_b = s.amax(-1)\n",
             "            m_b = torch.where(s.amax(-1) == float(\"-inf\"), float(\"-inf\"), 0.0)\n",
             (LOUD,), kind="extreme"),
    Mutation("one maximum for the whole block", "lesson20", "ring_attention.py",
             "            m_b = s.amax(-1)\n",
             "            m_b = s.amax(dim=(-1, -2), keepdim=True).squeeze(-1).expand(s.shape[:-1])"
             ".clone()\n",
             (LOUD,), kind="rows-differ"),
    Mutation("fully masked rows of a visited chunk become NaN", "lesson20",
             "ring_attention.py",
             "            p_b = torch.exp(s - torch.where(m_b == float(\"-inf\"), 0.0, m_b)[..., None])\n",
             "            p_b = torch.exp(s - m_b[..., None])\n",
             (ZIGZAG_RING,), kind="special-value"),
    Mutation("output left in float32 for bfloat16 chunks", "lesson20", "ring_attention.py",
             "        outputs.append((o / l[..., None]).to(q_chunks[r].dtype))\n",
             "        outputs.append(o / l[..., None])\n",
             (BF16,), kind="dtype-device"),
    Mutation("zig-zag pairs piece r with 2p - 2 - r", "lesson20", "ring_attention.py",
             "    return [torch.cat([pieces[r], pieces[2 * p - 1 - r]]) for r in range(p)]\n",
             "    return [torch.cat([pieces[r], pieces[(2 * p - 2 - r) % (2 * p)]]) "
             "for r in range(p)]\n",
             (ZIGZAG, ZIGZAG_RING), kind="boundary"),
    Mutation("zig-zag pieces of seq_len // 2p tokens (the remainder in extra pieces)",
             "lesson20", "ring_attention.py",
             "    pieces = torch.arange(seq_len).tensor_split(2 * p)",
             "    pieces = torch.arange(seq_len).split(seq_len // (2 * p))",
             (ZIGZAG,), kind="boundary"),
]
