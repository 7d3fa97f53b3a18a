# %% [markdown]
# # Lesson 22: Disaggregated prefill and decode
#
# A notebook to try this lesson's pieces on **your own code** (`exercises/lesson22/`) while you
# write them. Read [the lesson](../learning/lesson22.md) first. Each cell below calls one of your
# functions; until you write it, the cell stops with `NotImplementedError` naming the section to
# read. Edit the file, re-run the cell: the new code runs (autoreload is on). Everything here
# runs in one process: the hand-off below moves the KV bytes within the notebook, and the
# visible tests in the last cell send them between two real processes (`send_kv`, `recv_kv`).

# %%
from autograder.lab import run_tests, setup, show_plot

setup("lesson22")

# %% [markdown]
# ## The price of the hand-off
# Datasheet figures turned into bytes per second one way (the two traps: both directions summed,
# and bits instead of bytes), then the time to ship a 4,096-token Llama-3-8B prompt over each:
# compare with the lesson's table (1.19, 8.39, 10.74 and 42.95 ms). The plot shows that the cost
# is linear in the prompt length, so the per-token figure is what to compare with prefill.

# %%
from course.config import LLAMA2_7B, LLAMA3_8B
from course.plot import Line

from exercises.lesson22.transfer import kv_transfer_time, link_bytes_per_s_per_direction

links = {"NVLink4, 900 GB/s both ways": (900, "GB/s", True),
         "PCIe Gen5 x16, 128 GB/s both ways": (128, "GB/s", True),
         "NIC 400 Gb/s": (400, "Gb/s", False),
         "NIC 100 Gb/s": (100, "Gb/s", False)}
one_way = {name: link_bytes_per_s_per_direction(*spec) for name, spec in links.items()}
print("link                              | GB/s one way | 4,096 tokens | per token")
for name, rate in one_way.items():
    t = kv_transfer_time(LLAMA3_8B, 4096, rate)
    print(f"{name:33} | {rate / 1e9:12.1f} | {1e3 * t:9.2f} ms | "
          f"{1e6 * kv_transfer_time(LLAMA3_8B, 1, rate):.2f} us")
per_token_mha = kv_transfer_time(LLAMA2_7B, 1, one_way["NIC 400 Gb/s"])
print(f"multi-head Llama-2-7B over 400 Gb/s: {1e6 * per_token_mha:.2f} us per token")
prompt_lens = [2 ** i for i in range(7, 18)]
show_plot("transfer", lines=[Line(name, prompt_lens,
                                  [1e3 * kv_transfer_time(LLAMA3_8B, n, rate) for n in prompt_lens])
                             for name, rate in one_way.items()],
          xlabel="prompt length (tokens)", ylabel="KV transfer time (ms)",
          title="Shipping Llama-3-8B's bf16 KV cache", loglog=True)

# %% [markdown]
# ## How many of each
# The lesson's two workloads on the same instances (10,000 prefill and 2,500 decode tokens per
# second each, 10 requests per second): summarisation should give 3 prefill to 2 decode, chat 1
# to 2. Then the split as the mean output length grows.

# %%
from exercises.lesson22.transfer import pd_ratio

print("summarisation, 3,000 in / 300 out:", pd_ratio(10_000, 2_500, 10, 3_000, 300))
print("chat, 200 in / 500 out:           ", pd_ratio(10_000, 2_500, 10, 200, 500))
for out in (50, 100, 250, 500, 1000, 2000):
    n_p, n_d = pd_ratio(10_000, 2_500, 10, 1_000, out)
    print(f"1,000 in / {out:5,} out: {n_p} prefill, {n_d:2d} decode instances")

# %% [markdown]
# ## KV blocks on the wire
# A bf16 paged cache of 2 layers with blocks of 4 tokens. A 10-token sequence owns 3 blocks
# (ids 4, 0, 5: block 0 is a block like any other); only those travel. The message is read back
# into a cache of another size at other block ids, and compared bit for bit. Then the receiver's
# checks: a flipped byte, a cut-off message, a mismatched dtype.

# %%
import torch

from exercises.lesson22.kv_blocks import blocks_needed, deserialize_kv_blocks, serialize_kv_blocks

n_layers, block_size, n_kv, d_head = 2, 4, 2, 8
k = torch.randn(n_layers, 8, block_size, n_kv, d_head).to(torch.bfloat16)
v = torch.randn_like(k)
n_tokens, table = 10, [4, 0, 5, 7]  # a padded block table row
print("blocks needed for 10 tokens:", blocks_needed(n_tokens, block_size),
      "| for 8:", blocks_needed(8, block_size), "| for 0:", blocks_needed(0, block_size))
data = serialize_kv_blocks(k, v, table, n_tokens)
payload = 2 * n_layers * 3 * block_size * n_kv * d_head * 2
print(f"message: {len(data)} B, of which {payload} B are K and V blocks; "
      f"the whole cache would be {2 * k.numel() * 2} B")
k2 = torch.zeros(n_layers, 6, block_size, n_kv, d_head, dtype=torch.bfloat16)  # the receiver's
v2 = torch.zeros_like(k2)
got = deserialize_kv_blocks(data, k2, v2, [1, 3, 2])
same = all(torch.equal(k2[:, dst].view(torch.int16), k[:, src].view(torch.int16))
           and torch.equal(v2[:, dst].view(torch.int16), v[:, src].view(torch.int16))
           for src, dst in zip([4, 0, 5], [1, 3, 2]))
