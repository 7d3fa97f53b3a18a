"""The rejection rule of speculative sampling (Leviathan et al. 2023; Chen et al. 2023).

A cheap draft proposed ``gamma`` tokens, token ``i`` drawn from ``p_draft[i]``; one run of the
target scored every prefix, so ``p_target[i]`` is the target's distribution at draft position
``i`` and ``p_target[gamma]`` the one after all ``gamma`` drafts. Going left to right, draft
token ``x = draft_tokens[i]`` is accepted with probability ``min(1, p_target[i, x] /
p_draft[i, x])``. At the first rejection the step ends with one token drawn from the residual
``norm(max(0, p_target[i] - p_draft[i]))``; if all ``gamma`` are accepted it ends with a bonus
token drawn from ``p_target[gamma]``. Every emitted token is then distributed exactly as the
target alone would have drawn it, and a step emits between 1 and ``gamma + 1`` tokens.

Layout: one sequence, positions on the first axis. ``p_draft: [gamma, vocab]``, ``p_target:
[gamma + 1, vocab]``, ``draft_tokens: [gamma]`` int64. Probabilities are float rows that sum
to 1.

Read: learning/lesson14.md#the-rejection-rule
"""

from __future__ import annotations

import torch

SUM_TOLERANCE = 1e-3  # a row of probabilities may miss 1 by this much (float32 softmax, fp16)


def check_accept_inputs(p_draft: torch.Tensor, p_target: torch.Tensor,
                        draft_tokens: torch.Tensor) -> None:
    """Raise ValueError, in plain words, for inputs the rejection rule cannot use."""
    if p_draft.dim() != 2 or p_target.dim() != 2 or draft_tokens.dim() != 1:
        raise ValueError("p_draft must be [gamma, vocab], p_target [gamma + 1, vocab] and "
                         f"draft_tokens [gamma]; got shapes {tuple(p_draft.shape)}, "
                         f"{tuple(p_target.shape)}, {tuple(draft_tokens.shape)}")
    gamma, vocab = p_draft.shape
    if gamma == 0:
        raise ValueError("gamma is 0: there is no draft token to verify (plain decoding "
                         "samples from p_target directly)")
    if tuple(p_target.shape) != (gamma + 1, vocab) or draft_tokens.shape[0] != gamma:
        raise ValueError(f"with p_draft {tuple(p_draft.shape)} (gamma={gamma}), p_target must "
                         f"be {(gamma + 1, vocab)} and draft_tokens {(gamma,)}; got "
                         f"{tuple(p_target.shape)} and {tuple(draft_tokens.shape)}")
    if draft_tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"draft_tokens must be int64 token ids, got {draft_tokens.dtype}")
    if not p_draft.is_floating_point() or not p_target.is_floating_point():
        raise ValueError(f"probabilities must be float tensors; got {p_draft.dtype} and "
                         f"{p_target.dtype}")
    if bool(((draft_tokens < 0) | (draft_tokens >= vocab)).any()):
        raise ValueError(f"draft_tokens {draft_tokens.tolist()} are not all in [0, {vocab})")
    for name, p in (("p_draft", p_draft), ("p_target", p_target)):
        sums = p.double().sum(-1)
        bad = ~(sums - 1).abs().le(SUM_TOLERANCE) | (p < 0).any(-1)  # NaN sums count as bad
        if bool(bad.any()):
            row = int(bad.nonzero()[0])
            raise ValueError(f"{name} rows must be probabilities (no negative entries, summing "
                             f"to 1; not logits): row {row} sums to {sums[row].item():.6g}")
    picked = p_draft.gather(1, draft_tokens.long()[:, None])[:, 0]
    if bool((picked <= 0).any()):
        i = int((picked <= 0).nonzero()[0])
        raise ValueError(f"draft token {i} (id {int(draft_tokens[i])}) has probability 0 under "
                         "p_draft[i]: the draft cannot have drawn it, so p_draft is not the "
                         "distribution the draft sampled from")


