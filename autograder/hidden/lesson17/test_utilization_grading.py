"""Hidden grader, lesson 17: bytes per decode step, MBU and MFU.

Oracles: the byte count of one decode step written out per sequence (weights once, each
sequence's own KV), and the definitions MBU = bytes / time / peak bandwidth (Databricks 2023)
and MFU = tokens/s x FLOPs per token / peak FLOP/s (Chowdhery et al. 2022). Shapes and counts of
the course's models are typed from their published configs (parameter counts as lesson 01
counts them).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exercises.lesson17.utilization import decode_step_bytes, mbu, mfu

H200_BW, H200_BF16 = 4.8e12, 989.4e12
LLAMA3_8B_WEIGHTS, LLAMA3_8B_KV = 2 * 8_030_261_248, 131_072  # bf16 B, B per token


@pytest.mark.points(2)
@settings(max_examples=40)
@given(weights=st.integers(0, 10**11), per_token=st.integers(0, 10**6),
       contexts=st.lists(st.integers(0, 20_000), min_size=0, max_size=16))
def test_decode_step_bytes_per_sequence(weights, per_token, contexts):
    """Bugs: the weights read once per sequence (a batch of 32 reads them 32 times); the KV of
    a batch counted from its longest (or first) context while every sequence has its own."""
    want = weights
    for n in contexts:  # one sequence at a time: its own context
        want += per_token * n
    got = decode_step_bytes(weights, per_token, contexts)
    assert got == pytest.approx(want, rel=1e-12), (
        f"decode_step_bytes({weights}, {per_token}, contexts {contexts}) = {got}, expected "
        f"{want}: the weights once plus each sequence's own KV")


@pytest.mark.points(1)
def test_mbu_of_a_batch_whose_contexts_differ():
    """Bug: weights once per sequence, or every sequence as long as the longest: the MBU of
    this batch then comes out far above its true 0.25 (or is refused as above 1)."""
    contexts = [4096, 128, 2048, 1024] * 8  # 32 sequences, 58,368 tokens of context
    step = decode_step_bytes(LLAMA3_8B_WEIGHTS, LLAMA3_8B_KV, contexts)
    assert step == pytest.approx(16_060_522_496 + 131_072 * 58_368)
    got = mbu(step, 20e-3, H200_BW)
    assert got == pytest.approx((16_060_522_496 + 131_072 * 58_368) / 20e-3 / 4.8e12)


@pytest.mark.points(1)
@settings(max_examples=40)
@given(share=st.floats(0.0, 1.0), time_s=st.floats(1e-6, 10), peak=st.floats(1e9, 1e13))
def test_mbu_and_mfu_definitions(share, time_s, peak):
    """Bugs: time multiplied instead of divided; a share in percent; peak ignored."""
    nbytes = share * time_s * peak
    assert mbu(nbytes, time_s, peak) == pytest.approx(share, rel=1e-9, abs=1e-12)
    tokens_per_s = 1.0 / time_s
    flops = share * peak / tokens_per_s
    assert mfu(tokens_per_s, flops, peak) == pytest.approx(share, rel=1e-9, abs=1e-12)


@pytest.mark.points(1)
@pytest.mark.parametrize("case", ["mbu ms as s", "mbu bits", "mfu 4 per MAC"])
def test_above_1_is_refused_in_plain_words(case):
    """Bug: the share returned inside the solution region, skipping the given check after it,
    so an MBU or MFU above 1 (a time typed in the wrong unit, bits counted as bytes, a
    multiply-add counted as 4 FLOPs) comes back as if the engine beat the hardware."""
    step = LLAMA3_8B_WEIGHTS + 2048 * LLAMA3_8B_KV
    with pytest.raises(ValueError) as err:
        if case == "mbu ms as s":
            mbu(step, 10e-6, H200_BW)  # a 10 ms TPOT passed as 10 us
        elif case == "mbu bits":
            mbu(8 * step, 20e-3, H200_BW)  # 6.5 TB/s
        else:
            mfu(40_000, 2 * LLAMA3_8B_WEIGHTS, H200_BF16)  # 1.28 PFLOP/s
    assert ("MBU" if case.startswith("mbu") else "MFU") in str(err.value), (
        f"the error must name the metric that is above 1; it says: {err.value}")
