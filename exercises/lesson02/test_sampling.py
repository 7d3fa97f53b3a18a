"""Lesson 02, part 1: temperature, top-k, top-p, min-p. Run: pytest exercises/lesson02"""

import torch

from course.testing import assert_close
from exercises.lesson02.sampling import filtered_probs, sample

P = torch.tensor([0.5, 0.3, 0.15, 0.05])


def test_temperature_zero_is_argmax():
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample(logits, temperature=0.0), logits.argmax(-1))


def test_temperature_divides_the_logits():
    logits = torch.tensor([1.0, 2.0, 0.5])
    assert_close(filtered_probs(logits, temperature=0.5), torch.softmax(logits / 0.5, -1),
                 atol=1e-6, what="filtered_probs(temperature=0.5)", reference="softmax(logits / T)")


def test_top_k_top_p_min_p_on_the_docstring_distribution():
    logits = P.log()
    cases = {"top_k=3": (dict(top_k=3), [0.5, 0.3, 0.15, 0.0]),
             "top_p=0.7": (dict(top_p=0.7), [0.5, 0.3, 0.0, 0.0]),
             "top_p=0.8": (dict(top_p=0.8), [0.5, 0.3, 0.0, 0.0]),
             "min_p=0.2": (dict(min_p=0.2), [0.5, 0.3, 0.15, 0.0])}
    for name, (kw, kept) in cases.items():
        want = torch.tensor(kept) / sum(kept)
        assert_close(filtered_probs(logits, **kw), want, atol=1e-6, what=f"filtered_probs({name})",
                     reference="the renormalised kept tokens")


def test_same_generator_seed_same_tokens():
    logits = torch.zeros(4, 50)
    a = sample(logits, generator=torch.Generator().manual_seed(7))
    b = sample(logits, generator=torch.Generator().manual_seed(7))
    assert a.shape == (4,) and a.dtype == torch.int64 and torch.equal(a, b)


def test_logits_in_the_hundreds_and_temperatures_near_zero():
    # exp(310) overflows float32: subtract each row's maximum first (torch.softmax does).
    logits = torch.tensor([[310.0, 309.0, 300.0, 0.0], [2.0, 1.99, 1.0, 0.0]])
    for kw in (dict(temperature=1.0), dict(temperature=1e-3), dict(temperature=0.1, top_p=0.9)):
        got = filtered_probs(logits, **kw)
        want = torch.softmax(logits.double() / kw["temperature"], -1)
        if "top_p" in kw:  # row 0 keeps its top token only, row 1 its top two
            want = torch.tensor([[1.0, 0, 0, 0], [want[1, 0] / want[1, :2].sum(),
                                                  want[1, 1] / want[1, :2].sum(), 0, 0]])
        assert_close(got, want.float(), atol=1e-5, what=f"filtered_probs({kw}) of large logits",
                     reference="softmax in float64")
    assert torch.equal(sample(logits, temperature=1e-3, generator=torch.Generator().manual_seed(0)),
                       torch.tensor([0, 0]))


def test_each_row_of_a_batch_is_filtered_on_its_own():
    # A confident row and a flat one: a maximum or a sum over the whole batch mixes them.
    rows = torch.tensor([[5.0, 2.0, 1.5, 0.0, -1.0], [0.3, 0.2, 0.1, 0.0, -0.2]])
    for kw in (dict(min_p=0.3), dict(top_p=0.8), dict(top_k=2), dict(temperature=0.7)):
        got = filtered_probs(rows, **kw)
        for r in range(2):
            assert_close(got[r], filtered_probs(rows[r], **kw), atol=1e-6,
                         what=f"row {r} of filtered_probs({kw}) over a 2-row batch",
                         reference="the same row filtered alone")


def test_top_p_cut_off_hit_exactly():
    # Equal logits give probabilities of exactly 1/4: two tokens hold exactly 0.5, so
    # top_p=0.5 keeps two tokens, not three (the smallest set with mass >= p).
    got = filtered_probs(torch.zeros(4), top_p=0.5)
    assert int((got > 0).sum()) == 2, f"top_p=0.5 over 4 equal tokens kept {got.tolist()}"
    got = filtered_probs(torch.zeros(4), min_p=1.0)
    assert int((got > 0).sum()) == 4, "min_p=1.0 keeps every token equal to the largest"


def test_bfloat16_logits_give_float32_probabilities():
    logits = torch.tensor([3.0, 2.5, 1.0, -1.0]).bfloat16()
    got = filtered_probs(logits, temperature=0.7)
    assert got.dtype == torch.float32, f"probabilities must be float32, got {got.dtype}"
    assert_close(got, torch.softmax(logits.float() / 0.7, -1), atol=1e-6,
                 what="filtered_probs of bfloat16 logits", reference="float32 softmax")
