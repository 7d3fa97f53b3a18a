"""Assertions for the course's tests that explain a mismatch in plain words.

A learner reads these messages, so they say what was expected first (shape, dtype), then
how wrong the result is (how many entries, the largest error, the first bad index), and
what the reference was ("dense SDPA over the same tokens").
"""

from __future__ import annotations

import contextlib

import torch


def assert_close(actual, expected: torch.Tensor, *, atol: float, rtol: float = 0.0,
                 what: str = "result", reference: str = "the reference") -> None:
    """Fail with a readable message unless ``actual`` matches ``expected`` elementwise.

    ``|actual - expected| <= atol + rtol * |expected|`` everywhere, same shape and dtype.
    """
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(actual).__name__}")
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)}, expected "
                             f"{tuple(expected.shape)} (as {reference})")
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{what}: dtype {actual.dtype}, expected {expected.dtype}")
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    finite_a, finite_e = torch.isfinite(a), torch.isfinite(e)
    if not torch.equal(finite_a, finite_e):
        bad = (finite_a != finite_e).nonzero()[0].tolist()
        raise AssertionError(f"{what}: {int((~finite_a).sum())} non-finite entries (NaN or "
                             f"inf) where {reference} has finite values; first at index {bad}")
    err = (a - e).abs().where(finite_e, torch.zeros((), dtype=a.dtype))
    bound = atol + rtol * e.abs().where(finite_e, torch.zeros((), dtype=a.dtype))
    wrong = err > bound
    if wrong.any():
        first = wrong.nonzero()[0].tolist()
        raise AssertionError(
            f"{what} differs from {reference}: {int(wrong.sum())} of {wrong.numel()} entries "
            f"wrong, max abs error {err.max().item():.3g} (allowed {atol:g} + {rtol:g}*|ref|); "
            f"first bad index {first}: got {a[tuple(first)].item():.6g}, expected "
            f"{e[tuple(first)].item():.6g}")


def describe_calls(calls: list[str], limit: int = 30) -> str:
    """A numbered list of the calls that led to a broken invariant (last ``limit`` shown)."""
    shown = calls[-limit:]
    start = len(calls) - len(shown)
    return "\n".join(f"  {start + i + 1}. {c}" for i, c in enumerate(shown))


# Two float32 forward passes that batch the same positions differently (a cached decode against
# one pass over the whole sequence) differ in their last bits; where two tokens' logits are that
# close, either is a correct greedy choice. Below this gap, in logits, a token counts as a tie.
GREEDY_TIE_LOGITS = 1e-3


def is_greedy_continuation(model, prompt: list[int], tokens: list[int], *,
                           tie: float = GREEDY_TIE_LOGITS) -> bool:
    """True when every token of ``tokens`` is the argmax, within ``tie`` logits, of ``model``'s
    logits given ``prompt`` and the earlier tokens (one teacher-forced pass of an HF causal LM).

    Use it where a test compares a greedy decode with a reference decode and they differ: a
    near-tie on another CPU or maths library may flip a token without any bug, and this tells
    such a flip from a real error (a dropped, repeated or misplaced token is far from the argmax).
    """
    if not tokens:
        return True
    seq = torch.tensor([list(prompt) + list(tokens)])
    with torch.no_grad():
        logits = model(seq).logits[0, len(prompt) - 1:-1].float()
    picked = logits[torch.arange(len(tokens)), torch.tensor(tokens)]
    return bool((picked >= logits.amax(dim=-1) - tie).all())


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` intra-op torch threads, then restore the previous count. Tests that
    make thousands of calls on tiny tensors run faster on one thread (a busy 2-core machine ran
    them several times slower with two); the answers do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
