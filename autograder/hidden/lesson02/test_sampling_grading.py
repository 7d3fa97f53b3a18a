"""Hidden grader, lesson 02: the sampling distribution, exactly and statistically.

The reference is a brute-force float64 filter written from the definitions (a Python loop
over the ranked tokens), independent of the submission. The statistical test draws many
tokens with a fixed seed and applies a chi-square test at alpha = 1e-6: a correct sampler
passes for any seed with overwhelming probability, and the fixed seed makes it repeatable.
"""

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from course.testing import assert_close
from exercises.lesson02.sampling import filtered_probs, sample


def reference_probs(logits, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """Brute force, float64, one row: returns (probs as a list, margin to the nearest cut)."""
    probs = torch.softmax(logits.double() / temperature, -1).tolist()
    ranked = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    kept = ranked if top_k is None else ranked[:top_k]
    margin = math.inf
    if top_p is not None:
        total = sum(probs[i] for i in kept)
        mass, cut = 0.0, []
        for i in kept:
            cut.append(i)
            mass += probs[i] / total
            margin = min(margin, abs(mass - top_p))
            if mass >= top_p:
                break
        kept = cut
    if min_p is not None:
        total = sum(probs[i] for i in kept)
        top = probs[kept[0]] / total
        margin = min([margin] + [abs(probs[i] / total - min_p * top) for i in kept[1:]])
        kept = [i for i in kept if probs[i] / total >= min_p * top]
    if top_k is not None and top_k < len(ranked):
        margin = min(margin, probs[ranked[top_k - 1]] - probs[ranked[top_k]])
    out = [0.0] * len(probs)
    total = sum(probs[i] for i in kept)
    for i in kept:
        out[i] = probs[i] / total
    return out, margin


settings = st.fixed_dictionaries({
    "temperature": st.sampled_from([0.3, 0.7, 1.0, 1.5]),
    "top_k": st.one_of(st.none(), st.integers(1, 12)),
    "top_p": st.one_of(st.none(), st.sampled_from([0.1, 0.5, 0.8, 0.9, 0.95, 1.0])),
    "min_p": st.one_of(st.none(), st.sampled_from([0.0, 0.05, 0.1, 0.3])),
})


@pytest.mark.points(3)
@given(kw=settings, vocab=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_filtered_probs_equal_brute_force(kw, vocab, seed):
    """Bugs: top-k keeping k-1 or k+1 tokens, top-p dropping the token that crosses the
    threshold, min-p relative to the wrong reference (an absolute threshold, or the max of
    the unfiltered distribution), temperature applied after the softmax (no effect), filters
    in another order, no renormalisation."""
    logits = torch.randn(vocab, generator=torch.Generator().manual_seed(seed)) * 2
    want, margin = reference_probs(logits, **kw)
    assume(margin > 1e-4)  # not within float32 rounding of a cut
    assert_close(filtered_probs(logits, **kw), torch.tensor(want, dtype=torch.float32),
                 atol=1e-5, what=f"filtered_probs({kw}) over {vocab} tokens",
                 reference="brute-force float64 filtering in the documented order")


@pytest.mark.points(2)
@given(vocab=st.integers(1, 60), top_p=st.floats(0.01, 1.0), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.5, 2.0, 6.0]))
def test_nucleus_is_the_smallest_prefix_reaching_top_p(vocab, top_p, seed, scale):
    """The nucleus property: the kept set is a prefix of the tokens ranked by probability,
    holds mass >= top_p, and without its least probable member would hold < top_p. Bugs: the
    crossing token dropped (mass < top_p), one token too many, an unsorted cumulative sum."""
    logits = torch.randn(2, vocab, generator=torch.Generator().manual_seed(seed)) * scale
    probs = torch.softmax(logits.double(), -1)
    got = filtered_probs(logits, top_p=top_p)
    for row in range(2):
        kept = got[row] > 0
        p = probs[row]
        mass = float(p[kept].sum())
        assert mass >= top_p - 1e-5, f"kept mass {mass:.6f} < top_p {top_p}"
        smallest = float(p[kept].min())
        assert mass - smallest < top_p + 1e-5, (
            f"kept {int(kept.sum())} tokens of mass {mass:.6f}; without the least probable "
            f"({smallest:.6f}) it still reaches top_p {top_p}: not the smallest set")
        if (~kept).any():
            assert float(p[~kept].max()) <= smallest + 1e-7, "a dropped token is more probable than a kept one"