def acceptance_rate(p_draft: torch.Tensor, p_target: torch.Tensor) -> torch.Tensor:
    """The probability that a draft token drawn from ``p_draft`` is accepted, per row.

    Args:
        p_draft, p_target: ``[..., vocab]`` probabilities of the same shape.
    Returns:
        ``[...]`` float: ``beta = sum over x of min(p_draft[x], p_target[x])`` for each row,
        which is ``1 - total variation distance``. Leviathan et al. call its expectation over
        positions ``alpha``. 1 when the two rows are equal, 0 when they share no token.

    One line. Each row is its own pair of distributions.

    Read: learning/lesson14.md#how-many-tokens-a-step-emits
    """
    if p_draft.shape != p_target.shape:
        raise ValueError(f"p_draft {tuple(p_draft.shape)} and p_target "
                         f"{tuple(p_target.shape)} must have the same shape")
    ### BEGIN SOLUTION
    return torch.minimum(p_draft, p_target).sum(dim=-1)
    ### END SOLUTION


def speculative_accept(p_draft: torch.Tensor, p_target: torch.Tensor, draft_tokens: torch.Tensor,
                       generator: torch.Generator | None = None) -> tuple[int, int]:
    """Verify ``gamma`` draft tokens against the target: how many are kept, and the next token.

    Args:
        p_draft: ``[gamma, vocab]``, ``gamma >= 1``; row ``i`` is the distribution the draft
            sampled ``draft_tokens[i]`` from (one-hot for a greedy or n-gram draft).
        p_target: ``[gamma + 1, vocab]``; row ``i`` is the target's distribution at the same
            position, row ``gamma`` the one after the last draft token.
        draft_tokens: ``[gamma]`` int64.
        generator: the only source of randomness (``torch.rand(..., generator=generator)``,
            ``torch.multinomial(..., generator=generator)``).
    Returns:
        ``(n_accepted, next_token)`` as Python ints: ``0 <= n_accepted <= gamma``; the step
        emits ``draft_tokens[:n_accepted]`` and then ``next_token``. ``next_token`` comes from
        the residual of row ``n_accepted`` if a draft token was rejected, from
        ``p_target[gamma]`` if all were accepted.

    Rule: draw ``u`` uniform in [0, 1); accept token ``i`` when ``u < p_target[i, x] /
    p_draft[i, x]`` (so a ratio of 1 or more is always accepted); on the first rejection
    ``residual = max(0, p_target[i] - p_draft[i])``, renormalised over row ``i`` only. Only
    sample the residual of a row where a rejection happened: when ``p_target == p_draft``
    nothing is ever rejected and the residual is all zeros. A draft token with probability 0
    under ``p_draft`` is refused before this function runs (the draft could not have drawn it).

    About 12 lines.

    Read: learning/lesson14.md#the-rejection-rule
    """
    check_accept_inputs(p_draft, p_target, draft_tokens)
    ### BEGIN SOLUTION
    # hint: one uniform draw per draft token, all at once: u = torch.rand(gamma, generator=generator)
    gamma = p_draft.shape[0]
    p_draft, p_target = p_draft.float().cpu(), p_target.float().cpu()  # gamma + 1 rows, on the CPU
    rows, tokens = torch.arange(gamma), draft_tokens.long().cpu()
    ratio = p_target[rows, tokens] / p_draft[rows, tokens]
    u = torch.rand(gamma, generator=generator)
    rejected = (u >= ratio).nonzero()
    if len(rejected) == 0:
        bonus = torch.multinomial(p_target[gamma], 1, generator=generator)
        return gamma, int(bonus)
    n = int(rejected[0])
    residual = (p_target[n] - p_draft[n]).clamp(min=0)
    if float(residual.sum()) <= 0:  # only rounding can empty it: then p_target[n] is the answer
        residual = p_target[n]
    nxt = torch.multinomial(residual / residual.sum(), 1, generator=generator)
    return n, int(nxt)
    ### END SOLUTION
