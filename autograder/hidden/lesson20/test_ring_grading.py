"""Hidden graders, lesson 20: ring attention (simulated in one process) and the softmax merge.

The oracle is full attention written out in float64 (scores, a position mask, softmax), on
the whole sequence in the test process; the chunks are cut from it. `visited` is compared
with the ring's order: step t brings chunk (r - t) mod p, and a causal chunk that none of the
rank's queries may see is skipped.
"""

import math

import pytest
import torch

from course.testing import assert_close
from exercises.lesson20.ring_attention import merge_states, ring_attention, zigzag_positions


def _full_attention(q, k, v, causal, qpos=None, kpos=None):
    """Softmax attention in float64 over the whole sequence; positions for the mask."""
    n = q.shape[-2]
    qpos = torch.arange(n) if qpos is None else qpos
    kpos = torch.arange(n) if kpos is None else kpos
    s = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(kpos[None, :] > qpos[:, None], float("-inf"))
    return s.softmax(-1) @ v.double()


def _qkv(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g) * scale for _ in range(3))


def _sizes(n, p, order="first"):
    base, extra = divmod(n, p)
    sizes = [base + (1 if r < extra else 0) for r in range(p)]
    return sizes if order == "first" else sizes[::-1]


def _run(q, k, v, sizes, causal):
    split = lambda t: list(t.split(sizes, dim=-2))  # noqa: E731
    return ring_attention(split(q), split(k), split(v), causal)


@pytest.mark.points(4)
@pytest.mark.parametrize("causal", [True, False])
def test_ring_attention_equals_full_attention_uneven_chunks(causal):
    """Bugs: the merge without rescaling (sums against different maxima added), the causal
    triangle applied to every chunk (local indices: a past chunk half hidden) or to none, the
    diagonal chunk without its triangle, j < i instead of j <= i (a token not seeing itself),
    chunk offsets computed as r x len(chunk 0) (wrong when p does not divide the sequence),
    chunks of one length assumed. Sequences of 13 and 7 tokens over 1 to 5 ranks."""
    for n, p in [(13, 1), (13, 2), (13, 3), (13, 4), (13, 5), (7, 3)]:
        for order in ("first", "last"):
            q, k, v = _qkv((2, 3, n, 8), seed=n + p)
            sizes = _sizes(n, p, order)
            out, visited = _run(q, k, v, sizes, causal)
            expected = _full_attention(q, k, v, causal).float()
            assert len(out) == p, f"{p} ranks must give {p} output chunks, got {len(out)}"
            assert_close(torch.cat(out, -2), expected, atol=1e-5, rtol=1e-5,
                         what=f"ring attention ({'causal' if causal else 'no mask'}, {n} "
                              f"tokens in chunks {sizes})",
                         reference="full attention over the whole sequence")


@pytest.mark.points(2)
def test_ring_order_and_skipped_future_chunks():
    """Bugs: the ring turning the wrong way ((r + t) mod p), a causal chunk entirely in the
    future computed and masked instead of skipped (the work that makes the last rank the
    slowest, p times rank 0's), a skipped chunk still listed."""
    for p in range(1, 6):
        q, k, v = _qkv((1, 2, 4 * p, 4), seed=p)
        _, visited = _run(q, k, v, [4] * p, True)
        assert visited == [list(range(r, -1, -1)) for r in range(p)], (
            f"causal, {p} contiguous chunks: rank r must visit r, r-1, .., 0 (the future "
            f"skipped), got {visited}")
        _, visited = _run(q, k, v, [4] * p, False)
        assert visited == [[(r - t) % p for t in range(p)] for r in range(p)], (
            f"no mask, {p} chunks: step t brings chunk (r - t) mod p, got {visited}")


@pytest.mark.points(2)
def test_loud_scores_and_rows_that_differ():
    """Bugs: exp of the raw scores (inf / inf = NaN once scores reach the thousands), one
    maximum for the whole block instead of one per query row (rows whose scores differ by
    thousands underflow to 0 / 0)."""
    q, k, v = _qkv((1, 2, 10, 8), seed=7)
    q = q * torch.linspace(0.1, 60.0, 10)[:, None]  # rows from calm to scores in the thousands
    k = k * 20.0
    for causal in (True, False):
        out, _ = _run(q, k, v, [4, 3, 3], causal)
        assert_close(torch.cat(out, -2), _full_attention(q, k, v, causal).float(), atol=1e-4,
                     rtol=1e-4, what="ring attention with scores up to the thousands",
                     reference="full attention in float64")


