"""Planted bugs in the lesson 22 reference that its hidden graders must catch.

Classes (tests/mutations/__init__.py BUG_CLASSES): every class is planted below.
"""

from . import Mutation

H = "autograder/hidden/lesson22/"
T = H + "test_transfer_grading.py::"
K = H + "test_kv_blocks_grading.py::"
P = H + "test_handoff_grading.py::"
S = H + "test_sim_grading.py::"

MUTATIONS = [
    # transfer.py
    Mutation("a network card's bits taken as bytes", "lesson22", "transfer.py",
             'bytes_per_s = rate * 1e9 / 8 if unit == "Gb/s" else rate * 1e9',
             "bytes_per_s = rate * 1e9",
             (T + "test_link_figure_to_bytes_per_direction",)),
    Mutation("a two-way total used as one direction", "lesson22", "transfer.py",
             "return bytes_per_s / 2 if bidirectional else bytes_per_s",
             "return bytes_per_s",
             (T + "test_link_figure_to_bytes_per_direction",
              T + "test_fixture_links_round_trip_through_the_conversion"), kind="unvaried-arg"),
    Mutation("K and V counted once", "lesson22", "transfer.py",
             "per_token = 2 * cfg.n_layers", "per_token = cfg.n_layers",
             (T + "test_llama3_8b_worked_example_and_mha", T + "test_transfer_time_formula")),
    Mutation("query heads instead of KV heads (GQA ignored)", "lesson22", "transfer.py",
             "cfg.n_kv_heads * cfg.d_head * dtype_bytes", "cfg.n_heads * cfg.d_head * dtype_bytes",
             (T + "test_llama3_8b_worked_example_and_mha", T + "test_transfer_time_formula")),
    Mutation("dtype_bytes ignored (bf16 assumed)", "lesson22", "transfer.py",
             "cfg.n_kv_heads * cfg.d_head * dtype_bytes", "cfg.n_kv_heads * cfg.d_head * 2",
             (T + "test_transfer_time_formula",), kind="unvaried-arg"),
    Mutation("pool sizes floored", "lesson22", "transfer.py",
             "return math.ceil(prefill_load - 1e-9), math.ceil(decode_load - 1e-9)",
             "return math.floor(prefill_load), math.floor(decode_load)",
             (T + "test_pd_ratio_rounds_each_pool_up",)),
    Mutation("int(x) + 1 buys an instance at an exact whole load", "lesson22", "transfer.py",
             "return math.ceil(prefill_load - 1e-9), math.ceil(decode_load - 1e-9)",
             "return int(prefill_load) + 1, int(decode_load) + 1",
             (T + "test_pd_ratio_rounds_each_pool_up",), kind="boundary"),
    Mutation("floating-point noise buys an instance", "lesson22", "transfer.py",
             "return math.ceil(prefill_load - 1e-9), math.ceil(decode_load - 1e-9)",
             "return math.ceil(prefill_load), math.ceil(decode_load)",
             (T + "test_pd_ratio_rounds_each_pool_up",), kind="boundary"),
    # kv_blocks.py
    Mutation("last, partly filled block dropped (floor)", "lesson22", "kv_blocks.py",
             "return -(-n_tokens // block_size)", "return n_tokens // block_size",
             (K + "test_partial_last_block_padding_and_block_zero",
              K + "test_round_trip_is_bit_exact_in_every_dtype"), kind="boundary"),
    Mutation("block id 0 taken for padding", "lesson22", "kv_blocks.py",
             "ids = [int(b) for b in block_ids[:blocks_needed(n_tokens, block_size)]]",
             "ids = [int(b) for b in block_ids if b][:blocks_needed(n_tokens, block_size)]",
             (K + "test_partial_last_block_padding_and_block_zero",), kind="special-value"),
    Mutation("zero tokens: frombuffer of an empty buffer", "lesson22", "kv_blocks.py",
             "blocks = torch.frombuffer(raw, dtype=torch.uint8) if raw else "
             "torch.empty(0, dtype=torch.uint8)",
             "blocks = torch.frombuffer(raw, dtype=torch.uint8)",
             (K + "test_zero_tokens_is_an_empty_message",), kind="special-value"),
    Mutation("dtype sent by element size (bf16 arrives as fp16)", "lesson22", "kv_blocks.py",
             'header = json.dumps({"dtype": str(k_cache.dtype).removeprefix("torch."),',
             'header = json.dumps({"dtype": {1: "float8_e4m3fn", 2: "float16", 4: "float32"}'
             '[k_cache.element_size()],',
             (K + "test_round_trip_is_bit_exact_in_every_dtype",), kind="dtype-device"),
    Mutation("receiver block mapping off by one", "lesson22", "kv_blocks.py",
             "index = torch.tensor(dest, dtype=torch.long, device=k_dest.device)",
             "index = torch.tensor(dest[1:] + dest[:1], dtype=torch.long, device=k_dest.device)",
             (K + "test_round_trip_is_bit_exact_in_every_dtype",
              K + "test_partial_last_block_padding_and_block_zero")),
    Mutation("no checksum: a corrupted payload accepted", "lesson22", "kv_blocks.py",
             "if crc != zlib.crc32(data[:start + 2 * one]):", "if False:",
             (K + "test_bad_messages_are_refused_before_writing",), kind="contract"),
    Mutation("destination dtype not checked", "lesson22", "kv_blocks.py",
             "if dtype != k_dest.dtype:", "if dtype.itemsize != k_dest.dtype.itemsize:",
             (K + "test_bad_messages_are_refused_before_writing",), kind="contract"),
    Mutation("payload squeezed through fp16 (bf16's extremes become inf and 0)", "lesson22",
             "kv_blocks.py",
             "parts.append(cache.view(torch.uint8).index_select(1, index).cpu().numpy().tobytes())",
             "parts.append(cache.to(torch.float16).to(cache.dtype).view(torch.uint8)"
             ".index_select(1, index).cpu().numpy().tobytes())",
             (K + "test_round_trip_is_bit_exact_in_every_dtype",), kind="extreme"),
    Mutation("the whole cache shipped", "lesson22", "kv_blocks.py",
             "parts.append(cache.view(torch.uint8).index_select(1, index).cpu().numpy().tobytes())",
             "parts.append(cache.view(torch.uint8).cpu().numpy().tobytes())",
             (K + "test_message_carries_only_the_sequence_blocks",), kind="cost"),
    # handoff.py
    Mutation("header fields in another order than read", "lesson22", "handoff.py",
             "header = torch.tensor([payload.numel(), n_tokens, first_token, 0], dtype=torch.int64,",
             "header = torch.tensor([payload.numel(), first_token, n_tokens, 0], dtype=torch.int64,",
             (P + "test_protocol_header_then_payload",)),
    Mutation("decode starts one position early (last prompt token's KV dropped)", "lesson22",
             "handoff.py",
             ".reshape(n_layers, -1, n_kv, d_head)[:, :n_tokens]",
             ".reshape(n_layers, -1, n_kv, d_head)[:, :n_tokens - 1]",
             (P + "test_decode_after_handoff_in_one_process",), kind="multi-token"),
    Mutation("the tail slots of the last block kept as tokens", "lesson22", "handoff.py",
             ".reshape(n_layers, -1, n_kv, d_head)[:, :n_tokens]",
             ".reshape(n_layers, -1, n_kv, d_head)",
             (P + "test_decode_after_handoff_in_one_process",), kind="boundary"),
    # serving_sim.py
    Mutation("TTFT of every request from the first arrival", "lesson22", "serving_sim.py",
             "ttfts[e.request] = e.time_s - arrival[e.request]",
             "ttfts[e.request] = e.time_s - next(iter(arrival.values()))",
             (S + "test_latencies_of_interleaved_requests",
              S + "test_summary_uses_p99_over_all_requests"), kind="rows-differ"),
    Mutation("ITL measured from the latest token of any request", "lesson22", "serving_sim.py",
             "itls_of[e.request].append(e.time_s - last[e.request])",
             "itls_of[e.request].append(e.time_s - max(last.values()))",
             (S + "test_latencies_of_interleaved_requests",), kind="rows-differ"),
    Mutation("TTFT counted as an inter-token gap", "lesson22", "serving_sim.py",
             "            ttfts[e.request] = e.time_s - arrival[e.request]\n",
             "            ttfts[e.request] = e.time_s - arrival[e.request]\n"
             "            itls_of[e.request].append(e.time_s - arrival[e.request])\n",
             (S + "test_latencies_of_interleaved_requests",)),
    Mutation("no second token: percentile of an empty list", "lesson22", "serving_sim.py",
             '"p99_itl_s": float(np.percentile(itls, 99)) if itls else 0.0,',
             '"p99_itl_s": float(np.percentile(itls, 99)),',
             (S + "test_one_output_token_has_no_itl",), kind="special-value"),
]
