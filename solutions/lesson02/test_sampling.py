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