def chi_square_critical(df, z=4.753):
    """Upper critical value of chi-square for alpha = 1e-6 (z = 4.753), Wilson-Hilferty."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


CASES = {
    "plain": dict(temperature=1.0),
    "hot with top-k": dict(temperature=1.3, top_k=5),
    "cold with top-p": dict(temperature=0.7, top_p=0.8),
    "min-p": dict(temperature=1.0, min_p=0.15),
    "all four": dict(temperature=0.9, top_k=6, top_p=0.9, min_p=0.05),
}


@pytest.mark.points(3)
@pytest.mark.parametrize("name", list(CASES))
def test_draws_follow_the_filtered_distribution(name):
    """Chi-square over 40,000 draws (seeded) against the brute-force distribution. Bugs: a
    sampler that ignores the filters or the temperature, draws from the unrenormalised
    probabilities, samples the wrong row, or emits a filtered token even once."""
    kw = CASES[name]
    logits = torch.tensor([2.0, 1.6, 1.2, 1.0, 0.7, 0.3, 0.0, -0.5, -1.0, -2.0])
    want = torch.tensor(reference_probs(logits, **kw)[0], dtype=torch.float64)
    n = 40_000
    draws = sample(logits.expand(n, -1), generator=torch.Generator().manual_seed(1234), **kw)
    assert draws.shape == (n,), f"sample returned shape {tuple(draws.shape)}, expected ({n},)"
    counts = torch.bincount(draws, minlength=len(logits)).double()
    outside = int(counts[want == 0].sum())
    assert outside == 0, f"{outside} of {n} draws were tokens the filters remove ({name}: {kw})"
    support = want > 0
    expected = want[support] * n
    stat = float(((counts[support] - expected) ** 2 / expected).sum())
    df = int(support.sum()) - 1
    if df == 0:
        return
    crit = chi_square_critical(df)
    assert stat < crit, (
        f"{name} ({kw}): chi-square {stat:.1f} with {df} degrees of freedom exceeds {crit:.1f} "
        f"(alpha 1e-6). Observed frequencies {(counts / n).tolist()}, expected {want.tolist()}")


@pytest.mark.points(1)
def test_randomness_comes_only_from_the_generator():
    """Bug: torch.multinomial without generator= (the global RNG), so seeds do nothing."""
    logits = torch.zeros(64, 1000)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = sample(logits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state), "sample() used the global random generator"
    b = sample(logits, generator=torch.Generator().manual_seed(5))
    c = sample(logits, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.points(1)
def test_edge_settings():
    """Bugs: temperature 0 that still samples (or applies filters), top_k >= vocab or top_p = 1
    or min_p = 0 that drop tokens, top_k = 1 that is not the argmax, a 1-D logits row."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 9, generator=gen)
    assert torch.equal(sample(logits, temperature=0.0, top_k=3, top_p=0.1), logits.argmax(-1))
    close_call = torch.randn(64, 9, generator=gen) * 0.1  # sampling would often miss the argmax
    assert torch.equal(sample(close_call, temperature=0.0, generator=gen), close_call.argmax(-1)), \
        "temperature 0 must return the argmax of every row, with no randomness"
    full = torch.softmax(logits, -1)
    for kw in (dict(top_k=9), dict(top_k=50), dict(top_p=1.0), dict(min_p=0.0)):
        assert_close(filtered_probs(logits, **kw), full, atol=1e-6, what=f"filtered_probs({kw})",
                     reference="the unfiltered softmax")
    one_hot = torch.nn.functional.one_hot(logits.argmax(-1), 9).float()
    assert_close(filtered_probs(logits, top_k=1), one_hot, atol=1e-6, what="top_k=1",
                 reference="all mass on the argmax")
    single = sample(logits[0], generator=gen)
    assert single.shape == () and single.dtype == torch.int64


