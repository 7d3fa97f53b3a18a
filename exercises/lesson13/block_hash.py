"""Prefix caching with a hash table (vLLM's automatic prefix caching, Kwon et al. 2023).

Instead of a tree, each full block of a prompt gets a key that depends on its tokens AND on
everything before it: ``h_i = block_hash(h_{i-1}, tokens of block i)``, ``h_{-1} = None``.
Two blocks with the same tokens under different prefixes hold different KV (attention saw
different context), so they must get different keys. A table maps key -> block id; a
prompt's hit is the longest run of its leading keys found in the table.

The hash is fixed here so that every process, and every run, computes the same one:

    block_hash(parent, tokens) = int.from_bytes(sha256(P + T).digest(), "big")
    P = parent.to_bytes(32, "big")         (32 zero bytes when parent is None)
    T = each token as 4 bytes, big-endian  (ids 0 .. 2**32 - 1)

Python's built-in ``hash()`` of a str or bytes is salted per process (PYTHONHASHSEED), so
keys made with it differ between the processes of one engine and between restarts.

Read: learning/lesson13.md#a-chained-block-hash
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence


class OutOfBlocks(Exception):
    """More new blocks were needed than are free. Nothing was changed."""


class InvalidBlock(Exception):
    """A block id out of range, already free, or listed twice. Nothing was changed."""


def _check_tokens(tokens: Sequence[int]) -> None:
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
        raise TypeError(f"tokens must be a sequence of ints, got {type(tokens).__name__}")
    for t in tokens:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < 2**32:
            raise ValueError(f"token ids must be ints in 0 .. 2**32 - 1, got {t!r}")


def block_hash(parent_hash: int | None, block_tokens: Sequence[int]) -> int:
    """The key of one block: sha256 over the parent's key and the block's tokens, as the
    module docstring defines it. A 256-bit int.

    Raises ValueError for a token outside 0 .. 2**32 - 1 or a parent outside
    0 .. 2**256 - 1, TypeError for something that is not a sequence of ints.

    Read: learning/lesson13.md#a-chained-block-hash
    """
    _check_tokens(block_tokens)
    if parent_hash is not None and (isinstance(parent_hash, bool)
                                    or not isinstance(parent_hash, int)
                                    or not 0 <= parent_hash < 2**256):
        raise ValueError(f"parent_hash must be None or an int in 0 .. 2**256 - 1, "
                         f"got {parent_hash!r}")
    # hint: hashlib.sha256(parent_bytes + token_bytes).digest()
    raise NotImplementedError('lesson13: block_hash - read learning/lesson13.md#a-chained-block-hash')


def hash_blocks(tokens: Sequence[int], block_size: int) -> list[int]:
    """The chained keys of the full blocks of ``tokens`` (a last partial block has none).

    Read: learning/lesson13.md#a-chained-block-hash
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    _check_tokens(tokens)
    raise NotImplementedError('lesson13: hash_blocks - read learning/lesson13.md#a-chained-block-hash')


class HashPrefixCache:
    """A block pool whose freed blocks stay cached until they are handed out again.

    Every block is either in use (reference count >= 1) or in the free queue. A freed block
    keeps its key in the table: a later prompt with the same prefix takes it back out of
    the free queue (a hit). New blocks come from the front of the free queue, the least
    recently freed; a block taken that way is about to be overwritten, so its old key must
    leave the table at that moment, or a later lookup returns a block whose KV belongs to
    another prompt.

    Example:
        >>> c = HashPrefixCache(num_blocks=4, block_size=2)
        >>> c.allocate([1, 2, 3, 4, 5])          # 3 blocks, nothing cached yet
        ([0, 1, 2], 0)
        >>> c.free([0, 1, 2])
        >>> c.allocate([1, 2, 3, 4, 6])          # its first two blocks are a hit
        ([0, 1, 3], 4)

    Read: learning/lesson13.md#a-hash-table-cache
    """

    def __init__(self, num_blocks: int, block_size: int):
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        self.num_blocks, self.block_size = num_blocks, block_size
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._ref = [0] * num_blocks
        self._key_of: dict[int, int] = {}    # block id -> its key, for cached blocks
        self._block_of: dict[int, int] = {}  # key -> block id

    @property
    def num_free(self) -> int:
        """Blocks not in use (cached or not)."""
        return len(self._free)

    def ref_count(self, block: int) -> int:
        return self._ref[block]

    def lookup(self, tokens: Sequence[int]) -> list[int]:
        """The blocks of the longest cached run of leading full blocks. Changes nothing."""
        hit = []
        for key in hash_blocks(tokens, self.block_size):
            if key not in self._block_of:
                break
            hit.append(self._block_of[key])
        return hit

    def table_is_consistent(self) -> bool:
        """The two maps are inverse to each other."""
        return (len(self._key_of) == len(self._block_of)
                and all(self._block_of.get(k) == b for b, k in self._key_of.items()))

    def allocate(self, tokens: Sequence[int]) -> tuple[list[int], int]:
        """Blocks for a new prompt: ``(block_table, num_cached_tokens)``.

        The table has ``ceil(len(tokens) / block_size)`` ids. Its first blocks are the
        cached hit (``lookup``), capped so that at least one token is computed: at most
        ``(len(tokens) - 1) // block_size`` blocks; ``num_cached_tokens`` is their count
        times ``block_size``. A hit block in the free queue leaves it. The rest are new,
        from the front of the free queue; a new block that had a key loses it. Each new
        full block is then entered in the table under its key, unless that key is already
        there. Every block of the table gets one more reference.

        Raises OutOfBlocks, changing nothing, if too few blocks are free; ValueError for an
        empty prompt.

        Read: learning/lesson13.md#a-hash-table-cache
        """
        if len(tokens) == 0:
            raise ValueError("a prompt needs at least one token")
        keys = hash_blocks(tokens, self.block_size)
        raise NotImplementedError('lesson13: HashPrefixCache.allocate - read learning/lesson13.md#a-hash-table-cache')

    def free(self, blocks: Sequence[int]) -> None:
        """A sequence is done with its block table: one reference less per block. A block
        that reaches zero joins the back of the free queue, keeping its key; the table's
        blocks join in reverse order, so the end of a prompt is reused before its start.

        Raises InvalidBlock, changing nothing, for an id out of range, already free, or
        listed twice.

        Read: learning/lesson13.md#a-hash-table-cache
        """
        for block in blocks:
            if isinstance(block, bool) or not isinstance(block, int) \
                    or not 0 <= block < self.num_blocks:
                raise InvalidBlock(f"block {block!r} is not an id in 0..{self.num_blocks - 1}")
            if self._ref[block] == 0:
                raise InvalidBlock(f"block {block} is free already")
        if len(set(blocks)) != len(blocks):
            raise InvalidBlock(f"a block id appears twice in {list(blocks)}")
        raise NotImplementedError('lesson13: HashPrefixCache.free - read learning/lesson13.md#a-hash-table-cache')
