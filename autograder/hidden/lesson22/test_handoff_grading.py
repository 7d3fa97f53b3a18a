"""Hidden grader, lesson 22: the header-then-payload protocol on two gloo ranks, and the hand-off
from a prefill instance to a decode instance.

References: the bytes and integers the sender was given (the protocol); colocated greedy
decoding with HF transformers' own cache in one process (the hand-off). The ranks run only the
transport, so they never import transformers; the model runs in the test process, one thread.
"""

import pytest
import torch

from course.config import tiny
from course.distributed import run_ranks
from course.model import hf_forward_with_cache, hf_model_from_weights, random_weights
from course.testing import is_greedy_continuation, torch_threads
from exercises.lesson22.handoff import decode_after_handoff, prefill_to_blocks

CFG = tiny(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64, vocab_size=96)
BLOCK = 4


@pytest.fixture(scope="module")
def model():
    with torch_threads(1):
        yield hf_model_from_weights(CFG, random_weights(CFG, seed=3))


def colocated(model, prompt, n_new):
    logits, cache = hf_forward_with_cache(model, torch.tensor([prompt]))
    tokens = [int(logits[0, -1].argmax())]
    while len(tokens) < n_new:
        logits, cache = hf_forward_with_cache(model, torch.tensor([[tokens[-1]]]), cache)
        tokens.append(int(logits[0, -1].argmax()))
    return tokens


def protocol_rank(rank, world, messages):
    from exercises.lesson22.handoff import recv_kv, send_kv
    if rank == 0:
        for payload, n_tokens, first in messages:
            send_kv(payload, n_tokens, first, dst=1)
        return None
    return [recv_kv(src=0) for _ in messages]


def transport_rank(rank, world, sequences):
    """Rank 0 sends each (k, v, blocks, n_tokens, first); rank 1 lands each in its own cache."""
    from exercises.lesson22.handoff import recv_kv, send_kv
    from exercises.lesson22.kv_blocks import blocks_needed, deserialize_kv_blocks, serialize_kv_blocks
    if rank == 0:
        for k, v, blocks, n_tokens, first in sequences:
            data = serialize_kv_blocks(k, v, blocks, n_tokens)
            send_kv(torch.frombuffer(bytearray(data), dtype=torch.uint8), n_tokens, first, 1)
        return None
    out = []
    for k, _, _, _, _ in sequences:
        payload, n_tokens, first = recv_kv(0)
        k2, v2 = torch.full_like(k, 7.0), torch.full_like(k, -7.0)  # garbage in unused slots
        mine = [6, 0, 2, 5, 3][:blocks_needed(n_tokens, BLOCK)]
        deserialize_kv_blocks(payload.numpy().tobytes(), k2, v2, mine)
        out.append((k2, v2, mine, n_tokens, first))
    return out


@pytest.mark.points(2)
def test_protocol_header_then_payload():
    """Bugs: the header's fields in another order than the receiver reads them; a receive
    buffer not sized from the header (a fixed size, or the sender's previous message); an empty
    payload sent on one side and not received on the other (the next message desynchronises);
    first token 0 or n_tokens 0 dropped as 'no value'."""
    g = torch.Generator().manual_seed(0)
    messages = [(torch.randint(0, 256, (1000,), generator=g, dtype=torch.uint8), 37, 0),
                (torch.empty(0, dtype=torch.uint8), 0, 5),
                (torch.randint(0, 256, (3,), generator=g, dtype=torch.uint8), 1, 95)]
    _, got = run_ranks(protocol_rank, 2, messages, timeout=120)
    assert len(got) == len(messages)
    for i, ((payload, n, first), (p2, n2, f2)) in enumerate(zip(messages, got)):
        assert p2.dtype == torch.uint8 and p2.shape == payload.shape, (
            f"message {i}: received {p2.dtype} {tuple(p2.shape)}, sent uint8 {tuple(payload.shape)}")
        assert torch.equal(p2, payload), f"message {i}: the payload bytes differ"
        assert (n2, f2) == (n, first), f"message {i}: received n_tokens={n2}, first_token={f2}; sent {n}, {first}"


@pytest.mark.points(4)
def test_handoff_equals_colocated_decoding(model):
    """Bugs: the receiver's block mapping off by one; the last, partly filled block dropped by
    the sender; the decode side starting from a wrong position (feeding the last prompt token
    again, keeping the tail slots of the last block as if they were tokens, or losing the
    first token); the first token not returned as the first output."""
    prompts = [[(7 * i + 3) % 96 for i in range(9)],      # 9 tokens: last block holds 1
               [(11 * i + 5) % 96 for i in range(8)]]     # 8 tokens: two full blocks
    n_new = 6
    with torch_threads(1):
        sequences, expected = [], []
        for prompt, blocks in zip(prompts, ([4, 0, 7], [1, 6])):
            k = torch.zeros(CFG.n_layers, 8, BLOCK, CFG.n_kv_heads, CFG.d_head)
            v = torch.zeros_like(k)
            first = prefill_to_blocks(model, prompt, k, v, blocks)
            sequences.append((k, v, blocks, len(prompt), first))
            expected.append(colocated(model, prompt, n_new))
        _, received = run_ranks(transport_rank, 2, sequences, timeout=120)
        for prompt, want, (k2, v2, mine, n_tokens, first) in zip(prompts, expected, received):
            assert n_tokens == len(prompt), f"received n_tokens {n_tokens} for a {len(prompt)}-token prompt"
            got = decode_after_handoff(model, k2, v2, mine, n_tokens, first, n_new)
            assert len(got) == n_new and got[0] == want[0], \
                f"{len(prompt)}-token prompt: expected {n_new} tokens starting {want[0]}, got {got}"
            assert got == want or is_greedy_continuation(model, prompt, got), (
                f"{len(prompt)}-token prompt: the decode instance generated {got}, colocated "
                f"serving {want}")


@pytest.mark.points(2)
def test_decode_after_handoff_in_one_process(model):
    """Bugs: max_new_tokens of 1 still runs a forward or returns two tokens; blocks gathered
    in sorted instead of table order; a receiver cache with garbage beyond the sequence read as
    tokens."""
    prompt = [(13 * i + 1) % 96 for i in range(10)]
    with torch_threads(1):
        want = colocated(model, prompt, 5)
        k = torch.full((CFG.n_layers, 6, BLOCK, CFG.n_kv_heads, CFG.d_head), 50.0)
        v = torch.full_like(k, -50.0)
        first = prefill_to_blocks(model, prompt, k, v, [5, 2, 3])  # not sorted
        assert decode_after_handoff(model, k, v, [5, 2, 3], 10, first, 1) == [first]
        got = decode_after_handoff(model, k, v, [5, 2, 3], 10, first, 5)
    assert got == want or is_greedy_continuation(model, prompt, got), \
        f"generated {got}, colocated {want}"