print(f"received n_tokens = {got}; blocks equal bit for bit: {same}; "
      f"untouched receiver blocks still zero: {bool((k2[:, [0, 4, 5]] == 0).all())}")
middle = len(data) // 2  # a byte of the K payload
broken = {"one byte flipped": data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:],
          "cut off": data[:-10]}
for name, bad in broken.items():
    try:
        deserialize_kv_blocks(bad, k2, v2, [1, 3, 2])
    except ValueError as exc:
        print(f"{name}: ValueError: {exc}")
try:
    deserialize_kv_blocks(data, k2.half(), v2.half(), [1, 3, 2])
except ValueError as exc:
    print(f"read as fp16: ValueError: {exc}")

# %% [markdown]
# ## The hand-off, end to end
# A tiny random Llama (2 layers, through HF transformers) plays both instances. The given
# `prefill_to_blocks` fills the prefill side's blocks and picks the first token; the KV crosses
# as your message into other blocks of another cache; your `decode_after_handoff` continues.
# Its tokens must equal those of one process doing prefill and decode with the library's cache.

# %%
from course.config import tiny
from course.model import hf_forward_with_cache, hf_model_from_weights, random_weights

from exercises.lesson22.handoff import decode_after_handoff, prefill_to_blocks

cfg = tiny(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64, vocab_size=128)
model = hf_model_from_weights(cfg, random_weights(cfg, seed=1))
prompt, n_new = [(7 * i + 3) % 128 for i in range(10)], 8

logits, cache = hf_forward_with_cache(model, torch.tensor([prompt]))
colocated = [int(logits[0, -1].argmax())]
while len(colocated) < n_new:
    logits, cache = hf_forward_with_cache(model, torch.tensor([[colocated[-1]]]), cache)
    colocated.append(int(logits[0, -1].argmax()))

shape = (cfg.n_layers, 6, 4, cfg.n_kv_heads, cfg.d_head)
k_p, v_p = torch.zeros(shape), torch.zeros(shape)
first = prefill_to_blocks(model, prompt, k_p, v_p, [4, 1, 5])
message = serialize_kv_blocks(k_p, v_p, [4, 1, 5], len(prompt))
k_d, v_d = torch.zeros(shape), torch.zeros(shape)
n_tokens = deserialize_kv_blocks(message, k_d, v_d, [2, 0, 3])
handed_off = decode_after_handoff(model, k_d, v_d, [2, 0, 3], n_tokens, first, n_new)
print(f"message of {len(message)} B for {n_tokens} tokens; first token {first}")
print("colocated: ", colocated)
print("handed off:", handed_off, "| equal:", handed_off == colocated)

# %% [markdown]
# ## Interference, simulated
# The given simulator's trace for three requests, your `latencies` on it, then the lesson's
# comparison (`colocated_vs_disagg(4.0, 200, 1000, 100, cost, seed=0)`; the lesson's table:
# p99 ITL 120 against 20 ms, p99 TTFT 330 against 299 ms) swept over the arrival rate. Colocated,
# every admitted prompt stretches the running requests' next gap; disaggregated, the gap is one
# decode step whatever arrives, at the price of the transfer and of a second GPU.

# %%
from exercises.lesson22.serving_sim import CostModel, colocated_vs_disagg, latencies, simulate

cost = CostModel(prefill_s_per_token=1e-4, decode_step_s=0.020,
                 transfer_s_per_token=kv_transfer_time(LLAMA3_8B, 1, 50e9))
events = simulate("colocated", [0.0, 0.05, 0.06], [1000, 1000, 500], [3, 3, 3], cost)
for e in events[:8]:
    print(f"  t = {1e3 * e.time_s:6.1f} ms  request {e.request}  {e.kind}")
print(f"  ... ({len(events)} events)")
ttft_s, itl_s = latencies(events)
print("TTFTs (ms):", [round(1e3 * t, 1) for t in ttft_s])
print("ITLs (ms): ", [round(1e3 * t, 1) for t in itl_s])

rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
rows = {rate: colocated_vs_disagg(rate, 200, 1000, 100, cost, seed=0) for rate in rates}
print("rate/s | p99 ITL ms: colocated, disagg | p99 TTFT ms: colocated, disagg")
for rate, r in rows.items():
    c, d = r["colocated"], r["disaggregated"]
    print(f"{rate:6.1f} | {1e3 * c['p99_itl_s']:20.0f} {1e3 * d['p99_itl_s']:7.0f} | "
          f"{1e3 * c['p99_ttft_s']:21.0f} {1e3 * d['p99_ttft_s']:7.0f}")
show_plot("interference", lines=[
    Line(f"{metric} {mode}", rates, [1e3 * rows[r][mode][key] for r in rates])
    for metric, key in (("p99 ITL", "p99_itl_s"), ("p99 TTFT", "p99_ttft_s"))
    for mode in ("colocated", "disaggregated")],
    xlabel="arrival rate (requests/s)", ylabel="latency (ms)",
    title="1,000-token prompts, 100 output tokens", loglog=False)

# %% [markdown]
# ## Run the visible tests
# The same tests as `pytest exercises/lesson22` in a terminal; they run the hand-off between
# two processes. Your instructor's graders go further.

# %%
run_tests("lesson22")
