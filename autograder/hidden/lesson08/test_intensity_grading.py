"""Hidden grader, lesson 08: FLOPs, bytes and intensity of matmul, attention, elementwise chains.

References independent of the code under test: torch's FLOP counter on real ops
(course.counting.count_flops), course.traffic.count_traffic on the real eager ops (the bytes
each aten op reads and writes), the sizes of the tensors, and formulas written out here.
"""

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from course.counting import count_flops
from course.traffic import count_traffic
from exercises.lesson08.intensity import attention_cost, elementwise_cost, matmul_cost

ELEMENT = st.sampled_from([0.5, 1, 2, 4])


@pytest.mark.points(2)
@settings(max_examples=40)
@example(M=1, K=64, N=32, a=2, b=0.5, c=2)
@example(M=3, K=5, N=7, a=1, b=1, c=2)
@given(M=st.integers(1, 300), K=st.integers(1, 300), N=st.integers(1, 300), a=ELEMENT,
       b=ELEMENT, c=ELEMENT)
def test_matmul_cost_any_shape_and_element_sizes(M, K, N, a, b, c):
    """Bugs: M K N FLOPs (a multiply-add is 2); A's element size used for B (4-bit weights with
    bf16 activations); ``c_bytes`` ignored (an fp8 matmul with a bf16 output); the output read
    as well as written; an operand's size taken as M N instead of M K or K N."""
    cost = matmul_cost(M, K, N, a, b, c)
    assert cost.flops == 2 * M * K * N, f"matmul_cost({M}, {K}, {N}).flops = {cost.flops}"
    want = M * K * a + K * N * b + M * N * c
    assert cost.bytes == pytest.approx(want, rel=1e-12), (
        f"matmul_cost({M}, {K}, {N}, a_bytes={a}, b_bytes={b}, c_bytes={c}).bytes = "
        f"{cost.bytes}; A read once ({M * K * a}) + B read once ({K * N * b}) + C written once "
        f"({M * N * c}) = {want}")
    assert cost.intensity == pytest.approx(2 * M * K * N / want, rel=1e-12)


@pytest.mark.points(1)
def test_matmul_flops_equal_torch_counter_and_bytes_equal_tensor_sizes():
    """Bug: a FLOP count that disagrees with torch's own counter on a real matmul, or bytes
    that are not the sizes of A, B and C."""
    for M, K, N in [(1, 17, 9), (6, 4, 11), (13, 1, 2)]:
        a, b = torch.randn(M, K), torch.randn(K, N).bfloat16()
        cost = matmul_cost(M, K, N, 4, 2, 4)
        assert cost.flops == count_flops(torch.mm, a, b.float())
        assert cost.bytes == a.nbytes + b.nbytes + (a @ b.float()).nbytes


@pytest.mark.points(1)
def test_gemv_and_prefill_identities():
    """Bugs seen through the two limits the lesson derives: the decode GEMV at 16 bits must
    tend to 1 FLOP/byte from below (2 d^2 / (2 d^2 + 4 d)), and S tokens through a d x d weight
    must give S d / (2 S + d)."""
    for d in (64, 1000, 4096, 30000):
        assert matmul_cost(1, d, d, 2, 2, 2).intensity == pytest.approx(d / (d + 2), rel=1e-12)
    previous = 0.0
    for K, N in [(4096, 14336), (16384, 53248), (65536, 262144)]:  # 2KN / (2K + 2KN + 2N)
        ai = matmul_cost(1, K, N, 2, 2, 2).intensity
        assert ai == pytest.approx(K * N / (K + K * N + N), rel=1e-12) and previous < ai < 1
        previous = ai
    for S, d in [(1, 512), (7, 512), (345, 4096), (4096, 4096), (100000, 128)]:
        assert matmul_cost(S, d, d, 2, 2, 2).intensity == pytest.approx(S * d / (2 * S + d),
                                                                        rel=1e-12)


def _attention_tensors(batch, heads, q_len, kv_len, d_head, dtype):
    g = torch.Generator().manual_seed(batch * 1000 + q_len * 10 + kv_len)
    q = torch.randn(batch, heads, q_len, d_head, generator=g).to(dtype)
    k = torch.randn(batch, heads, kv_len, d_head, generator=g).to(dtype)
    v = torch.randn(batch, heads, kv_len, d_head, generator=g).to(dtype)
    return q, k, v


@pytest.mark.points(3)
@settings(max_examples=25)
@example(batch=1, heads=2, q_len=1, kv_len=9, d_head=8, bf16=True)
@example(batch=2, heads=1, q_len=5, kv_len=3, d_head=4, bf16=False)
@given(batch=st.integers(1, 3), heads=st.integers(1, 4), q_len=st.integers(1, 6),
       kv_len=st.integers(1, 9), d_head=st.integers(1, 16), bf16=st.booleans())