def assert_rows_equal_brute_force(got, logits, kw, what, check_margin=True):
    """Each row of a batch against the brute-force filter of that row alone. ``check_margin``
    off: a cut between tokens whose probabilities both underflow to 0 is no cut at all."""
    assert got.shape == logits.shape and got.dtype == torch.float32, (
        f"{what}: shape {tuple(got.shape)} dtype {got.dtype}, expected {tuple(logits.shape)} "
        "torch.float32")
    for row in range(logits.shape[0]):
        want, margin = reference_probs(logits[row].double(), **kw)
        assert margin > 1e-4 or not check_margin, "test input too close to a cut (fix the test)"
        assert_close(got[row], torch.tensor(want, dtype=torch.float32), atol=1e-5,
                     what=f"{what}, row {row} of {logits.shape[0]}",
                     reference="brute-force float64 filtering of that row alone")


# Rows that differ: one confident, one flat, one in between. A threshold, maximum or sum taken
# over the whole batch instead of each row changes the result of every row but one.
ROWS = torch.tensor([[6.0, 3.0, 2.6, 2.0, 1.1, 0.0, -1.0, -2.0],
                     [0.30, 0.25, 0.12, 0.10, 0.05, 0.01, -0.10, -0.33],
                     [2.0, 1.5, 1.4, 0.4, 0.0, -0.3, -1.0, -4.0]])


@pytest.mark.points(2)
@pytest.mark.parametrize("kw", [dict(min_p=0.3), dict(top_p=0.75), dict(top_k=3),
                                dict(temperature=0.8, top_k=6, top_p=0.9, min_p=0.1),
                                dict(temperature=1.0)],
                         ids=["min_p", "top_p", "top_k", "all four", "plain"])
def test_rows_of_a_batch_are_filtered_independently(kw):
    """Bugs (rows that differ): min-p relative to the largest probability of the whole batch,
    probabilities renormalised by the sum over the whole batch (``probs / probs.sum()``), a
    top-p cumulative sum over the flattened batch. A batch of one row, or of equal rows (what
    sampling many draws at once looks like), hides all three; rows that differ do not."""
    assert_rows_equal_brute_force(filtered_probs(ROWS, **kw), ROWS, kw,
                                  f"filtered_probs({kw}) of a 3-row batch")
    draws = sample(ROWS.repeat(2, 1), generator=torch.Generator().manual_seed(0), **kw)
    assert draws.shape == (6,), f"sample of 6 rows returned shape {tuple(draws.shape)}"
    probs = filtered_probs(ROWS, **kw).repeat(2, 1)
    assert bool((probs.gather(1, draws[:, None]) > 0).all()), \
        f"sample({kw}) drew a token its own row's filters remove"


@pytest.mark.points(2)
@pytest.mark.parametrize("kw", [dict(temperature=1.0), dict(temperature=1e-3),
                                dict(temperature=0.05, top_p=0.9), dict(temperature=3.0, min_p=0.2),
                                dict(temperature=1e-4, top_k=2)],
                         ids=["logits in the hundreds", "T = 1e-3", "T = 0.05, top-p",
                              "hot, min-p", "T = 1e-4, top-k"])
def test_extreme_logits_and_temperatures(kw):
    """Bug (numerically extreme inputs): a softmax written as exp(z / T) / sum without
    subtracting the maximum overflows float32 (exp(89) is already inf) for logits in the
    hundreds or temperatures near zero: NaN probabilities, and torch.multinomial fails.
    Real models emit logits of 30-100; T = 1e-3 turns logits of 2 into 2000."""
    logits = torch.tensor([[310.0, 309.5, 305.0, 300.0, 250.0, 0.0, -40.0],
                           [2.0, 1.99, 1.5, 0.5, -1.0, -3.0, -100.0]])
    got = filtered_probs(logits, **kw)
    assert bool(torch.isfinite(got).all()), (
        f"filtered_probs({kw}) of logits in the hundreds has NaN or inf entries: "
        "subtract the row's maximum before exp (torch.softmax does)")
    assert_rows_equal_brute_force(got, logits, kw, f"filtered_probs({kw}) of extreme logits",
                                  check_margin="top_k" not in kw)
    draws = sample(logits, generator=torch.Generator().manual_seed(1), **kw)
    assert bool((got.gather(1, draws[:, None]) > 0).all()), f"sample({kw}) drew a removed token"


