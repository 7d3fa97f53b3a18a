"""Hidden grader, lesson 12, kernel track: the split-KV paged decode kernel in Triton.

Runs on CPU tensors in Triton's interpreter when there is no GPU (compiled on a GPU).
Correctness is checked against dense softmax attention over each sequence's own tokens, K/V
heads expanded with repeat_interleave (``course.paged.dense_decode_reference``: an
independent path). Every slot that no sequence owns holds garbage of magnitude 1e4, so a
read past ``context_lens`` or from the wrong block shows.
"""

from course.triton_track import import_triton, kernel_device

triton = import_triton()
DEVICE = kernel_device()

import pytest  # noqa: E402
import torch  # noqa: E402

from course.paged import dense_decode_reference, make_paged_case  # noqa: E402
from course.testing import assert_close  # noqa: E402
from exercises.lesson12.triton_paged import paged_decode_triton  # noqa: E402

REFERENCE = "dense softmax attention over each sequence's own tokens (float32)"
TOL = dict(atol=2e-5, rtol=2e-5)


def _case(lengths, n_heads, n_kv_heads, d_head=16, block_size=4, **kw):
    return make_paged_case(lengths, n_heads, n_kv_heads, d_head, block_size, device=DEVICE,
                           **kw)


def _run(case, **kw):
    return paged_decode_triton(case.q, case.k_cache, case.v_cache, case.block_tables,
                               case.context_lens, **kw)


def _check(case, what, tol=TOL, scale=None, **kw):
    if scale is not None:
        kw["scale"] = scale
    assert_close(_run(case, **kw), dense_decode_reference(case, scale=scale), **tol,
                 what=what, reference=REFERENCE)


@pytest.mark.points(2)
@pytest.mark.parametrize("lengths,n_heads,n_kv,d_head,block_size,block_n,seed", [
    ([37, 5, 64], 4, 2, 24, 3, 16, 11),   # a block size that is not a power of two, d 24
    ([90, 1], 8, 8, 32, 16, 32, 12),
    ([33, 50, 2, 19], 6, 2, 8, 1, 16, 13),  # one token per block: every token its own id
])
def test_random_layouts(lengths, n_heads, n_kv, d_head, block_size, block_n, seed):
    """Bugs: indexing the cache by logical instead of physical block, offsets built with the
    wrong stride, d_head not a power of two left unmasked, a block size the kernel assumes."""
    case = _case(lengths, n_heads, n_kv, d_head=d_head, block_size=block_size, seed=seed)
    _check(case, f"paged_decode_triton, lengths {lengths}, block_size {block_size}, d_head "
                 f"{d_head}, block_n {block_n}", block_n=block_n)


@pytest.mark.points(2)
def test_tile_boundaries():
    """Bug: the token mask `tokens <= end` (or a tile bound one past the end): lengths of
    exactly 16 and 32 tokens and one either side read a garbage slot or drop the last token."""
    case = _case([15, 16, 17, 31, 32, 33], 4, 2, block_size=8, seed=21)
    _check(case, "paged_decode_triton at lengths 15, 16, 17, 31, 32, 33 with block_n 16",
           block_n=16, num_splits=1)


@pytest.mark.points(2)
def test_running_max_rescales_earlier_tiles():
    """Bug: the accumulator (or the sum l) not multiplied by 2^(m_old - m_new) when a later
    tile raises the running maximum: one split walks 6 tiles of random scores."""
    case = _case([96, 81], 4, 1, seed=22)
    case.q *= 4  # scores of a few units: the running max moves between tiles
    _check(case, "paged_decode_triton, one split of 6 tiles", block_n=16, num_splits=1)


@pytest.mark.points(2)
@pytest.mark.parametrize("n_heads,n_kv", [(8, 2), (12, 4), (6, 3)])
def test_query_heads_read_their_kv_head(n_heads, n_kv):
    """Bug: the group-to-KV-head mapping: query head h must read KV head h // group (the
    rows of a program are heads kv_head * group ... kv_head * group + group - 1), not
    h % n_kv_heads, and rows past the group must be masked."""
    case = _case([21, 9], n_heads, n_kv, seed=23)
    _check(case, f"paged_decode_triton, {n_heads} query heads over {n_kv} KV heads",
           block_n=16, num_splits=2)


