"""A radix tree over token ids that maps cached prompt prefixes to KV-cache blocks
(SGLang's RadixAttention, Zheng et al. 2024, at block granularity).

Only full blocks are cached: a prompt of ``n`` tokens contributes its first
``n // block_size`` blocks; the tokens of a last, partial block are never matched or stored.
Each edge of the tree holds a run of whole blocks (its ``key`` is their tokens, a multiple of
``block_size`` long); a node is split at a block boundary when a new prompt diverges inside an
edge. The cache owns the block ids inserted into it until ``evict`` hands them back; it never
allocates or frees memory itself (lesson 12's allocator does that).

Invariants, after every call:

* every cached block id sits in exactly one node;
* a node's reference count is at least the sum over the running sequences that hold it;
  a node with a reference count above zero is never evicted, nor is any of its ancestors;
* only leaves lose blocks, from the end of their edge; a parent becomes a leaf when its last
  child goes.

Read: learning/lesson13.md#the-radix-tree
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class RadixError(Exception):
    """Misuse of the cache (bad tokens or blocks, releasing what was never referenced).
    The cache is unchanged when this is raised."""


@dataclass(frozen=True)
class PrefixMatch:
    """The longest cached prefix of a prompt: ``num_tokens`` (a multiple of the block size)
    and the ``blocks`` that hold its KV, in order."""

    num_tokens: int
    blocks: tuple[int, ...]


class Node:
    """One node of the tree: the edge from its parent (``key``: tokens, ``blocks``: one id
    per ``block_size`` tokens of the key), its children by the tokens of their first block,
    a reference count and the logical time of its last use."""

    __slots__ = ("key", "blocks", "children", "parent", "ref", "last_use")

    def __init__(self, key: tuple[int, ...], blocks: list[int], parent: Node | None):
        self.key, self.blocks, self.parent = key, blocks, parent
        self.children: dict[tuple[int, ...], Node] = {}
        self.ref = 0
        self.last_use = 0


def tokens_to_compute(num_prompt_tokens: int, num_matched: int, block_size: int) -> int:
    """How many prompt tokens the prefill must still run, given a cached prefix of
    ``num_matched`` tokens (a multiple of ``block_size``, as ``match_prefix`` returns).

    At least one token is always computed: the logits that pick the first output token come
    from the last prompt token's forward pass, and a cache holds KV, not logits. Reuse is in
    whole blocks, so a full hit gives back its last block: a 32-token prompt with block size
    16 fully cached computes 16 tokens (reuses 16), a 33-token one computes 1 (reuses 32).
    The tokens reused are ``num_prompt_tokens - tokens_to_compute(...)``, a multiple of
    ``block_size``.

    Raises ValueError for an empty prompt, a match longer than the prompt, or a match that
    is not a whole number of blocks.

    Read: learning/lesson13.md#the-last-token-rule
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if num_prompt_tokens < 1:
        raise ValueError("a prompt needs at least one token to compute logits from")
    if not 0 <= num_matched <= num_prompt_tokens or num_matched % block_size:
        raise ValueError(f"num_matched={num_matched} must be a multiple of block_size="
                         f"{block_size} between 0 and num_prompt_tokens={num_prompt_tokens}")
    ### BEGIN SOLUTION
    # hint: reuse at most the whole blocks that end before the last prompt token
    reuse = min(num_matched, (num_prompt_tokens - 1) // block_size * block_size)
    return num_prompt_tokens - reuse
    ### END SOLUTION


class RadixCache:
    """Cached prompt prefixes, block by block, with LRU eviction of unreferenced leaves.

    An engine uses it like this (lesson 12's allocator hands out the block ids):

        hit = cache.match_prefix(prompt)                 # reuse hit.blocks
        compute = tokens_to_compute(len(prompt), hit.num_tokens, block_size)
        ... prefill the rest into new blocks; table = list(hit.blocks) + new blocks
        dup = cache.insert(prompt, table[:len(prompt) // block_size])
        allocator.free(dup)                              # cached already by someone else
        cache.reference(prompt)                          # held while the sequence runs
        ... decode ...
        cache.release(prompt)
        allocator.free(cache.evict(n))                   # when memory runs short

    Time is logical: every match (with ``touch``), insert, reference and release is one tick
    of a counter, and each node on the path it walks records that tick as its last use.

    Example:
        >>> c = RadixCache(block_size=2)
        >>> c.insert([1, 2, 3, 4, 5], [10, 11])     # the odd token 5 is not cached
        []
        >>> c.match_prefix([1, 2, 3, 9])
        PrefixMatch(num_tokens=2, blocks=(10,))
        >>> c.evict(1)                               # the tail block of the leaf goes first
        [11]

    Read: learning/lesson13.md#the-radix-tree
    """

    def __init__(self, block_size: int):
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        self.block_size = block_size
        self.root = Node((), [], None)
        self._clock = 0
        self._owner: dict[int, Node] = {}  # block id -> the node whose edge holds it

    # ------------------------------------------------------------------ given helpers

    @property
    def num_blocks(self) -> int:
        """How many blocks the cache holds."""
        return len(self._owner)

    def cached_blocks(self) -> set[int]:
        """The ids of every block the cache holds."""
        return set(self._owner)

    def ref_count(self, block: int) -> int:
        """The reference count of the node holding ``block``. RadixError if not cached."""
        if block not in self._owner:
            raise RadixError(f"block {block!r} is not in the cache")
        return self._owner[block].ref

    def num_evictable(self) -> int:
        """Blocks that ``evict`` could free now: those in no referenced node."""
        return sum(len(n.blocks) for n in self._nodes() if n.ref == 0)

    def _full_blocks(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """The tokens of the full blocks of ``tokens``, validated."""
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise RadixError(f"tokens must be a sequence of ints, got {type(tokens).__name__}")
        for t in tokens:
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                raise RadixError(f"token ids must be ints >= 0, got {t!r}")
        return tuple(tokens[: len(tokens) // self.block_size * self.block_size])

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _nodes(self) -> list[Node]:
        out, stack = [], list(self.root.children.values())
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out

    def _common_blocks(self, node: Node, key: tuple[int, ...], pos: int) -> int:
        """How many whole blocks of ``node``'s edge equal ``key`` from ``pos`` on."""
        bs, k = self.block_size, 0
        while (k < len(node.blocks) and pos + (k + 1) * bs <= len(key)
               and node.key[k * bs:(k + 1) * bs] == key[pos + k * bs:pos + (k + 1) * bs]):
            k += 1
        return k

    def _walk(self, key: tuple[int, ...]) -> tuple[list[Node], int, int]:
        """Follow ``key`` from the root without changing anything: ``(path, matched, k)``,
        the nodes entered in order, the tokens matched (a multiple of ``block_size``), and
        how many blocks of the last entered node's edge matched (all of them unless the walk
        stopped inside that edge). Used by every method that follows a prompt.

        Read: learning/lesson13.md#matching-a-prefix
        """
        ### BEGIN SOLUTION
        # hint: self._common_blocks(child, key, pos) compares an edge block by block
        path, node, pos, k = [], self.root, 0, 0
        while pos < len(key):
            child = node.children.get(key[pos:pos + self.block_size])
            if child is None:
                break
            k = self._common_blocks(child, key, pos)
            path.append(child)
            pos += k * self.block_size
            if k < len(child.blocks):
                break
            node = child
        return path, pos, k
        ### END SOLUTION

    # ------------------------------------------------------------------ the learner's part

    def match_prefix(self, tokens: Sequence[int], *, touch: bool = True) -> PrefixMatch:
        """The longest cached prefix of ``tokens``, in whole blocks: its length in tokens
        and its block ids. The raw match: ``tokens_to_compute`` applies the last-token rule.

        With ``touch`` (the default) every node on the matched path gets a new last-use time;
        ``touch=False`` only looks (a router probing several replicas uses it). Changes
        nothing else: a match that ends inside an edge does not split it.

        Read: learning/lesson13.md#matching-a-prefix
        """
        key = self._full_blocks(tokens)
        ### BEGIN SOLUTION
        # hint: walk from the root: children are keyed by the tokens of their first block
        path, matched, k = self._walk(key)
        blocks: list[int] = []
        for node in path[:-1]:
            blocks += node.blocks
        if path:
            blocks += path[-1].blocks[:k]
        if touch:
            now = self._tick()
            for node in path:
                node.last_use = now
        return PrefixMatch(matched, tuple(blocks))
        ### END SOLUTION

    def _split(self, node: Node, k: int) -> Node:
        """Split ``node``'s edge after its first ``k`` blocks (``0 < k < len(node.blocks)``):
        a new parent takes the first ``k`` blocks, ``node`` keeps the rest. The new parent
        inherits the reference count and last use (whoever held the whole edge holds both
        halves). Returns the new parent.

        Read: learning/lesson13.md#inserting-and-splitting
        """
        ### BEGIN SOLUTION
        cut = k * self.block_size
        parent = node.parent
        mid = Node(node.key[:cut], node.blocks[:k], parent)
        mid.ref, mid.last_use = node.ref, node.last_use
        parent.children[mid.key[:self.block_size]] = mid
        node.key, node.blocks, node.parent = node.key[cut:], node.blocks[k:], mid
        mid.children[node.key[:self.block_size]] = node
        for block in mid.blocks:
            self._owner[block] = mid
        return mid
        ### END SOLUTION

    def insert(self, tokens: Sequence[int], blocks: Sequence[int]) -> list[int]:
        """Cache the full blocks of ``tokens``, whose KV sits in ``blocks`` (exactly
        ``len(tokens) // block_size`` ids, in order). Returns the ids of ``blocks`` the
        cache did not take because the same prefix was cached already in other blocks: the
        caller frees those (or keeps them for its running sequence). A block passed at a
        position where the cache holds that very block is simply matched.

        Splits an edge where ``tokens`` leaves it inside, and hangs the unmatched rest as one
        new leaf. Every node on the path gets a new last-use time. Raises RadixError,
        changing nothing, if the number of blocks is wrong, an id repeats, or an id the
        cache holds appears at another position.

        Read: learning/lesson13.md#inserting-and-splitting
        """
        key = self._full_blocks(tokens)
        blocks = list(blocks)
        if len(blocks) != len(key) // self.block_size:
            raise RadixError(f"{len(tokens)} tokens with block size {self.block_size} have "
                             f"{len(key) // self.block_size} full blocks; got {len(blocks)} ids")
        if len(set(blocks)) != len(blocks):
            raise RadixError(f"a block id appears twice in {blocks}")
        ### BEGIN SOLUTION
        # hint: validate against the current match before changing anything
        cached = self.match_prefix(key, touch=False).blocks
        for i, block in enumerate(blocks):
            if block in self._owner and (i >= len(cached) or cached[i] != block):
                raise RadixError(f"block {block} is cached at another position")
        now = self._tick()
        node, pos = self.root, 0
        while pos < len(key):
            child = node.children.get(key[pos:pos + self.block_size])
            if child is None:
                i = pos // self.block_size
                leaf = Node(key[pos:], blocks[i:], node)
                node.children[key[pos:pos + self.block_size]] = leaf
                for block in leaf.blocks:
                    self._owner[block] = leaf
                leaf.last_use = now
                break
            k = self._common_blocks(child, key, pos)
            if k < len(child.blocks):
                child = self._split(child, k)
            child.last_use = now
            node, pos = child, pos + k * self.block_size
        return [b for b, c in zip(blocks, cached) if b != c]
        ### END SOLUTION

    def _path_to(self, key: tuple[int, ...]) -> list[Node]:
        """The nodes holding exactly the blocks of ``key`` (which must be cached), splitting
        the last edge so that the path ends at a node boundary."""
        path, matched, k = self._walk(key)
        if matched < len(key):
            raise RadixError(f"only {matched} of the {len(key)} full-block tokens are cached; "
                             "insert the prefix before referencing it")
        if path and k < len(path[-1].blocks):
            path[-1] = self._split(path[-1], k)
        return path

    def reference(self, tokens: Sequence[int]) -> int:
        """A running sequence holds the cached full blocks of ``tokens``: add one reference
        to every node on their path (splitting the last edge at the prefix's end, so that
        blocks past it stay evictable). Returns the number of blocks held. Raises RadixError,
        changing nothing, if the full blocks of ``tokens`` are not all cached.

        Read: learning/lesson13.md#reference-counts
        """
        key = self._full_blocks(tokens)
        ### BEGIN SOLUTION
        path = self._path_to(key)
        now = self._tick()
        for node in path:
            node.ref += 1
            node.last_use = now
        return len(key) // self.block_size
        ### END SOLUTION

    def release(self, tokens: Sequence[int]) -> None:
        """Drop the references ``reference(tokens)`` added. Raises RadixError, changing
        nothing, if the prefix is not cached or some node on its path has no reference.
        Refreshes the last use of the path (the sequence just finished with it).

        Read: learning/lesson13.md#reference-counts
        """
        key = self._full_blocks(tokens)
        ### BEGIN SOLUTION
        path, matched, k = self._walk(key)
        if matched < len(key) or any(node.ref == 0 for node in path):
            raise RadixError("release of a prefix that is not referenced")
        path = self._path_to(key)
        now = self._tick()
        for node in path:
            node.ref -= 1
            node.last_use = now
        ### END SOLUTION

    def evict(self, n_blocks: int) -> list[int]:
        """Free up to ``n_blocks`` blocks and return their ids, in the order freed.

        Repeatedly take the least recently used leaf with reference count 0 (ties: the
        smaller first block id) and remove blocks from the end of its edge, deepest first;
        a leaf left with no blocks is removed, and its parent may become a leaf. Returns
        fewer than ``n_blocks`` ids when fewer are evictable; never a block of a referenced
        node. ValueError if ``n_blocks`` is negative.

        Read: learning/lesson13.md#eviction-lru-over-leaves
        """
        if not isinstance(n_blocks, int) or n_blocks < 0:
            raise ValueError(f"n_blocks must be an int >= 0, got {n_blocks!r}")
        ### BEGIN SOLUTION
        # hint: a leaf is a node with no children; scanning all nodes is fine here
        freed: list[int] = []
        while len(freed) < n_blocks:
            leaves = [n for n in self._nodes() if not n.children and n.ref == 0]
            if not leaves:
                break
            leaf = min(leaves, key=lambda n: (n.last_use, n.blocks[0]))
            while leaf.blocks and len(freed) < n_blocks:
                block = leaf.blocks.pop()
                del self._owner[block]
                freed.append(block)
            if leaf.blocks:
                leaf.key = leaf.key[:len(leaf.blocks) * self.block_size]
            else:
                del leaf.parent.children[leaf.key[:self.block_size]]
        return freed
        ### END SOLUTION

    def __repr__(self) -> str:
        return f"RadixCache(block_size={self.block_size}, num_blocks={self.num_blocks})"
