"""Shared fixtures of the capstone's hidden graders: the implementation under test (the folder
``--impl`` selects; the engine loads its lesson 02, 12, 13 and 18 modules from there), a tiny
random Llama with its HF transformers oracle, and a driver that feeds the engine requests at
given steps."""

from __future__ import annotations

import pytest
import torch

from course.config import tiny
from course.engine import Engine, SamplingParams
from course.model import hf_model_from_weights, random_weights
from course.testing import torch_threads


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Hundreds of small forwards: on a busy runner a second torch thread mostly waits."""
    with torch_threads(1), torch.no_grad():
        yield


@pytest.fixture(scope="session")
def impl(request) -> str:
    """The folder of lessonNN/ packages under test (solutions, exercises or a submission)."""
    return str(request.config._course_impl)


@pytest.fixture(scope="session")
def tiny_model():
    """(cfg, weights, HF model) of a small random Llama: 2 layers, GQA 4:2, vocabulary 256."""
    cfg = tiny(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, vocab_size=256,
               max_position=512)
    weights = random_weights(cfg, seed=0)
    return cfg, weights, hf_model_from_weights(cfg, weights)


def greedy_reference(hf, prompt: list[int], n: int) -> list[int]:
    """``n`` greedy tokens of the HF model, each the argmax of a full forward (no cache)."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            logits = hf(torch.tensor([ids]), use_cache=False).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids[len(prompt):]


def drive(engine: Engine, arrivals: dict[int, list[tuple[str, list[int], SamplingParams]]],
          patience: int = 100) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Add each request at its loop step, step until everything is done; returns each
    request's tokens and finish reason. A run that delivers nothing for ``patience`` steps
    after the last arrival fails with the engine's state (a scheduler that stops admitting,
    blocks that never come back)."""
    tokens: dict[str, list[int]] = {}
    reasons: dict[str, str] = {}
    last = max(arrivals)
    idle, loop = 0, 0
    while idle < patience:
        for rid, prompt, params in arrivals.get(loop, []):
            tokens[rid] = []
            engine.add_request(rid, prompt, params)
        outputs = engine.step()
        for out in outputs:
            if out.token_id is not None:
                tokens[out.request_id].append(out.token_id)
            if out.finished:
                reasons[out.request_id] = out.finish_reason
        if loop >= last and not engine.has_unfinished():
            return tokens, reasons
        idle = 0 if outputs or loop < last else idle + 1
        loop += 1
    unfinished = sorted(set(tokens) - set(reasons))
    raise AssertionError(
        f"the engine stalled: no output for {patience} steps, requests {unfinished} never "
        f"ended ({engine.free_blocks()} of {engine.num_blocks} blocks free or reclaimable, the "
        f"scheduler counts {engine.scheduler.free_blocks} free, {len(engine.scheduler.running)} "
        f"running, {len(engine.scheduler.waiting)} waiting). A scheduler that does not give "
        "blocks back, or does not admit what fits, stalls here.")


@pytest.fixture(scope="session")
def run_trace():
    return drive


@pytest.fixture(scope="session")
def greedy():
    return greedy_reference