def test_attention_cost_against_the_real_ops(batch, heads, q_len, kv_len, d_head, bf16):
    """Bugs: the score matrix counted once (written) instead of four times (S written and read,
    P written and read); K and V sized with q_len (hidden when q_len == kv_len, exposed by
    decode); heads or batch left out; the fused kernel still charged for S; FLOPs of one matrix
    product only."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    q, k, v = _attention_tensors(batch, heads, q_len, kv_len, d_head, dtype)
    chain = lambda: torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v  # noqa: E731
    size = q.element_size()
    fused = attention_cost(batch, heads, q_len, kv_len, d_head, size, fused=True)
    unfused = attention_cost(batch, heads, q_len, kv_len, d_head, size, fused=False)
    assert fused.flops == unfused.flops == count_flops(chain), (
        f"attention FLOPs {fused.flops} / {unfused.flops}; torch counts {count_flops(chain)}")
    assert fused.bytes == q.nbytes + k.nbytes + v.nbytes + q.nbytes, (
        f"fused attention bytes {fused.bytes}: Q {q.nbytes} + K {k.nbytes} + V {v.nbytes} + "
        f"O {q.nbytes} expected")
    traffic = count_traffic(chain)
    assert unfused.bytes == traffic.total_bytes, (
        f"unfused attention bytes {unfused.bytes}; the three eager kernels moved "
        f"{traffic.total_bytes}:\n{traffic.report()}")


@pytest.mark.points(1)
def test_attention_worked_numbers():
    """Bug: the lesson's worked example (4096 tokens, 32 heads of 128, bf16) wrong: fused 2048
    FLOP/byte (S / 2), unfused S d / (2 d + 2 S) = 62.06; decode near 1 either way."""
    assert attention_cost(1, 32, 4096, 4096, 128, 2, fused=True).intensity == 2048
    assert attention_cost(1, 32, 4096, 4096, 128, 2, fused=False).intensity == pytest.approx(
        4096 * 128 / (2 * 128 + 2 * 4096))
    decode = attention_cost(8, 32, 1, 4096, 128, 2, fused=True)
    assert decode.intensity == pytest.approx(4 * 4096 * 128 / (2 * (2 * 128 + 2 * 4096 * 128)))


def _run_chain(operands, numel, seed):
    """A real chain: one op per entry (neg, mul, addcmul for 1, 2, 3 operands), each later op
    taking the previous result first."""
    g = torch.Generator().manual_seed(seed)
    fresh = lambda: torch.randn(numel, generator=g)  # noqa: E731
    first = [fresh() for _ in range(operands[0])]
    rest = [[fresh() for _ in range(n - 1)] for n in operands[1:]]
    apply = {1: torch.neg, 2: torch.mul, 3: torch.addcmul}

    def chain():
        y = apply[operands[0]](*first)
        for n, extra in zip(operands[1:], rest):
            y = apply[n](y, *extra)
        return y

    inputs = len(first) + sum(map(len, rest))
    return chain, inputs


@pytest.mark.points(2)
@settings(max_examples=25)
@example(operands=[1], numel=5)
@example(operands=[3, 1, 2], numel=4)
@example(operands=[2, 2, 1, 1], numel=3)
@given(operands=st.lists(st.integers(1, 3), min_size=1, max_size=6), numel=st.integers(1, 50))
def test_elementwise_chains_against_the_real_ops(operands, numel):
    """Bugs: the first operator's operands not all counted as inputs of the fused chain (one
    input short: ``sum(n - 1 for every op)``); an unfused operator charged for its result only
    or its operands only; fused bytes that grow with the number of operators; FLOPs per
    operand instead of per operator."""
    chain, n_inputs = _run_chain(operands, numel, seed=len(operands) * 100 + numel)
    traffic = count_traffic(chain)
    unfused = elementwise_cost(numel, operands, 4, fused=False)
    assert unfused.bytes == traffic.total_bytes, (
        f"elementwise_cost({numel}, {operands}, 4, fused=False).bytes = {unfused.bytes}; "
        f"the eager ops moved {traffic.total_bytes}:\n{traffic.report()}")
    fused = elementwise_cost(numel, operands, 4, fused=True)
    assert fused.bytes == (n_inputs + 1) * numel * 4, (
        f"elementwise_cost({numel}, {operands}, 4, fused=True).bytes = {fused.bytes}; "
        f"{n_inputs} inputs read once and one output written: {(n_inputs + 1) * numel * 4}")
    assert fused.flops == unfused.flops == len(operands) * numel
    half = elementwise_cost(numel, operands, 2, fused=True)
    assert half.bytes == fused.bytes / 2, "bytes must scale with dtype_bytes"
