"""Hidden grader, lesson 23: a sink cache on the real SmolLM2-135M keeps the loss close to the
full cache where a plain window of the same size does not (StreamingLLM, Xiao et al. 2024).

Teacher-forced loss (mean cross-entropy, nats per token) of the course's text
(lesson23/long_text.txt, its first L tokens) with three caches: all tokens (full), the last C
(a plain window, built from the learner's sliding_window_mask) and N_SINK sinks plus the last
C - N_SINK (built from the learner's sink_keep_indices). The loss is scored only where the
cache is already full (tokens after position C), where the first tokens have been evicted.

One forward pass with a mask per policy is exactly a streaming cache: each token's K and V
are computed once, from what that token could see when it arrived, and kept. Positions follow
StreamingLLM: a key keeps its distance to the query by PLACE IN THE CACHE, so the sinks sit
just before the window (query at place ``held - 1``, sink j at place j), not thousands of
positions back; keys in the contiguous run that ends at the query have the same distance
either way.

Measured with the reference (torch 2.13 CPU, 2026-11-30; float32; L = 192, C = 32, 4 sinks):
full 3.30, window 4.57, sink 3.63 nats per token (sinks with text positions instead: 3.63).
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import exercises.lesson23 as lesson23
from course.testing import torch_threads
from exercises.lesson23.window import sink_keep_indices, sliding_window_mask

TEXT = Path(lesson23.__file__).parent / "long_text.txt"
L, C, N_SINK = 192, 32, 4  # tokens of text, cache size in tokens, sinks
WINDOW_GAP_MIN = 0.8   # nats: window - full, measured 1.27 (margin 1.6x)
SINK_GAP_MAX = 0.7     # nats: sink - full, measured 0.34 (margin 2x)
RECOVERED_MIN = 0.5    # fraction of the window's gap the sinks win back, measured 0.74


def streaming_forward(w, cfg, ids, keep):
    """Logits [L, vocab] when token i attends to the keys in row i of keep ([L, L] bool)."""
    from course.llama_reference import apply_rope, mlp, rms_norm, rope_cos_sin

    n = len(ids)
    pos = torch.arange(n)
    future = pos[None, :] > pos[:, None]
    assert not (keep & future).any() and keep.diagonal().all(), "a cache row must be causal and hold its own token"
    dropped = ~keep & ~future
    last_drop = torch.where(dropped, pos[None, :].expand(n, n), -1).amax(1)
    early = keep & (pos[None, :] <= last_drop[:, None])  # held, but before the recent run: sinks
    assert torch.equal(early, pos[None, :] < early.sum(1, keepdim=True)), "sinks must be a prefix"
    held = keep.sum(1)
    cos, sin = rope_cos_sin(cfg, pos)
    cos_q, sin_q = rope_cos_sin(cfg, held - 1)  # the query's place in the cache
    group = cfg.n_heads // cfg.n_kv_heads
    x = w["model.embed_tokens.weight"][ids][None]
    for layer in range(cfg.n_layers):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], cfg.rms_eps)

        def heads(name, count):
            return (h @ w[p + "self_attn." + name].T).view(1, n, count, cfg.d_head).transpose(1, 2)

        q = heads("q_proj.weight", cfg.n_heads)
        k = apply_rope(heads("k_proj.weight", cfg.n_kv_heads), cos, sin).repeat_interleave(group, 1)
        v = heads("v_proj.weight", cfg.n_kv_heads).repeat_interleave(group, 1)
        by_text = apply_rope(q, cos, sin) @ k.transpose(-1, -2)
        by_place = apply_rope(q, cos_q, sin_q) @ k.transpose(-1, -2)
        scores = torch.where(early, by_place, by_text) / cfg.d_head**0.5
        attn = scores.masked_fill(~keep, float("-inf")).softmax(-1) @ v
        x = x + attn.transpose(1, 2).reshape(1, n, -1) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.rms_eps)
        x = x + mlp(w, p + "mlp.", h)
    x = rms_norm(x, w["model.norm.weight"], cfg.rms_eps)
    return x[0] @ w["lm_head.weight"].T


def nll(logits, ids):
    """Mean nats per token of the predictions made once the cache is full (positions >= C)."""
    return F.cross_entropy(logits[C:-1], ids[C + 1:]).item()


@pytest.fixture(scope="module")
def losses():
    from course.llama_reference import llama_forward
    from course.model import load_config, load_tokenizer, load_weights

    torch.manual_seed(0)
    cfg, w = load_config(), load_weights()
    ids = torch.tensor(load_tokenizer().encode(TEXT.read_text()))[:L]
    assert len(ids) == L, f"the text must have at least {L} tokens"
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    window = sliding_window_mask(L, L, C)
    sink = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):  # row i: what a sink cache holds after token i arrived
        sink[i, sink_keep_indices(i + 1, N_SINK, C - N_SINK)] = True
    with torch.no_grad(), torch_threads(1):  # one thread: faster on a busy 2-core machine
        # The grader's forward must be the model's forward when nothing is evicted.
        head = streaming_forward(w, cfg, ids[:48], causal[:48, :48])
        reference = llama_forward(w, cfg, ids[None, :48])[0]
        assert (head - reference).abs().max().item() < 1e-3, "streaming_forward drifted"
        full = streaming_forward(w, cfg, ids, causal)
        return {"full": nll(full, ids), "window": nll(streaming_forward(w, cfg, ids, window), ids),
                "sink": nll(streaming_forward(w, cfg, ids, sink), ids)}


@pytest.mark.model
@pytest.mark.points(2)
def test_plain_window_loses_the_first_tokens(losses):
    """Bugs: a window mask that keeps more than the last C keys (the window ignored, or
    counted from the start of the text), so nothing is evicted. A plain window of C tokens
    must cost at least WINDOW_GAP_MIN nats per token over the full cache on this text."""
    gap = losses["window"] - losses["full"]
    assert gap >= WINDOW_GAP_MIN, (
        f"plain window of {C}: {losses['window']:.3f} nats/token vs full cache "
        f"{losses['full']:.3f}; a gap of at least {WINDOW_GAP_MIN} expected (the reference: 1.27)")


@pytest.mark.model
@pytest.mark.points(3)
def test_sink_cache_stays_close_to_the_full_cache(losses):
    """Bugs: sinks evicted once the window wraps (the sink cache becomes a plain window), or a
    window one token short. With N_SINK sinks and C - N_SINK recent tokens, the loss must be
    within SINK_GAP_MAX nats of the full cache and win back RECOVERED_MIN of the window's gap."""
    gap = losses["sink"] - losses["full"]
    recovered = (losses["window"] - losses["sink"]) / (losses["window"] - losses["full"])
    assert gap <= SINK_GAP_MAX and recovered >= RECOVERED_MIN, (
        f"sink cache ({N_SINK} sinks + {C - N_SINK} recent): {losses['sink']:.3f} nats/token, full "
        f"{losses['full']:.3f}, plain window {losses['window']:.3f}; expected within "
        f"{SINK_GAP_MAX} of full and at least {RECOVERED_MIN:.0%} of the window's gap won back "
        f"(got {recovered:.0%})")
