"""Speculative decoding: a cheap draft guesses ``gamma`` tokens, one target run checks them all.

A model here is a ``LogitsFn``: ``(ids [T] int64, n_last) -> logits [n_last, vocab]``, the
logits that follow each of the last ``n_last`` prefixes of ``ids`` (row ``-1`` predicts the token
after all of ``ids``). The callable owns its KV cache: it is handed the whole sequence every
time and runs only what its cache does not hold, so rolling back after a rejection is its
business, not the decoding loop's. ``hf_logits_fn`` wraps an HF transformers model that way
(its cache is cropped back to the longest prefix it shares with the new call);
``prompt_lookup_draft`` is a draft that runs no model at all. The target is called once per
step, on the sequence so far plus the ``gamma`` drafted tokens, for ``gamma + 1`` rows: one to
score each draft and one for the bonus token.

One step, sampling at ``temperature > 0``:

    drafted = []; for i in range(gamma): x ~ softmax(draft(seq + drafted, 1)[-1] / temperature)
    rows = target(seq + drafted, gamma + 1)          # [gamma + 1, vocab]
    n, nxt = speculative_accept(p_draft, softmax(rows / temperature), drafted)
    seq += drafted[:n] + [nxt]

At ``temperature == 0`` (greedy) the draft takes its argmax, draft token ``i`` is kept while it
equals the target's argmax of row ``i``, and the next token is the target's argmax of the first
row that disagrees (or of row ``gamma``): the rejection rule with one-hot distributions.

Read: learning/lesson14.md#one-draft-and-verify-step
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .acceptance import speculative_accept

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def _crop(cache, keep: int) -> bool:
    """Cut an HF cache back to its first ``keep`` positions; False if that cannot be done.

    ``crop`` of a negative number removes that many positions in transformers 4 and 5 alike.
    """
    have = cache.get_seq_length()
    if have > keep and hasattr(cache, "crop"):
        cache.crop(keep - have)
    return cache.get_seq_length() == keep


def hf_logits_fn(model) -> LogitsFn:
    """Wrap an HF transformers causal LM as a ``LogitsFn`` that keeps its own KV cache.

    Each call finds the longest prefix it shares with the previous call's ids, crops the cache
    to it (at least ``n_last`` positions are always recomputed, since only their logits are
    asked for), runs the rest, and applies the LM head to the last ``n_last`` positions only.
    """
    import inspect

    key = "cache" if "cache" in inspect.signature(model.model.forward).parameters \
        else "past_key_values"
    state = {"ids": [], "cache": None}

    @torch.no_grad()
    def logits(ids: torch.Tensor, n_last: int) -> torch.Tensor:
        seq = ids.tolist()
        keep = 0
        for a, b in zip(state["ids"], seq[:len(seq) - n_last]):
            if a != b:
                break
            keep += 1
        cache = state["cache"]
        if cache is None or keep == 0 or not _crop(cache, keep):
            keep, cache = 0, None
        out = model.model(input_ids=ids[None, keep:], use_cache=True, **{key: cache})
        new_cache = getattr(out, "cache", None)  # named past_key_values before transformers 5
        state["ids"], state["cache"] = seq, new_cache if new_cache is not None else out.past_key_values
        return model.lm_head(out.last_hidden_state[0, -n_last:]).float()
    return logits


def prompt_lookup_draft(vocab_size: int, max_ngram: int = 3) -> LogitsFn:
    """A draft with no model: propose the token that followed the last match of the final n-gram.

    For ``n = max_ngram, ..., 1`` it looks for the most recent earlier place where the last
    ``n`` tokens of ``ids`` occurred and proposes the token that came next there (prompt lookup
    decoding, Saxena 2023); with no match it proposes the last token again. Only the LAST of
    the ``n_last`` rows means anything: 0 at the proposed token, -inf elsewhere (a one-hot
    distribution at any temperature). spec_decode asks a draft for one row.
    """
    if max_ngram < 1:
        raise ValueError(f"max_ngram must be >= 1, got {max_ngram}")

    def logits(ids: torch.Tensor, n_last: int) -> torch.Tensor:
        seq = ids.tolist()
        guess = seq[-1]
        for n in range(min(max_ngram, len(seq) - 1), 0, -1):
            tail = seq[-n:]
            starts = [s for s in range(len(seq) - n - 1, -1, -1) if seq[s:s + n] == tail]
            if starts:
                guess = seq[starts[0] + n]
                break
        out = torch.zeros(n_last, vocab_size)
        out[-1] = float("-inf")
        out[-1, guess] = 0.0
        return out
    return logits


def spec_decode(target: LogitsFn, draft: LogitsFn, prompt: torch.Tensor, max_new_tokens: int,
                gamma: int, temperature: float = 0.0, generator: torch.Generator | None = None,
                eos_id: int | None = None) -> list[int]:
    """Generate up to ``max_new_tokens`` tokens after ``prompt`` with draft-and-verify steps.

    Args:
        target, draft: ``LogitsFn``s (``(ids [T], n_last) -> logits [n_last, vocab]``) over the
            same vocabulary.
        prompt: ``[T]`` int64, ``T >= 1``; left unchanged.
        max_new_tokens: tokens wanted (0 returns ``[]`` without calling either model).
        gamma: draft tokens per step, >= 1.
        temperature: 0 for greedy; otherwise both models' logits are divided by it and
            softmaxed in float32, and the output is distributed exactly as sampling the target
            alone at that temperature.
        generator: the only source of randomness (draft sampling and ``speculative_accept``).
        eos_id: when given, generation stops right after the first ``eos_id`` emitted (tokens a
            step accepted after it are dropped).
    Returns:
        the new token ids as a list of Python ints: exactly ``max_new_tokens`` of them unless
        ``eos_id`` ended it early. A step may emit several tokens; cut the last step's tokens
        at ``max_new_tokens``.

    Cost: the target is called ONCE per step, on the sequence plus all ``gamma`` drafts, for
    ``gamma + 1`` rows (never once per draft token); the draft ``gamma`` times per step, for 1
    row each. With a draft that always agrees
    with the target, ``n`` tokens take ``ceil(n / (gamma + 1))`` target calls.

    Greedy speculative decoding must return exactly the tokens of greedy decoding of the target.

    About 25 lines.

    Read: learning/lesson14.md#one-draft-and-verify-step
    """
    if prompt.dim() != 1 or prompt.shape[0] < 1:
        raise ValueError(f"prompt must be [T] token ids with T >= 1, got {tuple(prompt.shape)}")
    if int(gamma) != gamma or gamma < 1:
        raise ValueError(f"gamma must be a whole number >= 1 (draft tokens per step), got {gamma}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    ### BEGIN SOLUTION
    seq = prompt.tolist()
    out: list[int] = []
    while len(out) < max_new_tokens:
        drafted, q_rows = [], []
        for _ in range(gamma):
            last = draft(torch.tensor(seq + drafted), 1)[-1].float()
            if temperature == 0:
                drafted.append(int(last.argmax()))
            else:
                q = torch.softmax(last / temperature, dim=-1)
                drafted.append(int(torch.multinomial(q, 1, generator=generator)))
                q_rows.append(q)
        rows = target(torch.tensor(seq + drafted), gamma + 1).float()
        if temperature == 0:
            best = rows.argmax(dim=-1).tolist()
            n = 0
            while n < gamma and drafted[n] == best[n]:
                n += 1
            nxt = best[n]
        else:
            p = torch.softmax(rows / temperature, dim=-1)
            n, nxt = speculative_accept(torch.stack(q_rows), p, torch.tensor(drafted), generator)
        step = drafted[:n] + [nxt]
        if eos_id is not None and eos_id in step:
            step = step[:step.index(eos_id) + 1]
        step = step[:max_new_tokens - len(out)]
        out += step
        seq += step
        if eos_id is not None and eos_id in step:
            break
    return out
    ### END SOLUTION