@pytest.mark.points(2)
def test_cut_offs_hit_exactly():
    """Bugs (exact boundaries): top-p that keeps one more token when the mass above it equals
    top_p exactly (``<=`` instead of ``<``: the nucleus is the SMALLEST set with mass >= p), or
    that drops the token whose cumulative mass lands exactly on top_p (``cumsum < p``); min-p
    that drops a token exactly at min_p x the largest probability (``>`` instead of ``>=``).
    Equal logits give probabilities 1/n exactly in float32, so these ties are exact; random
    floats never produce them. Which of several equal tokens is kept is not specified, only
    how many."""
    cases = [(4, dict(top_p=0.5), 2), (8, dict(top_p=0.75), 6), (4, dict(top_p=0.25), 1),
             (8, dict(top_p=0.625), 5), (5, dict(min_p=1.0), 5), (4, dict(top_p=1.0), 4),
             (8, dict(top_k=4, top_p=0.5), 2)]
    for vocab, kw, n_kept in cases:
        logits = torch.zeros(2, vocab)
        got = filtered_probs(logits, **kw)
        kept = (got > 0).sum(-1).tolist()
        assert kept == [n_kept, n_kept], (
            f"filtered_probs({kw}) of {vocab} equal logits (each probability exactly "
            f"1/{vocab}) kept {kept} tokens per row; the rule keeps exactly {n_kept}")
        assert_close(got[got > 0], torch.full((2 * n_kept,), 1.0 / n_kept), atol=1e-6,
                     what=f"kept probabilities for {kw}", reference=f"1/{n_kept} each")
    # min-p exactly on the threshold with unequal probabilities: [0.5, 0.25, 0.25] has
    # 0.25 = 0.5 x 0.5 exactly; both 0.25 tokens stay.
    logits = torch.tensor([[1.0, 0.0, 0.0]]) * math.log(2.0)
    base = torch.softmax(logits, -1)
    if torch.equal(base[0, 1] * 2, base[0, 0]):  # exact in this float32 build
        assert int((filtered_probs(logits, min_p=0.5) > 0).sum()) == 3, \
            "min_p=0.5 over [0.5, 0.25, 0.25] must keep the tokens exactly at the threshold"


@pytest.mark.points(1)
def test_probabilities_are_float32_for_half_precision_logits():
    """Bug (dtypes): the softmax computed in the logits' own dtype, so bf16/fp16 logits give
    bf16/fp16 probabilities (the docstring promises float32) that are off by up to 0.4%, and
    fp16 logits divided by a small temperature overflow (300 / 1e-3 > 65504)."""
    base = torch.tensor([[3.0, 2.5, 1.0, 0.25, -1.0, -2.5],  # every value exact in bf16 and fp16
                         [300.0, 298.0, 296.0, 250.0, 0.0, -8.0]])
    for dtype in (torch.bfloat16, torch.float16):
        logits = base.to(dtype)
        for kw in (dict(temperature=0.7, top_p=0.9), dict(temperature=1e-3)):
            got = filtered_probs(logits, **kw)
            assert got.dtype == torch.float32, (
                f"filtered_probs of {dtype} logits returned {got.dtype}; the docstring promises "
                "float32 probabilities (compute the softmax in float32)")
            assert_rows_equal_brute_force(got, logits, kw, f"filtered_probs({kw}) of {dtype} logits")


@pytest.mark.points(1)
def test_logits_are_left_unchanged():
    """Bug (contract): temperature applied in place (``logits = logits.float(); logits /=
    temperature`` - .float() of a float32 tensor is the same tensor), so the caller's logits
    change under it: a second sampler over the same logits sees them divided twice."""
    logits = torch.randn(3, 12, generator=torch.Generator().manual_seed(2)) * 3
    before = logits.clone()
    filtered_probs(logits, temperature=0.5, top_k=5, top_p=0.9, min_p=0.05)
    assert torch.equal(logits, before), "filtered_probs changed the logits it was given"
    sample(logits, temperature=0.5, top_p=0.9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(logits, before), "sample changed the logits it was given"
