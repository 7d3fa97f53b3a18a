"""Hidden grader, lesson 04: the preallocated cache - contents against a torch.cat oracle, and
no reallocation (data pointers and AllocationCounter)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.counting import AllocationCounter
from exercises.lesson04.kv_cache import KVCache


@pytest.mark.points(2)
@settings(max_examples=40)
@given(chunks=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 9)), min_size=1, max_size=12),
       batch=st.integers(1, 3), max_batch_extra=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_contents_equal_a_concatenation(chunks, batch, max_batch_extra, seed):
    """Bugs: append that overwrites from position 0, does not advance the length, writes the
    wrong layer, or returns wrong positions; get that returns the whole max_seq buffer or
    every max_batch row instead of the filled part."""
    gen = torch.Generator().manual_seed(seed)
    cache = KVCache(3, batch + max_batch_extra, 60, 2, 4)
    want = {layer: ([], []) for layer in range(3)}
    for layer, n in chunks:
        k, v = torch.randn(batch, 2, n, 4, generator=gen), torch.randn(batch, 2, n, 4, generator=gen)
        before = sum(t.shape[2] for t in want[layer][0])
        pos = cache.append(layer, k, v)
        assert torch.equal(torch.as_tensor(pos), torch.arange(before, before + n)), \
            f"append of {n} tokens to layer {layer} holding {before} returned {pos}"
        want[layer][0].append(k)
        want[layer][1].append(v)
    for layer, (ks, vs) in want.items():
        k, v = cache.get(layer)
        n = sum(t.shape[2] for t in ks)
        assert cache.length(layer) == n
        if not ks:
            assert k.shape[2] == 0 and v.shape[2] == 0
            continue
        assert k.shape == (batch, 2, n, 4), f"get({layer}) has shape {tuple(k.shape)}"
        assert torch.equal(k, torch.cat(ks, 2)) and torch.equal(v, torch.cat(vs, 2)), \
            f"layer {layer}: get() differs from the concatenation of what was appended"


@pytest.mark.points(2)
def test_append_never_reallocates_and_get_never_copies():
    """Bugs: append implemented with torch.cat or a fresh buffer (O(tokens cached) memory
    traffic and allocation per step), get returning .clone() or .contiguous() copies."""
    max_seq = 4096
    cache = KVCache(2, 2, max_seq, 4, 16, dtype=torch.float16)
    k_ptr, v_ptr = cache.k_buffer.data_ptr(), cache.v_buffer.data_ptr()
    cache.append(0, torch.randn(2, 4, 1000, 16).half(), torch.randn(2, 4, 1000, 16).half())
    step_bytes = 2 * 2 * 4 * 16 * 2  # one token's k and v for the batch
    with AllocationCounter() as counter:
        for _ in range(5):
            cache.append(0, torch.zeros(2, 4, 1, 16, dtype=torch.float16),
                         torch.zeros(2, 4, 1, 16, dtype=torch.float16))
            k, v = cache.get(0)
    assert counter.total_bytes <= 5 * (2 * step_bytes + 256), (
        f"5 one-token appends and gets allocated {counter.total_bytes:,} B; the K buffer of one "
        f"layer alone is {cache.k_buffer[0].nbytes:,} B. Copy into a slice of the buffers, "
        f"return views.\n{counter.report()}")
    assert cache.k_buffer.data_ptr() == k_ptr and cache.v_buffer.data_ptr() == v_ptr, \
        "append replaced the preallocated buffers"
    assert k.untyped_storage().data_ptr() == k_ptr and v.untyped_storage().data_ptr() == v_ptr, \
        "get must return views of k_buffer and v_buffer"
    k[0, 0, 0, 0] = 7.0
    assert cache.get(0)[0][0, 0, 0, 0] == 7.0, "writing into get()'s view must write the cache"
