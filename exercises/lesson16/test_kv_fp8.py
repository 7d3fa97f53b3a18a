"""Lesson 16, part 4: an FP8 KV cache. Run: pytest exercises/lesson16"""

import torch
import torch.nn.functional as F

from course.testing import assert_close
from exercises.lesson16.kv_fp8 import fp8_kv_read, fp8_kv_write, kv_cache_bytes


def empty_cache(num_slots, n_kv, d_head):
    return (torch.zeros(num_slots, n_kv, d_head, dtype=torch.float8_e4m3fn),
            torch.zeros(num_slots, n_kv, dtype=torch.float32))


def test_write_then_read_round_trip():
    cache, scales = empty_cache(10, 2, 16)
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(0))
    x[1, 0] *= 1000.0                       # a loud token must not saturate
    fp8_kv_write(cache, scales, x, torch.tensor([7, 2, 4]))
    back = fp8_kv_read(cache, scales, torch.tensor([7, 2, 4]), torch.float32)
    assert back.shape == x.shape and back.dtype == torch.float32, \
        f"fp8_kv_read must give float32 {tuple(x.shape)}, got {back.dtype} {tuple(back.shape)}"
    bound = x.abs().amax(-1, keepdim=True) / 16
    bad = (back - x).abs() > bound
    assert not bad.any(), (
        f"{int(bad.sum())} of {bad.numel()} entries are off by more than 1/16 of their "
        f"(token, head) row's max; first at index {bad.nonzero()[0].tolist()}: each token "
        "and head needs its own scale")
    assert_close(scales[[7, 2, 4]], x.abs().amax(-1) / 448, atol=0, rtol=1e-6,
                 what="scales of the written slots", reference="amax over d_head / 448")
    assert int((scales != 0).sum()) == 6, "only the three written slots may change"


def test_attention_over_fp8_kv_is_close_and_twice_as_dense():
    gen = torch.Generator().manual_seed(1)
    n, n_kv, d = 64, 2, 128
    k, v = torch.randn(n, n_kv, d, generator=gen), torch.randn(n, n_kv, d, generator=gen)
    q = torch.randn(1, n_kv, 1, d, generator=gen)
    kc, ks = empty_cache(n, n_kv, d)
    vc, vs = empty_cache(n, n_kv, d)
    slots = torch.arange(n)
    fp8_kv_write(kc, ks, k, slots)
    fp8_kv_write(vc, vs, v, slots)
    exact = F.scaled_dot_product_attention(q, k.transpose(0, 1)[None], v.transpose(0, 1)[None])
    k8 = fp8_kv_read(kc, ks, slots, torch.float32).transpose(0, 1)[None]
    v8 = fp8_kv_read(vc, vs, slots, torch.float32).transpose(0, 1)[None]
    got = F.scaled_dot_product_attention(q, k8, v8)
    assert_close(got, exact, atol=0.05, what="attention over the fp8 KV cache",
                 reference="attention over the float32 keys and values")
    ratio = kv_cache_bytes(n, n_kv, d, fp8=False) / (kc.nbytes + ks.nbytes)
    assert ratio > 1.9, f"fp8 KV holds only {ratio:.2f}x the tokens of bf16 per byte"
