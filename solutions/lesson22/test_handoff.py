"""Lesson 22, part 3: prefill, ship the KV from rank 0 to rank 1 (gloo), decode: the same tokens
as one process doing both. Run: pytest exercises/lesson22

The two ranks run the transport (serialise, send, receive, write into the receiver's own
blocks); the model runs in the test process on each side's caches, so the ranks need not import
transformers. The reference is colocated greedy decoding with HF transformers' own cache.
"""

import torch

from course.config import tiny
from course.distributed import run_ranks
from course.model import hf_forward_with_cache, hf_model_from_weights, random_weights
from course.testing import torch_threads
from exercises.lesson22.handoff import decode_after_handoff, prefill_to_blocks

CFG = tiny(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64, vocab_size=128)
PROMPT = [(5 * i + 1) % 128 for i in range(10)]  # 10 tokens: blocks of 4, the last holds 2
NEW = 6


def colocated(model, prompt, n_new):
    logits, cache = hf_forward_with_cache(model, torch.tensor([prompt]))
    tokens = [int(logits[0, -1].argmax())]
    while len(tokens) < n_new:
        logits, cache = hf_forward_with_cache(model, torch.tensor([[tokens[-1]]]), cache)
        tokens.append(int(logits[0, -1].argmax()))
    return tokens


def transport_rank(rank, world, k, v, blocks, n_tokens, first):
    from exercises.lesson22.handoff import recv_kv, send_kv
    from exercises.lesson22.kv_blocks import blocks_needed, deserialize_kv_blocks, serialize_kv_blocks
    if rank == 0:
        data = serialize_kv_blocks(k, v, blocks, n_tokens)
        send_kv(torch.frombuffer(bytearray(data), dtype=torch.uint8), n_tokens, first, dst=1)
        return None
    payload, n_tokens, first = recv_kv(src=0)
    k2, v2 = torch.zeros_like(k), torch.zeros_like(v)  # the receiver's own cache
    mine = [2, 0, 3, 5][:blocks_needed(n_tokens, k.shape[2])]  # and its own blocks
    deserialize_kv_blocks(payload.numpy().tobytes(), k2, v2, mine)
    return k2, v2, mine, n_tokens, first


def test_two_process_handoff_equals_colocated_decoding():
    with torch_threads(1):
        model = hf_model_from_weights(CFG, random_weights(CFG, seed=1))
        expected = colocated(model, PROMPT, NEW)
        shape = (CFG.n_layers, 6, 4, CFG.n_kv_heads, CFG.d_head)
        k, v = torch.zeros(shape), torch.zeros(shape)
        first = prefill_to_blocks(model, PROMPT, k, v, [4, 1, 5])
        _, received = run_ranks(transport_rank, 2, k, v, [4, 1, 5], len(PROMPT), first,
                                timeout=120)
        k2, v2, mine, n_tokens, first2 = received
        assert (n_tokens, first2) == (len(PROMPT), first), \
            f"received n_tokens={n_tokens}, first_token={first2}; sent {len(PROMPT)}, {first}"
        got = decode_after_handoff(model, k2, v2, mine, n_tokens, first2, NEW)
    assert got == expected, f"decode instance generated {got}, colocated serving {expected}"
