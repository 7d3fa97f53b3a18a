"""Hidden grader, lesson 14: greedy speculative decoding on the real SmolLM2-135M.

Reference: HF transformers' ``generate(do_sample=False)`` on the same model. The target is the
model behind ``hf_logits_fn`` (its own KV cache, cropped after rejections); the drafts are
prompt lookup (no model) and the model itself (every draft accepted).
"""

import pytest
import torch

from course.testing import is_greedy_continuation
from exercises.lesson14.spec_decode import hf_logits_fn, prompt_lookup_draft, spec_decode

N_NEW = 16


@pytest.fixture(scope="module")
def smollm2():
    from course.model import load_hf_model, load_tokenizer
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 decode of a small model: more threads only contend
    yield load_hf_model(), load_tokenizer()
    torch.set_num_threads(before)


def greedy_or_tied(model, ids, got, want):
    """got equals HF greedy, or (a near-tie flipped a token) every token of got is the model's
    greedy choice given the tokens before it."""
    return got == want or (len(got) == len(want)
                           and is_greedy_continuation(model, ids.tolist(), got))


def hf_greedy(model, ids, n):
    with torch.no_grad():
        out = model.generate(ids[None], attention_mask=torch.ones_like(ids[None]), max_new_tokens=n,
                             do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.model
@pytest.mark.points(3)
def test_greedy_speculative_equals_hf_greedy(smollm2):
    """Bugs at real scale: rows of the target misaligned with the drafts, accepted tokens
    dropped or duplicated, the next token taken from the wrong row; on a prompt that repeats
    itself prompt lookup gets drafts accepted and rejected, on prose mostly rejected."""
    model, tok = smollm2
    for text in ["A B C D E F G A B C D E F G A B C", "The capital of France is"]:
        ids = torch.tensor(tok.encode(text))
        want = hf_greedy(model, ids, N_NEW)
        calls = []
        target = hf_logits_fn(model)

        def counted(seq, n_last):
            calls.append(n_last)
            return target(seq, n_last)

        got = spec_decode(counted, prompt_lookup_draft(model.config.vocab_size), ids, N_NEW, 4)
        assert greedy_or_tied(model, ids, got, want), (
            f"prompt {text!r}: speculative decoding gave {tok.decode(got)!r} "
            f"{got}, HF greedy gives {tok.decode(want)!r} {want}")
        assert len(calls) <= N_NEW


@pytest.mark.model
@pytest.mark.points(1)
def test_self_draft_accepts_everything(smollm2):
    """Bug: a step that does not emit gamma + 1 tokens when every draft is accepted (the bonus
    token lost). The model drafting for itself: 16 tokens in ceil(16 / 5) = 4 target calls."""
    model, tok = smollm2
    ids = torch.tensor(tok.encode("def fibonacci(n):"))
    calls = []
    target = hf_logits_fn(model)

    def counted(seq, n_last):
        calls.append(n_last)
        return target(seq, n_last)

    got = spec_decode(counted, hf_logits_fn(model), ids, N_NEW, 4)
    assert greedy_or_tied(model, ids, got, hf_greedy(model, ids, N_NEW)), tok.decode(got)
    assert len(calls) == 4, f"expected 4 target calls, got {len(calls)}"
