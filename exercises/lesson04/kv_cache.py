"""A preallocated KV cache: one buffer per K and V, allocated once, written in place.

``k_buffer`` and ``v_buffer`` are ``[n_layers, max_batch, n_kv_heads, max_seq, d_head]``,
allocated in ``__init__`` and never replaced. Appending T tokens to layer ``l`` writes
``k_buffer[l, :B, :, n:n + T]`` where n is what that layer held; reading returns views of the
filled part. So an append costs O(T), never O(tokens already cached): no ``torch.cat``, no
reallocation, and memory use is known up front (``kv_cache_bytes(cfg, max_batch, max_seq)``).

Invariant: ``length(l)`` tokens of layer ``l`` hold data; everything after them is unused.
All sequences of the batch share one length (no padding; lesson 12 pages ragged batches).

Read: learning/lesson04.md#a-preallocated-cache
"""

from __future__ import annotations

import torch


class CacheFull(ValueError):
    """An append would go past max_seq (or max_batch)."""


class KVCache:
    """Preallocated K and V storage for ``n_layers`` layers.

    Example:
        >>> c = KVCache(n_layers=2, max_batch=1, max_seq=8, n_kv_heads=1, d_head=4)
        >>> c.append(0, torch.ones(1, 1, 3, 4), torch.ones(1, 1, 3, 4)).tolist()
        [0, 1, 2]
        >>> c.get(0)[0].shape, c.length(0), c.length(1)
        (torch.Size([1, 1, 3, 4]), 3, 0)

    Read: learning/lesson04.md#a-preallocated-cache
    """

    def __init__(self, n_layers: int, max_batch: int, max_seq: int, n_kv_heads: int,
                 d_head: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        for name, value in dict(n_layers=n_layers, max_batch=max_batch, max_seq=max_seq,
                                n_kv_heads=n_kv_heads, d_head=d_head).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        shape = (n_layers, max_batch, n_kv_heads, max_seq, d_head)
        self.k_buffer = torch.zeros(shape, dtype=dtype, device=device)
        self.v_buffer = torch.zeros(shape, dtype=dtype, device=device)
        self.max_seq = max_seq
        self.lengths = [0] * n_layers  # tokens held, per layer
        self.batch = 0                 # sequences in use, set by the first append

    def length(self, layer: int) -> int:
        """Tokens held by ``layer``."""
        return self.lengths[layer]

    def reset(self) -> None:
        """Forget every token (the buffers stay allocated)."""
        self.lengths = [0] * len(self.lengths)
        self.batch = 0

    def _check_append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        _, max_batch, n_kv, _, d_head = self.k_buffer.shape
        if not 0 <= layer < len(self.lengths):
            raise IndexError(f"layer {layer} not in 0..{len(self.lengths) - 1}")
        if k.shape != v.shape or k.dim() != 4 or k.shape[1] != n_kv or k.shape[3] != d_head:
            raise ValueError(f"k and v must both be [batch, {n_kv}, tokens, {d_head}]; got "
                             f"{tuple(k.shape)} and {tuple(v.shape)}")
        if k.shape[0] > max_batch or (self.batch and k.shape[0] != self.batch):
            raise CacheFull(f"batch {k.shape[0]} does not fit: the cache holds up to "
                            f"{max_batch} sequences and is in use with {self.batch}")
        if self.lengths[layer] + k.shape[2] > self.max_seq:
            raise CacheFull(f"layer {layer} holds {self.lengths[layer]} tokens; {k.shape[2]} "
                            f"more would pass max_seq={self.max_seq}")

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Write T new tokens' keys and values after the ones ``layer`` holds, in place.

        Args:
            k, v: ``[B, n_kv_heads, T, d_head]``, cast to the cache's dtype.
        Returns:
            the positions written, ``torch.arange(n, n + T)`` where n was ``length(layer)``.

        Must not allocate anything the size of the cache: copy into a slice of the
        buffers (``buffer[...].copy_(k)``), then advance the length. About 6 lines.

        Speed is graded on a GPU: an append after 32k cached tokens must cost about what it costs
        after 1k (a copy of what is cached grows with it).

        Read: learning/lesson04.md#a-preallocated-cache
        """
        self._check_append(layer, k, v)
        raise NotImplementedError('lesson04: KVCache.append - read learning/lesson04.md#a-preallocated-cache')

    def get(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of every token ``layer`` holds: two VIEWS into the buffers,
        ``[B, n_kv_heads, length(layer), d_head]`` (no copy; writing into them writes the
        cache). Before any append, B is 0. About 2 lines.

        Read: learning/lesson04.md#a-preallocated-cache
        """
        if not 0 <= layer < len(self.lengths):
            raise IndexError(f"layer {layer} not in 0..{len(self.lengths) - 1}")
        raise NotImplementedError('lesson04: KVCache.get - read learning/lesson04.md#a-preallocated-cache')

    @property
    def nbytes(self) -> int:
        """Bytes held by the two buffers (allocated up front, whatever is filled)."""
        return self.k_buffer.nbytes + self.v_buffer.nbytes
