"""Lesson 17, part 2: bytes per decode step, MBU and MFU. Run: pytest exercises/lesson17

Expected values are written out as arithmetic on the models' published shapes (parameter counts
from lesson 01, KV bytes per token from lesson 04) and the H200 datasheet (4.8 TB/s, 989.4
TFLOP/s dense BF16).
"""

import pytest

from exercises.lesson17.utilization import decode_step_bytes, mbu, mfu

H200_BW, H200_BF16 = 4.8e12, 989.4e12
LLAMA3_8B_PARAMS, LLAMA3_8B_KV = 8_030_261_248, 131_072  # B per token, bf16
SMOLLM2_PARAMS, SMOLLM2_KV = 134_515_008, 23_040


def test_bytes_of_a_batch_read_the_weights_once():
    assert decode_step_bytes(1e9, 1000, [100, 300]) == pytest.approx(1e9 + 1000 * 400)
    assert decode_step_bytes(1e9, 1000, []) == pytest.approx(1e9)


def test_mbu_of_llama3_8b_at_batch_1():
    # bf16 weights 2 x 8,030,261,248 B plus 2048 tokens of KV, read in a TPOT of 10 ms
    step = decode_step_bytes(2 * LLAMA3_8B_PARAMS, LLAMA3_8B_KV, [2048])
    assert step == pytest.approx(16_060_522_496 + 268_435_456)
    assert mbu(step, 10e-3, H200_BW) == pytest.approx(16_328_957_952 / 10e-3 / 4.8e12)


def test_mbu_above_1_is_a_miscount():
    step = decode_step_bytes(2 * SMOLLM2_PARAMS, SMOLLM2_KV, [1024])
    assert mbu(step, 1e-3, H200_BW) == pytest.approx(step / 1e-3 / H200_BW)
    with pytest.raises(ValueError, match="MBU"):
        mbu(step, 1e-6, H200_BW)  # 1 ms typed as 1 us: 290 TB/s
    assert mbu(4.8e12, 1.0, H200_BW) == pytest.approx(1.0)  # exactly the peak is allowed


def test_mfu():
    # 1000 tokens/s of Llama-3-8B at about 2 x params FLOPs per token
    got = mfu(1000, 2 * LLAMA3_8B_PARAMS, H200_BF16)
    assert got == pytest.approx(1000 * 16_060_522_496 / 989.4e12)
    with pytest.raises(ValueError, match="MFU"):
        mfu(1e6, 2 * LLAMA3_8B_PARAMS, H200_BF16)  # 16 PFLOP/s on a 1 PFLOP/s GPU
