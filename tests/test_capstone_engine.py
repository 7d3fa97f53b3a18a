"""The capstone's serving engine (course/engine.py) with the reference pieces: it decodes what
HF transformers decodes, under paging, chunked prefill, prefix hits and preemption; its
bookkeeping returns every block; its errors name the problem; and the figures the capstone's
hidden graders hold (the reference's engine steps) are what the reference gives."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from autograder.shared import CAPSTONE_LESSONS
from course.config import tiny
from course.engine import PIECES, Engine, EngineError, SamplingParams
from course.model import hf_model_from_weights, random_weights
from course.testing import torch_threads
from course.trace import validate

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = ROOT / "autograder" / "hidden" / "capstone"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_capstone_{name}", HIDDEN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1), torch.no_grad():
        yield


@pytest.fixture(scope="module")
def model():
    cfg = tiny(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, vocab_size=256,
               max_position=512)
    weights = random_weights(cfg, seed=0)
    return cfg, weights, hf_model_from_weights(cfg, weights)


def greedy(hf, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(hf(torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
    return ids[len(prompt):]


def _prompts():
    g = torch.Generator().manual_seed(1)
    shared = torch.randint(0, 256, (40,), generator=g).tolist()
    return [torch.randint(0, 256, (n,), generator=g).tolist() for n in (5, 17, 33, 1)] \
        + [shared + [1, 2, 3], shared + [7, 8]]


def test_the_engine_runs_the_pieces_of_the_capstones_lessons():
    assert sorted({lesson for lesson, _ in PIECES}) == sorted(CAPSTONE_LESSONS)


@pytest.mark.parametrize("kw", [dict(num_blocks=64), dict(num_blocks=14, token_budget=16,
                                                           block_size=4),
                                dict(num_blocks=64, prefix_cache=False, block_size=8)],
                         ids=["roomy", "tight", "no-prefix-cache"])
def test_greedy_output_equals_hf_transformers(model, kw):
    cfg, weights, hf = model
    engine = Engine("solutions", weights=weights, cfg=cfg, **kw)
    prompts = _prompts()
    # the second half arrives later, so the shared prefix is cached when its partner comes
    first = engine.generate(prompts[:5], SamplingParams(max_tokens=8))
    second = engine.generate(prompts[5:], SamplingParams(max_tokens=8))
    for prompt, got in zip(prompts, first + second):
        assert got == greedy(hf, prompt, 8)
    if kw.get("prefix_cache", True):
        assert engine.stats["prefix_hit_tokens"] > 0
    if kw["num_blocks"] == 14:
        assert engine.stats["preemptions"] > 0
    assert engine.free_blocks() == engine.num_blocks
    validate(engine.trace())


def test_reference_steps_of_the_hidden_grader_are_the_reference_engines(model):
    graders, conftest = _load("test_engine_trace"), _load("conftest")
    engine = graders.throughput_engine("solutions", model)
    conftest.drive(engine, graders.throughput_arrivals())
    assert engine.steps == graders.REFERENCE_STEPS, \
        "the reference pieces changed: set REFERENCE_STEPS in the capstone's hidden grader"
    without = graders.throughput_engine("solutions", model, prefix_cache=False)
    conftest.drive(without, graders.throughput_arrivals())
    assert without.steps > graders.STEP_SHARE * graders.REFERENCE_STEPS, \
        "the throughput trace no longer shows what the prefix cache saves"


def test_stop_token_ends_a_request_and_is_delivered(model):
    cfg, weights, hf = model
    prompt = _prompts()[1]
    expected = greedy(hf, prompt, 8)
    engine = Engine("solutions", weights=weights, cfg=cfg, num_blocks=16)
    engine.add_request("r", prompt, SamplingParams(max_tokens=8, stop_token_ids=(expected[2],)))
    outs = []
    while engine.has_unfinished():
        outs += engine.step()
    stop = expected.index(expected[2])
    assert [o.token_id for o in outs] == expected[:stop + 1]
    assert outs[-1].finished and outs[-1].finish_reason == "stop"
    assert engine.free_blocks() == 16


def test_seeded_sampling_is_reproducible(model):
    cfg, weights, _ = model
    params = SamplingParams(temperature=1.0, top_k=50, top_p=0.9, max_tokens=10, seed=3)
    runs = [Engine("solutions", weights=weights, cfg=cfg, num_blocks=16).generate(
        [_prompts()[0]], params) for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0][0]) == 10


def test_abort_is_idempotent_and_leaves_a_valid_trace(model):
    cfg, weights, _ = model
    engine = Engine("solutions", weights=weights, cfg=cfg, num_blocks=16, max_running=1)
    engine.add_request("run", _prompts()[0], SamplingParams(max_tokens=20))
    engine.add_request("wait", _prompts()[1], SamplingParams(max_tokens=5))
    engine.step()
    engine.step()
    engine.abort("run")
    engine.abort("run")
    engine.abort("wait")
    engine.abort("never-added")
    outs = engine.step()
    assert [(o.request_id, o.finish_reason) for o in outs] == [("run", "abort"),
                                                                ("wait", "abort")]
    assert not engine.has_unfinished() and engine.free_blocks() == 16
    events = engine.trace()
    validate(events)
    assert [e.request for e in events if e.kind == "finish"] == ["run"]  # "wait" had no token


def test_bad_requests_and_arguments_get_clear_errors(model, tmp_path):
    cfg, weights, _ = model
    engine = Engine("solutions", weights=weights, cfg=cfg, num_blocks=4, block_size=4)
    assert engine.max_model_len == 16
    for prompt, params, match in [
            ([1] * 10, SamplingParams(max_tokens=7), "too long"),
            ([], SamplingParams(), "empty"),
            ([1, 256], SamplingParams(), "not a token id"),
            ([1], SamplingParams(temperature=-1.0), "temperature"),
            ([1], SamplingParams(top_p=0.0), "top_p"),
            ([1], SamplingParams(top_k=0), "top_k")]:
        with pytest.raises(ValueError, match=match):
            engine.add_request("x", prompt, params)
    engine.add_request("x", [1, 2], SamplingParams(max_tokens=2))
    with pytest.raises(ValueError, match="used before"):
        engine.add_request("x", [1, 2], SamplingParams(max_tokens=2))
    with pytest.raises(EngineError, match="no such folder"):
        Engine(str(tmp_path / "missing"), weights=weights, cfg=cfg, num_blocks=4)
    (tmp_path / "lesson12").mkdir()
    with pytest.raises(EngineError, match="one lesson folder"):
        Engine(str(tmp_path / "lesson12"), weights=weights, cfg=cfg, num_blocks=4)
    with pytest.raises(EngineError, match="lesson02/sampling.py"):
        Engine(str(tmp_path), weights=weights, cfg=cfg, num_blocks=4)


def test_unwritten_stubs_are_named_with_their_lesson(model):
    cfg, weights, _ = model
    engine = Engine("exercises", weights=weights, cfg=cfg, num_blocks=8)
    with pytest.raises(EngineError, match=r"lesson18/scheduler.py: add\(\) is not written"):
        engine.add_request("r", [1, 2, 3], SamplingParams(max_tokens=2))


def test_the_text_quotes_the_throughput_trace_as_the_reference_runs_it(model):
    graders, conftest = _load("test_engine_trace"), _load("conftest")
    without = graders.throughput_engine("solutions", model, prefix_cache=False)
    conftest.drive(without, graders.throughput_arrivals())
    text = " ".join((ROOT / "learning" / "capstone.md").read_text().split())
    assert f"it takes {graders.REFERENCE_STEPS} engine steps" in text
    assert f"with the prefix cache turned off, {without.steps} engine steps" in text
    assert f"at most {graders.STEP_SHARE:g} times the reference's steps" in text
    assert f"{len(graders.THROUGHPUT_TRACE)} requests" in text or "seven requests" in text
