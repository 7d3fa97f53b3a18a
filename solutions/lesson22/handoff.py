"""The hand-off between a prefill instance and a decode instance, on two processes.

Rank 0 (prefill) runs the prompt, writes its KV into its own paged cache, picks the first
token, serialises the sequence's blocks and sends them with the first token to rank 1. Rank 1
(decode) receives them into blocks IT allocates, rebuilds the dense cache and continues greedy
decoding. The tokens must equal those of one process doing both (colocated serving).

The protocol over ``torch.distributed`` point-to-point (gloo on the CPU, NCCL between GPUs):

    1. a header: an int64 tensor of HEADER_INTS values
       [payload bytes, n_tokens, first_token, 0], on the payload's device;
    2. the payload: a 1-D uint8 tensor of that many bytes (nothing when it is 0).

The receiver cannot size its buffer before it knows the length: that is why the header goes
first, with a fixed size both sides know.

The model is HF transformers' Llama (``course.model.hf_model_from_weights``); its cache holds,
per layer, K and V of shape ``[batch, n_kv_heads, tokens, d_head]``.

Read: learning/lesson22.md#the-hand-off
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from course.model import hf_forward_with_cache

HEADER_INTS = 4


def send_kv(payload: torch.Tensor, n_tokens: int, first_token: int, dst: int, group=None) -> None:
    """Send ``payload`` (1-D uint8) and two integers to rank ``dst``: header, then payload.

    Blocking ``dist.send`` calls, in the protocol's order, on ``payload``'s device (a CUDA
    payload with NCCL, a CPU one with gloo). An empty payload sends the header only. Four lines.

    Read: learning/lesson22.md#the-hand-off
    """
    if payload.dtype != torch.uint8 or payload.dim() != 1:
        raise ValueError(f"payload must be a 1-D uint8 tensor, got {payload.dtype} "
                         f"{tuple(payload.shape)}")
    ### BEGIN SOLUTION
    header = torch.tensor([payload.numel(), n_tokens, first_token, 0], dtype=torch.int64,
                          device=payload.device)
    dist.send(header, dst, group=group)
    if payload.numel():
        dist.send(payload, dst, group=group)
    ### END SOLUTION


def recv_kv(src: int, device: str | torch.device = "cpu", group=None
            ) -> tuple[torch.Tensor, int, int]:
    """Receive what ``send_kv`` sent from rank ``src``: ``(payload, n_tokens, first_token)``.

    ``payload`` is a 1-D uint8 tensor on ``device`` of exactly the announced size. Five lines.

    Read: learning/lesson22.md#the-hand-off
    """
    ### BEGIN SOLUTION
    header = torch.empty(HEADER_INTS, dtype=torch.int64, device=device)
    dist.recv(header, src, group=group)
    nbytes, n_tokens, first_token = (int(x) for x in header[:3].tolist())
    payload = torch.empty(nbytes, dtype=torch.uint8, device=device)
    if nbytes:
        dist.recv(payload, src, group=group)
    return payload, n_tokens, first_token
    ### END SOLUTION


def hf_cache_from_dense(keys: list[torch.Tensor], values: list[torch.Tensor]):
    """A transformers ``DynamicCache`` holding per-layer ``keys[l]``/``values[l]``
    ``[batch, n_kv_heads, tokens, d_head]`` (given: the glue to the library's cache object)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (k, v) in enumerate(zip(keys, values)):
        cache.update(k, v, layer)
    return cache


@torch.no_grad()
def prefill_to_blocks(model, prompt: list[int], k_cache: torch.Tensor, v_cache: torch.Tensor,
                      block_ids: list[int]) -> int:
    """Prefill ``prompt`` on ``model``, write its KV into ``block_ids`` of the paged caches
    ``[n_layers, num_blocks, block_size, n_kv_heads, d_head]``; return the greedy first token.
    Given: the prefill instance's side, to read before writing the decode side."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    n, block_size = len(prompt), k_cache.shape[2]
    if len(block_ids) * block_size < n:
        raise ValueError(f"{n} tokens do not fit in {len(block_ids)} blocks of {block_size}")
    logits, cache = hf_forward_with_cache(model, torch.tensor([prompt]))
    pos = torch.arange(n)
    blocks = torch.tensor(block_ids, dtype=torch.long)[pos // block_size]
    for layer in range(k_cache.shape[0]):
        k, v = cache.layers[layer].keys[0], cache.layers[layer].values[0]  # [n_kv, n, d_head]
        k_cache[layer, blocks, pos % block_size] = k.transpose(0, 1).to(k_cache.dtype)
        v_cache[layer, blocks, pos % block_size] = v.transpose(0, 1).to(v_cache.dtype)
    return int(logits[0, -1].argmax())


@torch.no_grad()
def decode_after_handoff(model, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         block_ids: list[int], n_tokens: int, first_token: int,
                         max_new_tokens: int) -> list[int]:
    """The decode instance's side: continue greedy decoding from received KV blocks.

    ``k_cache``/``v_cache`` ``[n_layers, num_blocks, block_size, n_kv_heads, d_head]`` hold the
    prompt's ``n_tokens`` tokens in ``block_ids`` (in token order). ``first_token`` was chosen
    by the prefill instance and has NO KV yet. Return ``max_new_tokens`` tokens, the first of
    them ``first_token``: gather the blocks into dense per-layer K/V
    ``[1, n_kv_heads, n_tokens, d_head]`` (exactly ``n_tokens``: the tail of the last block is
    not part of the sequence), make a cache with ``hf_cache_from_dense``, then feed the last
    token chosen and append the argmax of the logits (``hf_forward_with_cache``) until there
    are enough. About 10 lines.

    Read: learning/lesson22.md#the-hand-off
    """
    if max_new_tokens < 1 or n_tokens < 1:
        raise ValueError(f"need max_new_tokens >= 1 and n_tokens >= 1, got {max_new_tokens}, "
                         f"{n_tokens}")
    ### BEGIN SOLUTION
    n_layers, _, block_size, n_kv, d_head = k_cache.shape
    index = torch.tensor(list(block_ids), dtype=torch.long, device=k_cache.device)

    def dense(cache: torch.Tensor) -> list[torch.Tensor]:
        flat = cache.index_select(1, index).reshape(n_layers, -1, n_kv, d_head)[:, :n_tokens]
        return [flat[layer].transpose(0, 1).unsqueeze(0) for layer in range(n_layers)]

    cache = hf_cache_from_dense(dense(k_cache), dense(v_cache))
    tokens = [first_token]
    while len(tokens) < max_new_tokens:
        logits, cache = hf_forward_with_cache(model, torch.tensor([[tokens[-1]]]), cache)
        tokens.append(int(logits[0, -1].argmax()))
    return tokens
    ### END SOLUTION
