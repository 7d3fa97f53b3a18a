"""Hidden grader, lesson 04: KV bytes against published figures, the primary formula and the
bytes of real tensors.

The formula (2 x n_layers x n_kv_heads x d_head x dtype_bytes) is the one the vLLM paper
(Kwon et al. 2023, section 3) uses for OPT-13B; published configs come from course.config.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course.config import LLAMA2_7B, LLAMA3_8B, OPT_13B, SMOLLM2_135M, LlamaConfig, tiny
from exercises.lesson04.kv_arithmetic import (kv_bytes_per_token, kv_cache_bytes,
                                              max_tokens_in_budget)
from exercises.lesson04.kv_cache import KVCache

configs = st.builds(
    lambda layers, kv, group, d_head: LlamaConfig(
        name="random", n_layers=layers, d_model=kv * group * d_head, n_heads=kv * group,
        n_kv_heads=kv, d_head=d_head, d_ff=64, vocab_size=64, rope_theta=1e4, rms_eps=1e-5,
        tie_embeddings=False, max_position=64),
    st.integers(1, 96), st.integers(1, 16), st.integers(1, 8), st.sampled_from([32, 64, 80, 128]))


@pytest.mark.points(2)
def test_published_models_and_errata():
    """Bugs: counting query heads instead of KV heads (Llama-3-8B comes out 4x too big);
    forgetting the factor 2 for K and V; ignoring dtype_bytes."""
    assert kv_bytes_per_token(LLAMA2_7B, 2) == 524_288
    assert kv_bytes_per_token(LLAMA3_8B, 2) == 131_072
    assert kv_bytes_per_token(OPT_13B, 2) == 819_200
    assert kv_bytes_per_token(SMOLLM2_135M, 2) == 23_040   # 2 x 30 x 3 x 64 x 2
    assert kv_bytes_per_token(LLAMA3_8B, 1) == 65_536      # an fp8 cache halves it
    assert kv_bytes_per_token(LLAMA3_8B, 4) == 262_144
    # A 50-token answer from Llama-3-8B holds 6.55 MB of KV, not "8 KB".
    assert kv_cache_bytes(LLAMA3_8B, 1, 50, 2) == 6_553_600
    # OPT-13B, one 2048-token sequence: about 1.6 GB (vLLM paper), exactly 1.5625 GiB.
    assert kv_cache_bytes(OPT_13B, 1, 2048, 2) == 1.5625 * 2**30
    assert kv_cache_bytes(LLAMA3_8B, 32, 4096, 2) == 16 * 2**30  # 17.2 GB, not 32 GB


@pytest.mark.points(1)
@given(cfg=configs, batch=st.integers(0, 512), seq=st.integers(0, 1 << 17),
       dtype_bytes=st.sampled_from([1, 2, 4]))
def test_cache_bytes_are_linear_in_batch_and_length(cfg, batch, seq, dtype_bytes):
    """Bugs: a cache size that ignores the batch, squares the length, or adds per-sequence
    overhead."""
    per_token = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * dtype_bytes
    assert kv_bytes_per_token(cfg, dtype_bytes) == per_token
    assert kv_cache_bytes(cfg, batch, seq, dtype_bytes) == batch * seq * per_token


@pytest.mark.points(2)
@given(cfg=configs, tokens=st.integers(0, 10**6), offset=st.integers(-1, 1),
       dtype_bytes=st.sampled_from([1, 2]))
def test_max_tokens_in_budget_at_the_edges(cfg, tokens, offset, dtype_bytes):
    """Bugs: rounding up (a token that does not fit), an off-by-one at an exact multiple,
    a negative count for a negative or too-small budget."""
    per_token = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.d_head * dtype_bytes
    budget = tokens * per_token + offset
    want = max(0, budget // per_token)
    got = max_tokens_in_budget(cfg, budget, dtype_bytes)
    assert got == want, f"{budget:,} B at {per_token:,} B/token holds {want} tokens, not {got}"
    assert max_tokens_in_budget(cfg, -per_token * 3, dtype_bytes) == 0


@pytest.mark.points(1)
def test_max_tokens_is_exact_past_two_to_the_53():
    """Bug: ``int(budget_bytes / per_token)`` (float division, then truncation). Exact for
    every budget below 2**53 B (9 PB), but past it the quotient is rounded to a float first, and
    a budget one byte short of a whole number of tokens is counted as holding that whole number.
    The docstring promises exact ints; ``//`` on ints is exact at any size. Also: a float
    budget answered with a float (``budget // per_token`` without ``int``)."""
    assert max_tokens_in_budget(LLAMA3_8B, 2**60 - 1, 2) == 2**43 - 1   # 131,072 B/token
    per_token = 23_040                                                 # SmolLM2-135M, fp16
    assert kv_bytes_per_token(SMOLLM2_135M, 2) == per_token
    tokens = 10**15
    assert max_tokens_in_budget(SMOLLM2_135M, tokens * per_token - 1, 2) == tokens - 1
    assert max_tokens_in_budget(SMOLLM2_135M, tokens * per_token, 2) == tokens
    assert kv_cache_bytes(SMOLLM2_135M, 3, 10**15 + 1, 2) == 3 * (10**15 + 1) * per_token
    got = max_tokens_in_budget(LLAMA2_7B, 1.5 * 2**30, 2)  # a budget given as a float
    assert got == 3072 and isinstance(got, int), \
        f"1.5 GiB (a float) holds the int 3072 Llama-2-7B fp16 tokens, not {got!r}"


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float8_e4m3fn])
def test_formula_equals_the_bytes_of_a_real_cache(dtype):
    """Bug: a formula that disagrees with the memory a real cache takes (the independent
    reference here is the nbytes of the two tensors KVCache allocates)."""
    cfg = tiny(n_layers=3, d_model=96, n_heads=6, n_kv_heads=2)
    cache = KVCache(cfg.n_layers, 5, 37, cfg.n_kv_heads, cfg.d_head, dtype=dtype)
    real = cache.k_buffer.nbytes + cache.v_buffer.nbytes
    assert kv_cache_bytes(cfg, 5, 37, torch.tensor([], dtype=dtype).element_size()) == real
