# %% [markdown]
# # Lesson 12: PagedAttention, continuous batching and prompt caching
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson12/`) while you
# write them. Read [the lesson](../learning/lesson12.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). The last cell runs
# the lesson's visible tests.

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson12")

# %% [markdown]
# ## The block allocator
# Eight blocks. Allocate two for one sequence, fork them for a second one (a shared prompt), then
# free the first owner: the blocks stay allocated while the fork still references them.

# %%
from exercises.lesson12.allocator import BlockAllocator, OutOfBlocks

allocator = BlockAllocator(8)
first = allocator.allocate(2)
print("first sequence's blocks:", first, "| free:", allocator.num_free)
second = allocator.fork(first)
print("after fork, reference counts:", [allocator.ref_count(b) for b in first])
allocator.free(first)
print("after freeing the first owner, free:", allocator.num_free)
try:
    allocator.allocate(100)
except OutOfBlocks as exc:
    print("all or nothing:", exc, "| free is still", allocator.num_free)
allocator.free(second)

# %% [markdown]
# ## The block table filling up
# Three sequences grow one token at a time over 16 blocks of 4 slots, in turns, the way a
# decode batch does. Each row below is a physical block; the letter says which sequence owns it
# and the digits how many of its 4 slots hold a token. Blocks are handed out as they are needed,
# so a sequence's blocks are scattered over memory, and only its last block is partly filled.

# %%
from exercises.lesson12.block_table import BlockTable, block_table_tensor, slot_mapping

BLOCK = 4
pool = BlockAllocator(16)
tables = {name: BlockTable(pool, block_size=BLOCK) for name in "ABC"}
lengths = {"A": 9, "B": 3, "C": 6}
for step in range(max(lengths.values())):
    for name, table in tables.items():
        if step < lengths[name]:
            table.append_token()


def draw(tables, num_blocks):
    owner = {}
    for name, table in tables.items():
        for i, block in enumerate(table.blocks):
            filled = min(BLOCK, table.num_tokens - i * BLOCK)
            owner[block] = f"{name}{filled}"
    return " ".join(owner.get(b, "..") for b in range(num_blocks))


print("physical blocks 0..15:", draw(tables, 16))
for name, table in tables.items():
    print(f"sequence {name}: {table.num_tokens} tokens in blocks {table.blocks}")
print("block table tensor (padded with 0):")
print(block_table_tensor(list(tables.values())))
print("slots of the last token of each sequence:", slot_mapping(list(tables.values())).tolist())

# %% [markdown]
# ## Paged decode attention against dense attention
# Scatter each sequence's keys and values over a random permutation of the blocks, then check
# that paged decode attention equals plain softmax attention over the same tokens, for a batch
# of different lengths (one of them 0).

# %%
import torch

from exercises.lesson12.paged_attention import paged_attention_decode, write_kv

batch, n_heads, n_kv_heads, d_head, block_size, num_blocks = 3, 4, 2, 16, 4, 12
lens = torch.tensor([7, 0, 10])
k_cache = torch.zeros(num_blocks, block_size, n_kv_heads, d_head)
v_cache = torch.zeros_like(k_cache)
order = torch.randperm(num_blocks)
table = order[: 3 * 3].view(3, 3)  # three blocks per sequence, scattered
keys = [torch.randn(int(n), n_kv_heads, d_head) for n in lens]
values = [torch.randn(int(n), n_kv_heads, d_head) for n in lens]
for b, n in enumerate(lens.tolist()):
    slots = torch.tensor([int(table[b, i // block_size]) * block_size + i % block_size
                          for i in range(n)], dtype=torch.long)
    write_kv(k_cache, v_cache, keys[b], values[b], slots)
q = torch.randn(batch, n_heads, d_head)
out = paged_attention_decode(q, k_cache, v_cache, table, lens)
print("output shape:", tuple(out.shape))
for b, n in enumerate(lens.tolist()):
    if n == 0:
        print(f"sequence {b}: length 0 -> all zeros:", bool((out[b] == 0).all()))
        continue
    k = keys[b].repeat_interleave(n_heads // n_kv_heads, dim=1).transpose(0, 1)  # [h, n, d]
    v = values[b].repeat_interleave(n_heads // n_kv_heads, dim=1).transpose(0, 1)
    dense = torch.softmax(q[b, :, None] @ k.transpose(1, 2) / d_head ** 0.5, -1) @ v
    print(f"sequence {b}: max |paged - dense| = {(out[b] - dense[:, 0]).abs().max():.2e}")

# %% [markdown]
# ## Fragmentation against block size
# Waste of a paged cache for 200 sequences of random lengths (1 to 2,000 tokens), against a
# contiguous cache that reserves the maximum length for each: the smaller the block, the less
# is wasted (fewer than `block_size` slots per sequence), but the longer the block tables.

# %%
from course.plot import Line

from exercises.lesson12.fragmentation import contiguous_waste, paged_waste, utilization

generator = torch.Generator().manual_seed(0)
seq_lens = torch.randint(1, 2001, (200,), generator=generator).tolist()
sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
paged = [utilization(seq_lens, paged_waste(seq_lens, s)) for s in sizes]
contiguous = utilization(seq_lens, contiguous_waste(seq_lens, 2000))
for s, u in zip(sizes, paged):
    print(f"block {s:4d}: {100 * u:5.1f}% of allocated slots hold a token")
print(f"contiguous, 2,000 reserved per sequence: {100 * contiguous:.1f}%")
show_plot("fragmentation", lines=[Line("paged", sizes, paged),
                                  Line("contiguous (max length)", (1, 256), (contiguous,) * 2)],
          xlabel="block size (tokens)", ylabel="slots holding a token (fraction)",
          title="KV-cache utilization against block size", loglog=False)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson12` in a terminal. Your instructor's graders go
# further (edge cases, cost counts, a GPU speed check).

# %%
run_tests("lesson12")