@pytest.mark.points(2)
def test_each_sequence_reads_its_own_table_row():
    """Bug: the block ids taken from the wrong row of block_tables (row 0, or the KV head's
    row): three sequences of the same length in different blocks."""
    case = _case([24, 24, 24], 4, 2, seed=24)
    _check(case, "paged_decode_triton, three sequences of 24 tokens", block_n=16)


@pytest.mark.points(2)
@pytest.mark.parametrize("num_splits", [2, 5])
def test_splits_merge_with_empty_ones(num_splits):
    """Bugs: merging the splits' partials by a plain mean, with exp instead of exp2 of a
    base-2 log-sum-exp, NaN from an empty split (lse = -inf) or from a sequence of length 0
    (every split empty must give 0, not 0/0)."""
    case = _case([0, 3, 70, 130, 1], 4, 1, seed=25)
    got = _run(case, num_splits=num_splits, block_n=16)
    assert torch.equal(got[0], torch.zeros_like(got[0])), (
        f"a sequence of length 0 must give zeros, got {got[0].flatten()[:4].tolist()}...")
    assert_close(got, dense_decode_reference(case), **TOL,
                 what=f"paged_decode_triton(num_splits={num_splits}), lengths 0, 3, 70, 130, 1",
                 reference=REFERENCE)


@pytest.mark.points(1)
def test_huge_scores_stay_finite():
    """Bug: exp (or exp2) of raw scores without subtracting the running maximum: scores of
    about 1e4 overflow float32 to inf, then NaN."""
    case = _case([40, 9], 4, 2, seed=26)
    case.q *= 4e3
    got = _run(case, block_n=16, num_splits=2)
    assert torch.isfinite(got).all(), "inf or NaN in the output at scores of about 1e4"
    assert_close(got, dense_decode_reference(case), atol=1e-3, rtol=1e-3,
                 what="paged_decode_triton at scores of about 1e4", reference=REFERENCE)


@pytest.mark.points(1)
def test_custom_scale_is_used_once():
    """Bugs: the scale ignored (always 1/sqrt(d_head)), or applied twice (to q and to the
    scores), or log2(e) left out of the exp2 path."""
    case = _case([19, 6], 4, 2, seed=27)
    _check(case, "paged_decode_triton(scale=0.3)", scale=0.3, block_n=16)


@pytest.mark.points(1)
def test_bfloat16_and_padding_entries():
    """Bugs: a result in float32 for bf16 inputs; reading the padding entries of the block
    table (here they point at another sequence's block)."""
    case = _case([3, 40], 4, 2, dtype=torch.bfloat16, seed=28)
    case.block_tables[0, 1:] = case.block_tables[1, 0]
    got = _run(case, block_n=16, num_splits=2)
    assert got.dtype == torch.bfloat16, f"expected bfloat16 out, got {got.dtype}"
    assert_close(got, dense_decode_reference(case), atol=2e-2, rtol=2e-2,
                 what="paged_decode_triton in bfloat16, padded table", reference=REFERENCE)


@pytest.mark.points(1)
def test_bad_inputs_raise_in_plain_words():
    """Bug: a wrapper that launches on inputs the kernel cannot take. After a valid call,
    a wrong-shaped table, a length past the table, float lengths or mixed dtypes must raise
    ValueError before any launch, with validate=True (the default on the CPU; on a GPU it
    costs a device sync)."""
    case = _case([5, 8], 4, 2, seed=29)
    _run(case)
    bad = [
        dict(block_tables=case.block_tables[:1]),
        dict(context_lens=torch.tensor([5, 10_000], dtype=torch.int32, device=DEVICE)),
        dict(context_lens=case.context_lens.float()),
        dict(k_cache=case.k_cache.half()),
    ]
    for change in bad:
        args = dict(q=case.q, k_cache=case.k_cache, v_cache=case.v_cache,
                    block_tables=case.block_tables, context_lens=case.context_lens)
        args.update(change)
        with pytest.raises(ValueError):
            paged_decode_triton(**args, validate=True)