@pytest.mark.points(1)
def test_bfloat16_in_bfloat16_out():
    """Bug: the result returned in float32 for bfloat16 chunks (or computed in bfloat16)."""
    q, k, v = (t.bfloat16() for t in _qkv((1, 2, 9, 16), seed=8))
    out, _ = _run(q, k, v, [5, 4], True)
    assert all(o.dtype == torch.bfloat16 for o in out), \
        f"bfloat16 chunks must give bfloat16 outputs, got {[o.dtype for o in out]}"
    assert_close(torch.cat(out, -2), _full_attention(q, k, v, True).bfloat16(), atol=2e-2,
                 rtol=2e-2, what="ring attention in bfloat16", reference="float64, rounded")


@pytest.mark.points(2)
def test_zigzag_positions_exact():
    """Bugs: pieces r and 2p - r (off by one), the remainder given to the last pieces, the
    second piece taken in reverse order, all of a rank's tokens from one piece."""
    assert [t.tolist() for t in zigzag_positions(8, 2)] == [[0, 1, 6, 7], [2, 3, 4, 5]]
    assert [t.tolist() for t in zigzag_positions(10, 2)] == [[0, 1, 2, 8, 9], [3, 4, 5, 6, 7]]
    assert [t.tolist() for t in zigzag_positions(6, 3)] == [[0, 5], [1, 4], [2, 3]]
    for n in range(4, 40):
        for p in range(1, n // 2 + 1):
            pos = zigzag_positions(n, p)
            assert sorted(torch.cat(pos).tolist()) == list(range(n)), \
                f"zigzag_positions({n}, {p}) must hold every position once"
    with pytest.raises(ValueError):
        zigzag_positions(3, 2)


@pytest.mark.points(3)
def test_ring_attention_on_zigzag_positions_is_exact_and_balanced():
    """Bugs: positions ignored (masks from contiguous chunks), masks from local indices, a
    row that sees no key of a chunk turned into NaN (exp(-inf - (-inf))): in the zig-zag
    layout rank 0's early piece sees nothing of a later rank's early piece. The balance is
    counted from the positions: with 2p dividing the length every rank has the same number
    of visible (query, key) pairs, and contiguous chunks do not."""
    n, p = 16, 4
    q, k, v = _qkv((1, 2, n, 8), seed=9)
    pos = zigzag_positions(n, p)
    out, visited = ring_attention([q[..., i, :] for i in pos], [k[..., i, :] for i in pos],
                                  [v[..., i, :] for i in pos], True, pos)
    full = _full_attention(q, k, v, True).float()
    for r in range(p):
        assert_close(out[r], full[..., pos[r], :], atol=1e-5, rtol=1e-5,
                     what=f"ring attention on zig-zag positions, rank {r} ({pos[r].tolist()})",
                     reference="full causal attention at those positions")
        assert visited[r] == [(r - t) % p for t in range(p)], (
            f"zig-zag: every rank sees part of every chunk, so rank {r} must visit all in ring "
            f"order, got {visited[r]}")
    pairs = [int((torch.cat(pos)[None, :] <= x[:, None]).sum()) for x in pos]
    assert len(set(pairs)) == 1, f"zig-zag visible pairs per rank must be equal, got {pairs}"


@pytest.mark.points(2)
def test_merge_states_empty_rows_and_inputs_unchanged():
    """Bugs: two empty states merged into NaN (no safe maximum), one maximum over all rows,
    the inputs modified in place, the merge not rescaling l."""
    m1 = torch.tensor([float("-inf"), 0.0, 500.0])
    l1 = torch.tensor([0.0, 1.0, 2.0])
    o1 = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    m2 = torch.tensor([float("-inf"), math.log(3), -500.0])
    l2 = torch.tensor([0.0, 1.0, 1.0])
    o2 = torch.tensor([[0.0, 0.0], [2.0, 2.0], [5.0, 5.0]])
    saved = [t.clone() for t in (m1, l1, o1, m2, l2, o2)]
    m, l, o = merge_states(m1, l1, o1, m2, l2, o2)
    for before, after in zip(saved, (m1, l1, o1, m2, l2, o2)):
        assert torch.equal(before, after), "merge_states must leave its inputs unchanged"
    assert torch.equal(m, torch.maximum(m1, m2)), f"merged m must be max(m1, m2), got {m}"
    assert_close(l, torch.tensor([0.0, 4 / 3, 2.0]), atol=1e-6, what="merged l",
                 reference="the rescaled sum")
    assert_close(o, torch.tensor([[0.0, 0.0], [1 / 3 + 2, 2 / 3 + 2], [3.0, 4.0]]), atol=1e-6,
                 what="merged o", reference="the rescaled sum")
