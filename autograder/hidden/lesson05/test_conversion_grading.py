"""Hidden grader, lesson 05: MHA -> GQA conversion by mean-pooling, and the KV saving.

References: a brute-force loop over groups and heads (the GQA paper's definition: each group's
K/V head is the mean of the original heads in it) and the KV-bytes formula
2 x n_layers x n_kv_heads x d_head x bytes per element.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course.config import tiny
from course.testing import assert_close
from exercises.lesson05.conversion import convert_mha_to_gqa, kv_reduction_factor


def brute_force_pool(w, n_heads, n_groups):
    d_head = w.shape[0] // n_heads
    per = n_heads // n_groups
    rows = []
    for j in range(n_groups):
        acc = torch.zeros(d_head, w.shape[1], dtype=torch.float64)
        for h in range(j * per, (j + 1) * per):
            acc += w[h * d_head:(h + 1) * d_head].double()
        rows.append(acc / per)
    return torch.cat(rows).to(w.dtype)


@pytest.mark.points(2)
@given(n_groups=st.integers(1, 4), per_group=st.integers(1, 4), d_head=st.integers(1, 5),
       d_model=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_convert_matches_brute_force_mean_pool(n_groups, per_group, d_head, d_model, seed):
    """Bugs: strided groups (heads j, j + G, ... instead of consecutive heads, which breaks
    h -> h // group); summing instead of averaging; keeping the first head of each group
    (the paper's weaker 'select one head' baseline); pooling over channels instead of heads."""
    n_heads = n_groups * per_group
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(n_heads * d_head, d_model, generator=g)
    v = torch.randn(n_heads * d_head, d_model, generator=g)
    k2, v2 = convert_mha_to_gqa(k, v, n_heads, n_groups)
    what = f"convert_mha_to_gqa({n_heads} heads -> {n_groups} groups, d_head {d_head})"
    assert_close(k2, brute_force_pool(k, n_heads, n_groups), atol=1e-5, rtol=1e-5,
                 what=what + " K", reference="a loop averaging each group's heads")
    assert_close(v2, brute_force_pool(v, n_heads, n_groups), atol=1e-5, rtol=1e-5,
                 what=what + " V", reference="a loop averaging each group's heads")


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_convert_keeps_the_dtype(dtype):
    """Bug: the mean computed in float32 (right) but returned in float32 (wrong): the docstring
    promises the weights' own dtype, and a float32 K/V projection doubles the checkpoint's
    bytes and breaks a bf16 forward."""
    g = torch.Generator().manual_seed(11)
    k = torch.randn(6 * 4, 10, generator=g).to(dtype)
    v = torch.randn(6 * 4, 10, generator=g).to(dtype)
    k2, v2 = convert_mha_to_gqa(k, v, n_heads=6, n_groups=2)
    assert k2.dtype == dtype and v2.dtype == dtype, \
        f"{dtype} weights came back {k2.dtype} and {v2.dtype}"
    assert_close(k2, brute_force_pool(k, 6, 2), atol=1e-2, rtol=1e-2,
                 what=f"convert_mha_to_gqa in {dtype} K", reference="a float64 loop")
    assert_close(v2, brute_force_pool(v, 6, 2), atol=1e-2, rtol=1e-2,
                 what=f"convert_mha_to_gqa in {dtype} V", reference="a float64 loop")


@pytest.mark.points(1)
@given(n_kv=st.sampled_from([1, 2, 4, 8]), group=st.sampled_from([1, 2, 3, 4]),
       layers=st.integers(1, 5), override=st.booleans())
def test_kv_reduction_factor_matches_kv_bytes(n_kv, group, layers, override):
    """Bugs: ignoring the ``n_kv_heads`` argument; returning the inverse ratio; a ratio of
    the query-projection widths instead of the KV bytes."""
    n_heads = n_kv * group
    cfg = tiny(n_layers=layers, d_model=16 * n_heads, n_heads=n_heads, n_kv_heads=n_kv)
    kv = 1 if override else n_kv
    bytes_mha = 2 * cfg.n_layers * cfg.n_heads * cfg.d_head * 2
    bytes_this = 2 * cfg.n_layers * kv * cfg.d_head * 2
    got = kv_reduction_factor(cfg, n_kv_heads=1) if override else kv_reduction_factor(cfg)
    assert got == bytes_mha // bytes_this, (
        f"kv_reduction_factor for {n_heads} query heads and {kv} KV heads: got {got}, expected "
        f"{bytes_mha // bytes_this} (MHA KV bytes / these KV bytes)")
