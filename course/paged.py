"""Paged KV caches built from dense tensors, and the dense answer to compare against.

Used by Lesson 12's tests, graders and benchmarks (and later lessons that page their KV):
``make_paged_case`` scatters each sequence's keys and values over randomly chosen, randomly
ordered physical blocks of a cache larger than needed, fills every slot no sequence owns
with large garbage (a kernel that reads past ``context_lens`` gets a visibly wrong answer),
and keeps the dense per-sequence K/V for the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PagedCase:
    q: torch.Tensor  # [batch, n_heads, d_head]
    k_cache: torch.Tensor  # [num_blocks, block_size, n_kv_heads, d_head]
    v_cache: torch.Tensor
    block_tables: torch.Tensor  # [batch, max_blocks] int32
    context_lens: torch.Tensor  # [batch] int32
    keys: list[torch.Tensor]  # per sequence [n, n_kv_heads, d_head]
    values: list[torch.Tensor]

    @property
    def kv_bytes_read(self) -> int:
        """Bytes of K and V a decode step must read: every sequence's tokens, once."""
        per_token = 2 * self.k_cache.shape[2] * self.k_cache.shape[3] * self.k_cache.element_size()
        return int(self.context_lens.sum()) * per_token


def make_paged_case(lengths: list[int], n_heads: int, n_kv_heads: int, d_head: int,
                    block_size: int, *, spare_blocks: int = 4, dtype=torch.float32,
                    device="cpu", seed: int = 0, garbage: float = 1e4) -> PagedCase:
    """A random decode batch whose K/V sit in shuffled blocks of a paged cache."""
    gen = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    need = [-(-n // block_size) for n in lengths]
    num_blocks = sum(need) + spare_blocks
    physical = torch.randperm(num_blocks, generator=gen).tolist()
    shape = (num_blocks, block_size, n_kv_heads, d_head)
    k_cache = (torch.rand(shape, generator=gen) * 2 - 1) * garbage
    v_cache = (torch.rand(shape, generator=gen) * 2 - 1) * garbage
    tables = torch.zeros(batch, max(max(need, default=1), 1), dtype=torch.int32)
    keys, values = [], []
    flat_k = k_cache.view(num_blocks * block_size, n_kv_heads, d_head)
    flat_v = v_cache.view(num_blocks * block_size, n_kv_heads, d_head)
    for b, n in enumerate(lengths):
        mine, physical = physical[:need[b]], physical[need[b]:]
        tables[b, :len(mine)] = torch.tensor(mine, dtype=torch.int32)
        k = torch.randn(n, n_kv_heads, d_head, generator=gen)
        v = torch.randn(n, n_kv_heads, d_head, generator=gen)
        pos = torch.arange(n)
        slots = torch.tensor(mine, dtype=torch.int64)[pos // block_size] * block_size \
            + pos % block_size
        flat_k[slots], flat_v[slots] = k, v
        keys.append(k.to(dtype))
        values.append(v.to(dtype))
    q = torch.randn(batch, n_heads, d_head, generator=gen)
    return PagedCase(q.to(dtype).to(device), k_cache.to(dtype).to(device),
                     v_cache.to(dtype).to(device), tables.to(device),
                     torch.tensor(lengths, dtype=torch.int32, device=device),
                     [k.to(device) for k in keys], [v.to(device) for v in values])


def dense_decode_reference(case: PagedCase, scale: float | None = None) -> torch.Tensor:
    """Dense SDPA per sequence over its own tokens, K/V heads expanded to every query head,
    computed in float32 and returned in q's dtype. Zero for an empty sequence."""
    batch, n_heads, d_head = case.q.shape
    out = torch.zeros(batch, n_heads, d_head, dtype=torch.float32, device=case.q.device)
    for b, (k, v) in enumerate(zip(case.keys, case.values)):
        if k.shape[0] == 0:
            continue
        group = n_heads // k.shape[1]
        k = k.float().repeat_interleave(group, dim=1).transpose(0, 1)  # [h, n, d]
        v = v.float().repeat_interleave(group, dim=1).transpose(0, 1)
        q = case.q[b].float().unsqueeze(1)  # [h, 1, d]
        out[b] = F.scaled_dot_product_attention(q, k, v, scale=scale).squeeze(1)
    return out.to(case.q.dtype)
