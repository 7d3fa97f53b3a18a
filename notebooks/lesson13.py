# %% [markdown]
# # Lesson 13: Prefix caching and the radix tree
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson13/`) while you
# write them. Read [the lesson](../learning/lesson13.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson13")

# %% [markdown]
# ## The radix tree
# The lesson's picture, built with your `insert`: a system prompt `S` of 8 tokens (ids 100..107),
# then conversations A, B and C below it, then a second turn of A; blocks of 4 tokens, block ids
# as in the lesson's diagram. The drawing below walks the tree (one line per edge: its tokens and
# its blocks). The system prompt should appear once, with A, B and C as its children.

# %%
from exercises.lesson13.radix_cache import RadixCache

BLOCK = 4
S = list(range(100, 108))
A, B, C = list(range(200, 208)), list(range(300, 304)), list(range(400, 408))
A2 = list(range(210, 214))


def draw(cache):
    """One line per edge, children indented under their parent."""
    def walk(node, depth):
        for child in sorted(node.children.values(), key=lambda n: n.blocks[0]):
            tokens = f"{child.key[0]}..{child.key[-1]} ({len(child.key)} tokens)"
            print(f"{'    ' * depth}-> {tokens:<22} blocks {child.blocks}  "
                  f"refs {child.ref}, last use {child.last_use}")
            walk(child, depth + 1)
    walk(cache.root, 0)


cache = RadixCache(block_size=BLOCK)
for tokens, blocks in [(S + A, [0, 1, 2, 3]), (S + B, [0, 1, 4]), (S + C, [0, 1, 5, 6]),
                       (S + A + A2, [0, 1, 2, 3, 7])]:
    cache.insert(tokens, blocks)
draw(cache)
print("blocks cached:", sorted(cache.cached_blocks()))

# %% [markdown]
# ## Matching a prefix
# A third turn of conversation A resends everything so far plus 6 new tokens. The match is in
# whole blocks; a prompt that leaves the tree inside an edge gets only that edge's first blocks,
# and a prompt that shares nothing gets nothing.

# %%
turn3 = S + A + A2 + [220, 221, 222, 223, 224, 225]
for label, prompt in [("A, turn 3", turn3), ("S then B, then one new token", S + B + [999]),
                      ("S, then C's first block, then new tokens", S + C[:4] + [9, 9, 9, 9]),
                      ("a new system prompt", list(range(500, 520)))]:
    hit = cache.match_prefix(prompt)
    print(f"{label:<42} {len(prompt):3d} tokens: matched {hit.num_tokens:2d}, blocks {list(hit.blocks)}")

# %% [markdown]
# ## Inserting a prefix twice
# Two requests with the prompt `S + D` arrive together: both reuse `S` (blocks 0 and 1) and each
# computes `D` into a block of its own, 8 and 9. The first insert caches block 8; the second
# finds `D` cached already and hands back its block 9 for the engine to free.

# %%
D = list(range(600, 604))
print("first request inserts blocks [0, 1, 8], duplicates:", cache.insert(S + D, [0, 1, 8]))
print("second request inserts blocks [0, 1, 9], duplicates:", cache.insert(S + D, [0, 1, 9]))
draw(cache)

# %% [markdown]
# ## Reference counts and eviction
# Conversation A is running, so its path is referenced. Ask for 4 blocks: eviction takes the
# least recently used unreferenced leaves, from the end of each edge, and never A's blocks.
# Then A finishes; asking for everything shows the shared system prompt going last, once every
# conversation below it is gone.

# %%
print("A holds", cache.reference(S + A + A2), "blocks")
print("evict(4) ->", cache.evict(4))
draw(cache)
cache.release(S + A + A2)
print("\nafter A releases, evict(100) ->", cache.evict(100))
print("blocks left:", cache.num_blocks)

# %% [markdown]
# ## The last-token rule
# How many prompt tokens a prefill still runs after a hit, with the lesson's 16-token blocks:
# a full hit gives its last block back, so a prompt never computes zero tokens.

# %%
from exercises.lesson13.radix_cache import tokens_to_compute

print(f"{'prompt':>7} | {'matched':>7} | {'computed':>8} | reused")
for prompt_len, matched in [(4096, 4096), (4100, 4096), (4096, 2048), (17, 16), (16, 16), (5, 0)]:
    computed = tokens_to_compute(prompt_len, matched, 16)
    print(f"{prompt_len:7d} | {matched:7d} | {computed:8d} | {prompt_len - computed}")

# %% [markdown]
# ## A chained block hash
# The block `[7, 7]` after `[1, 2]` and after `[3, 4]`: the chain gives them different keys
# (first 16 hex digits shown), and a partial last block gets no key. The last lines start two
# fresh Python processes: your `block_hash` gives the same key in both, while Python's salted
# built-in `hash()` of a string does not (unless `PYTHONHASHSEED` is set).

# %%
import os
import subprocess
import sys

from exercises.lesson13.block_hash import block_hash, hash_blocks

for prompt in ([1, 2, 7, 7], [3, 4, 7, 7], [1, 2, 7, 7, 5]):
    print(f"{str(prompt):<17} keys: {[f'{k:064x}'[:16] for k in hash_blocks(prompt, 2)]}")
print("same parent and tokens, same key:", block_hash(None, [1, 2]) == hash_blocks([1, 2], 2)[0])

from exercises.lesson13 import block_hash as block_hash_module

# each process loads your block_hash.py from its file and prints both keys
code = ("import importlib.util as iu, sys; spec = iu.spec_from_file_location('m', sys.argv[1]); "
        "m = iu.module_from_spec(spec); spec.loader.exec_module(m); "
        "print(f'{m.block_hash(None, [1, 2]):064x}'[:16], hash('prefix'))")
env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
for run in (1, 2):
    out = subprocess.run([sys.executable, "-c", code, block_hash_module.__file__],
                         capture_output=True, text=True, env=env)
    key, builtin = out.stdout.split() if out.returncode == 0 else (out.stderr[-300:], "")
    print(f"process {run}: block_hash {key}   hash('prefix') {builtin}")

# %% [markdown]
# ## A hash-table cache
# Four blocks of 2 tokens. A prompt is allocated, freed, and allocated again with a different
# ending: its first blocks come back from the free queue as a hit. Then unrelated prompts take
# the free blocks: each block handed out as new must lose its old key, so the two maps of the
# table stay inverse to each other and the old prefix stops hitting.

# %%
from exercises.lesson13.block_hash import HashPrefixCache

table_cache = HashPrefixCache(num_blocks=4, block_size=2)
first, cached = table_cache.allocate([1, 2, 3, 4, 5])
print("allocate [1..5]:", first, "cached tokens:", cached)
table_cache.free(first)
again, cached = table_cache.allocate([1, 2, 3, 4, 6])
print("allocate [1, 2, 3, 4, 6]:", again, "cached tokens:", cached)
table_cache.free(again)
for other in ([50, 51, 52, 53, 54, 55, 56], [60, 61, 62, 63, 64, 65, 66]):
    t, c = table_cache.allocate(other)
    print(f"allocate {other}: {t}, cached {c}, table consistent: {table_cache.table_is_consistent()}")
    table_cache.free(t)
print("lookup [1, 2, 3, 4] now:", table_cache.lookup([1, 2, 3, 4]))

# %% [markdown]
# ## Reuse against cache size
# A trace of 12 chats, 5 turns each, all with the same 32-token system prompt; each turn resends
# the whole conversation. Both caches serve it one request at a time with a pool of `capacity`
# blocks of 4 tokens: the radix tree through a small engine loop (match, compute, insert, evict
# when short), the hash table through `allocate` and `free`. The plot shows the share of prompt
# tokens served from the cache against the pool size; both should climb to the same ceiling.

# %%
import math
import random

from course.plot import Line

rng = random.Random(13)
system = list(range(1000, 1032))
N_CHATS = 12
chats = [list(system) for _ in range(N_CHATS)]
trace, chat_of = [], []
for turn in range(5):
    for i in rng.sample(range(N_CHATS), N_CHATS):
        chats[i] += [rng.randrange(2000, 3000) for _ in range(rng.randint(4, 20))]  # user turn
        trace.append(list(chats[i]))
        chat_of.append(i)
        chats[i] += [rng.randrange(3000, 4000) for _ in range(rng.randint(4, 20))]  # reply


class RadixEngine:
    """Serves prompts one at a time with a RadixCache over a pool of block ids."""

    def __init__(self, capacity):
        self.cache, self.free = RadixCache(BLOCK), list(range(capacity))

    def serve(self, prompt):
        hit = self.cache.match_prefix(prompt)
        computed = tokens_to_compute(len(prompt), hit.num_tokens, BLOCK)
        reused = (len(prompt) - computed) // BLOCK
        if reused:
            self.cache.reference(prompt[:reused * BLOCK])  # keep the hit from being evicted
        need = math.ceil(len(prompt) / BLOCK) - reused
        if need > len(self.free):
            self.free += self.cache.evict(need - len(self.free))
        table = list(hit.blocks[:reused]) + [self.free.pop(0) for _ in range(need)]
        full = len(prompt) // BLOCK
        self.free += self.cache.insert(prompt, table[:full]) + table[full:]
        if reused:
            self.cache.release(prompt[:reused * BLOCK])
        return len(prompt) - computed


def hash_engine_reuse(capacity):
    pool, reused = HashPrefixCache(capacity, BLOCK), 0
    for request in trace:
        table, cached = pool.allocate(request)
        pool.free(table)
        reused += cached
    return reused


total = sum(map(len, trace))
capacities = [48, 64, 96, 128, 192, 256, 320, 384, 512]
radix_share, hash_share = [], []
for capacity in capacities:
    engine = RadixEngine(capacity)
    radix_share.append(sum(engine.serve(p) for p in trace) / total)
    hash_share.append(hash_engine_reuse(capacity) / total)
print(f"{len(trace)} requests, {total} prompt tokens, longest {max(map(len, trace))} tokens")
print(f"{'blocks':>6} | {'radix tree':>10} | {'hash table':>10}   (share of prompt tokens reused)")
for capacity, r, h in zip(capacities, radix_share, hash_share):
    print(f"{capacity:6d} | {r:10.3f} | {h:10.3f}")
data = show_plot("reuse_vs_capacity",
                 lines=[Line("radix tree (LRU leaves)", capacities, radix_share),
                        Line("hash table (free queue)", capacities, hash_share)],
                 xlabel="cache pool (blocks of 4 tokens)", ylabel="prompt tokens reused (share)",
                 title="Prefix reuse against cache size", loglog=False)

# %% [markdown]
# ## Cache-aware routing
# The same trace sent to 3 replicas, each with its own radix cache and a pool large enough to
# never evict. A replica's load here is the number of requests it has been sent so far. Read the
# last column, the chats whose turns landed on more than one replica (each move loses that
# chat's cached history). At gap 0 the router balances first and chats scatter; a gap too large
# for the bound to matter sends everything to one replica. A small gap keeps chats together with
# even load, while a larger finite one can do worse than both ends: the replica holding the
# shared system prompt takes the new chats until the bound stops it, and their later turns are
# then pushed away from their history.

# %%
from exercises.lesson13.routing import Replica, route

print(f"{'max_load_gap':>12} | {'reused':>6} | {'requests per replica':<20} | chats split")
for gap in (0, 2, 4, 8, 16, 1000):
    engines, loads, reused = [RadixEngine(1000) for _ in range(3)], [0, 0, 0], 0
    replicas_of = {chat: set() for chat in range(N_CHATS)}
    for prompt, chat in zip(trace, chat_of):
        i = route(prompt, [Replica(e.cache, load) for e, load in zip(engines, loads)], gap)
        reused += engines[i].serve(prompt)
        loads[i] += 1
        replicas_of[chat].add(i)
    split = sum(len(r) > 1 for r in replicas_of.values())
    print(f"{gap:12d} | {reused / total:6.3f} | {str(loads):<20} | {split}")

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson13` in a terminal. Your instructor's graders go
# further (random traces against a brute-force oracle, splits under references, the dangling
# entry, ties in routing).

# %%
run_tests("lesson13")
