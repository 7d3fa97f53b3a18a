"""The OpenAI-compatible server (course/server.py), driven by the official ``openai`` client
over loopback, and the load generator (course/loadgen.py) against it.

Two servers for the module, each on 127.0.0.1 and a free port in a daemon thread, stopped at
the end:

* ``real_server``: the capstone engine with the reference pieces (``impl="solutions"``) on the
  real SmolLM2-135M: the checks the capstone promises (a streamed and a non-streamed request,
  concurrent requests, a bad request, a prompt longer than the context, a client that leaves
  mid-stream, a small load test). Generations are a few tokens long.
* ``fake_server``: a stand-in engine with the same interface that emits a fixed text, for the
  protocol's details (every kind of bad request, stop strings, multi-byte text), where the
  model would only cost time.

One more stand-in, whose steps fail, gets a server of its own for one test.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from dataclasses import dataclass

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from course import server as srv  # noqa: E402
from course.testing import torch_threads  # noqa: E402

pytestmark = pytest.mark.model


# --- a stand-in engine with the capstone engine's interface ------------------------------------

@dataclass
class FakeParams:
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    max_tokens: int = 64
    stop_token_ids: tuple = ()
    seed: int | None = None


@dataclass
class FakeOut:
    request_id: str
    token_id: int | None
    finished: bool
    finish_reason: str | None


class FakeEngine:
    """Emits the tokens of a fixed text in turn, one per step per request; blocks are counted
    as ceil(tokens / block_size) per request."""

    SamplingParams = FakeParams
    TEXT = " Hello, wörld: 日本語 🙂 and more text to say."

    def __init__(self, tokenizer, num_blocks=64, block_size=16, max_model_len=256):
        self.tokenizer = tokenizer
        self.num_blocks, self.block_size, self.max_model_len = num_blocks, block_size, max_model_len
        self.script = tokenizer.encode(self.TEXT, add_special_tokens=False)
        self.reqs = {}

    EOS_PROMPT = "Stop early"  # this prompt gets the end-of-sequence token as its 4th token

    def add_request(self, rid, prompt_ids, params):
        if not prompt_ids:
            raise ValueError("empty prompt")
        if len(prompt_ids) + params.max_tokens > self.max_model_len:
            raise ValueError("too long")
        eos_at = 3 if self.tokenizer.decode(prompt_ids) == self.EOS_PROMPT else None
        self.reqs[rid] = [len(prompt_ids), 0, params, eos_at]

    def abort(self, rid):
        self.reqs.pop(rid, None)

    def has_unfinished(self):
        return bool(self.reqs)

    def free_blocks(self):
        used = sum(math.ceil((r[0] + r[1]) / self.block_size) for r in self.reqs.values())
        return self.num_blocks - used

    def step(self):
        time.sleep(0.002)
        outs = []
        for rid, r in list(self.reqs.items()):
            if r[1] == r[3] and r[2].stop_token_ids:
                tok, done, reason = r[2].stop_token_ids[0], True, "stop"
            else:
                tok = self.script[r[1] % len(self.script)]
                done = r[1] + 1 >= r[2].max_tokens
                reason = "length" if done else None
            r[1] += 1
            outs.append(FakeOut(rid, tok, done, reason))
            if done:
                del self.reqs[rid]
        return outs


# --- the server fixtures -----------------------------------------------------------------------

@contextlib.contextmanager
def serving(engine):
    server, worker = srv.make_server(engine, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the server thread died while starting"
        assert time.monotonic() < deadline, "the server did not start within 60 s"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        worker.stop()


@pytest.fixture(scope="module")
def tokenizer():
    from course.model import load_tokenizer
    return load_tokenizer()


@pytest.fixture(scope="module")
def engine(tokenizer):
    return FakeEngine(tokenizer)


@pytest.fixture(scope="module")
def server(engine):
    with serving(engine) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def real_engine(tokenizer):
    from course.engine import Engine
    # 64 blocks of 16 tokens: a context of 1,024 tokens, enough for every request here
    return Engine.from_pretrained("solutions", num_blocks=64, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def real_server(real_engine):
    with torch_threads(1), serving(real_engine) as url:
        yield url


@pytest.fixture(scope="module")
def real_client(real_server):
    return openai.OpenAI(base_url=real_server + "/v1", api_key="none", max_retries=0,
                         timeout=300)


def wait_for_free_blocks(engine, timeout=10.0):
    deadline = time.monotonic() + timeout
    while engine.free_blocks() != engine.num_blocks and time.monotonic() < deadline:
        time.sleep(0.02)
    return engine.free_blocks()


# --- tests -------------------------------------------------------------------------------------

def test_health_and_models(real_server, real_client):
    import httpx
    assert httpx.get(real_server + "/health").json() == {"status": "ok"}
    assert [m.id for m in real_client.models.list()] == [srv.MODEL_NAME]


def test_non_streamed_completion(real_client, real_engine, tokenizer):
    prompt = "The capital of France is"
    out = real_client.completions.create(model=srv.MODEL_NAME, prompt=prompt, max_tokens=5,
                                         temperature=0)
    choice = out.choices[0]
    n_prompt = len(tokenizer.encode(prompt, add_special_tokens=False))
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (n_prompt, 5)
    assert out.usage.total_tokens == n_prompt + 5
    assert choice.finish_reason == "length" and out.object == "text_completion"
    assert "Paris" in choice.text, f"greedy SmolLM2 should name Paris, got {choice.text!r}"
    assert wait_for_free_blocks(real_engine) == real_engine.num_blocks


def test_streamed_chat_completion(real_client, real_engine):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    stream = real_client.chat.completions.create(
        model=srv.MODEL_NAME, messages=messages, max_tokens=6, temperature=0, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] in ("length", "stop") and all(r is None for r in reasons[:-1]), reasons
    usage = chunks[-1].usage
    assert usage is not None and 1 <= usage.completion_tokens <= 6
    # the streamed text is the text of the same greedy request, not streamed
    whole = real_client.chat.completions.create(model=srv.MODEL_NAME, messages=messages,
                                                max_tokens=6, temperature=0)
    assert text == whole.choices[0].message.content and text
    assert whole.choices[0].message.role == "assistant"
    assert whole.usage.completion_tokens == usage.completion_tokens
    assert whole.choices[0].finish_reason == reasons[-1]
    assert wait_for_free_blocks(real_engine) == real_engine.num_blocks


def test_concurrent_requests(real_client, real_engine):
    prompts = ["One", "Two two", "Three three three", "Four four four four"]
    results = [None] * len(prompts)

    def call(i):
        results[i] = real_client.completions.create(
            model=srv.MODEL_NAME, prompt=prompts[i], max_tokens=2 + i, temperature=0,
            extra_body={"ignore_eos": True})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for i, out in enumerate(results):
        assert out is not None, f"request {i} got no answer"
        assert out.usage.completion_tokens == 2 + i, (i, out.usage)
        assert out.choices[0].finish_reason == "length"
    assert len({out.id for out in results}) == len(prompts), "response ids must differ"
    assert wait_for_free_blocks(real_engine) == real_engine.num_blocks


def test_a_bad_request_gets_a_clear_400(real_client):
    for extra, param in (({"temperature": -1}, "temperature"), ({"n": 2}, "n")):
        with pytest.raises(openai.BadRequestError) as info:
            real_client.completions.create(model=srv.MODEL_NAME, prompt="Hi", **extra)
        body = info.value.body
        assert info.value.status_code == 400 and body["param"] == param, body
        assert param in body["message"], body


@pytest.mark.parametrize("extra, param", [
    ({"temperature": -1}, "temperature"),
    ({"n": 2}, "n"),
    ({"top_p": 0}, "top_p"),
    ({"top_k": -2}, "top_k"),
    ({"seed": 1.5}, "seed"),
    ({"stream": "yes"}, "stream"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"logprobs": 2}, "logprobs"),
])
def test_every_bad_parameter_gets_a_clear_400(client, extra, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=srv.MODEL_NAME, prompt="Hi", extra_body=extra)
    err = info.value
    assert err.status_code == 400
    assert err.body["param"] == param and err.body["type"] == "invalid_request_error"
    assert param in err.body["message"], err.body


def test_malformed_bodies_get_openai_errors(server):
    import httpx
    for body, status in ((b"{not json", 400), (b"[1, 2]", 400),
                         (b'{"prompt": {"a": 1}}', 400), (b'{"prompt": [1, -5]}', 400),
                         (b'{"model": "gpt-4o", "prompt": "Hi"}', 404),
                         (b'{"messages": []}', 400)):
        path = "/v1/chat/completions" if b"messages" in body else "/v1/completions"
        r = httpx.post(server + path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (body, r.status_code, r.text)
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], r.text
    r = httpx.get(server + "/v1/nothing")
    assert r.status_code == 404 and "/v1/nothing" in r.json()["error"]["message"]


def test_a_prompt_longer_than_the_context_is_refused(real_client, real_engine):
    limit = real_engine.max_model_len
    long_prompt = list(range(100, 100 + limit + 5))
    with pytest.raises(openai.BadRequestError) as info:
        real_client.completions.create(model=srv.MODEL_NAME, prompt=long_prompt, max_tokens=4)
    body = info.value.body
    assert body["code"] == "context_length_exceeded" and body["param"] == "prompt", body
    assert f"maximum context length is {limit} tokens" in body["message"]
    assert f"{limit + 5} in the prompt" in body["message"]
    # a prompt that fits, but not with the tokens asked for
    with pytest.raises(openai.BadRequestError) as info:
        real_client.completions.create(model=srv.MODEL_NAME, prompt=long_prompt[:limit - 2],
                                       max_tokens=10)
    assert info.value.body["code"] == "context_length_exceeded"
    assert real_engine.free_blocks() == real_engine.num_blocks


def test_a_client_that_disconnects_mid_stream_frees_its_blocks(real_server, real_engine):
    import httpx
    body = {"model": srv.MODEL_NAME, "prompt": "Count to a thousand: one, two,",
            "max_tokens": 500, "temperature": 0, "stream": True, "ignore_eos": True}
    with httpx.Client(timeout=300) as http:
        with http.stream("POST", real_server + "/v1/completions", json=body) as r:
            assert r.status_code == 200
            data = (line for line in r.iter_lines() if line.startswith("data: "))
            got = [next(data) for _ in range(3)]
            assert all(json.loads(g[6:])["choices"][0]["finish_reason"] is None for g in got)
            assert real_engine.free_blocks() < real_engine.num_blocks, \
                "the streaming request holds no KV blocks?"
        # leaving the block closes the connection three tokens into a 500-token request
    assert wait_for_free_blocks(real_engine, timeout=60) == real_engine.num_blocks, (
        "a disconnected client's request must be aborted and its blocks freed")
    assert not real_engine.has_unfinished()


def test_stop_strings_cut_the_text(client):
    whole = client.completions.create(model=srv.MODEL_NAME, prompt="Go", max_tokens=12,
                                      temperature=0).choices[0].text
    stop = whole[5:8]
    assert stop and stop in whole
    cut = client.completions.create(model=srv.MODEL_NAME, prompt="Go", max_tokens=12,
                                    temperature=0, stop=[stop])
    assert cut.choices[0].text == whole[:whole.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model=srv.MODEL_NAME, prompt="Go", max_tokens=12,
                                         temperature=0, stop=stop, stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == whole[:whole.index(stop)]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_end_of_sequence_token_ends_the_text_unless_ignored(client, tokenizer):
    prompt = FakeEngine.EOS_PROMPT
    out = client.completions.create(model=srv.MODEL_NAME, prompt=prompt, max_tokens=10)
    first3 = tokenizer.decode(tokenizer.encode(FakeEngine.TEXT, add_special_tokens=False)[:3])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].text == first3, "the end-of-sequence token is not text"
    assert out.usage.completion_tokens == 4, "the end-of-sequence token counts as generated"
    chunks = list(client.completions.create(model=srv.MODEL_NAME, prompt=prompt, max_tokens=10,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == first3
    assert chunks[-1].choices[0].finish_reason == "stop"
    out = client.completions.create(model=srv.MODEL_NAME, prompt=prompt, max_tokens=10,
                                    extra_body={"ignore_eos": True})
    assert (out.choices[0].finish_reason, out.usage.completion_tokens) == ("length", 10)


def test_incremental_detokenizer_keeps_multibyte_characters(tokenizer):
    text = "Grüße, 日本語, emoji 🙂🚀 and ñ done."
    ids = tokenizer.encode(text, add_special_tokens=False)
    detok = srv.IncrementalDetokenizer(tokenizer)
    pieces = [detok.add(t) for t in ids] + [detok.flush()]
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert not any("\ufffd" in p for p in pieces), pieces


def test_an_engine_that_fails_a_step_fails_its_requests_not_the_server(tokenizer):
    class Broken(FakeEngine):
        def step(self):
            raise RuntimeError("a planted failure")

        def add_request(self, rid, prompt_ids, params):
            if self.tokenizer.decode(prompt_ids) == "Boom":
                raise RuntimeError("lesson18/scheduler.py: add() is not written yet")
            super().add_request(rid, prompt_ids, params)

    engine = Broken(tokenizer)
    with serving(engine) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)
        with pytest.raises(openai.InternalServerError) as info:
            c.completions.create(model=srv.MODEL_NAME, prompt="Hi", max_tokens=3)
        assert "engine failed" in info.value.body["message"]
        assert "a planted failure" in info.value.body["message"], "name the cause"
        with pytest.raises(openai.APIError, match="engine failed"):
            list(c.completions.create(model=srv.MODEL_NAME, prompt="Hi", max_tokens=3,
                                      stream=True))
        assert not engine.reqs, "the failed requests must be aborted in the engine"
        with pytest.raises(openai.InternalServerError, match="add\\(\\) is not written yet"):
            c.completions.create(model=srv.MODEL_NAME, prompt="Boom", max_tokens=3)
        import httpx
        assert httpx.get(url + "/health").json() == {"status": "ok"}


# --- the load generator ------------------------------------------------------------------------

def test_poisson_arrivals_are_seeded_with_the_stated_mean():
    from course import loadgen
    a = loadgen.poisson_arrivals(2000, 4.0, seed=1)
    assert a == loadgen.poisson_arrivals(2000, 4.0, seed=1)
    assert a != loadgen.poisson_arrivals(2000, 4.0, seed=2)
    assert all(x < y for x, y in zip(a, a[1:])) and a[0] > 0
    mean_gap = a[-1] / len(a)
    assert abs(mean_gap - 0.25) < 0.02, f"mean gap {mean_gap} s, expected 0.25 s at 4 req/s"
    with pytest.raises(ValueError, match="requests per second"):
        loadgen.poisson_arrivals(3, 0.0, seed=0)


def test_synthetic_workload_is_seeded_and_in_range():
    from course import loadgen
    w = loadgen.synthetic_workload(50, seed=3, prompt_tokens=(4, 9), output_tokens=(2, 5))
    assert w == loadgen.synthetic_workload(50, seed=3, prompt_tokens=(4, 9), output_tokens=(2, 5))
    assert {len(p) for p in w.prompts} <= set(range(4, 10)) and len(w) == 50
    assert set(w.max_tokens) <= {2, 3, 4, 5}
    lo, hi = loadgen.VOCAB_RANGE
    assert all(lo <= t < hi for p in w.prompts for t in p)


def test_loadgen_against_the_server(real_server, real_engine, tmp_path, capsys):
    from course import loadgen
    from course.trace import read_jsonl
    out, trace = tmp_path / "r.json", tmp_path / "t.jsonl"
    report = loadgen.main(["--url", real_server, "--impl", "solutions", "--rate", "40",
                           "--requests", "5", "--seed", "0", "--prompt-tokens", "4,12",
                           "--output-tokens", "2,4", "--out", str(out), "--trace-out",
                           str(trace), "--no-progress"])
    text = capsys.readouterr().out
    saved = json.loads(out.read_text())
    run = saved["runs"][0]
    w = loadgen.synthetic_workload(5, 0, (4, 12), (2, 4))
    assert (run["rate_rps"], run["finished"], run["failed"]) == (40, 5, 0), run["failures"]
    assert run["summary"]["requests"] == report["runs"][0]["summary"]["requests"] == 5
    assert run["summary"]["output_tokens"] == sum(w.max_tokens), "ignore_eos: exact lengths"
    assert set(run["summary"]["ttft_ms"]) == {"50", "90", "99"}
    assert 0 <= run["slo_attainment"] <= 1
    events = read_jsonl(trace)
    arrivals = sorted((e for e in events if e.kind == "arrival"), key=lambda e: e.request)
    assert [e.tokens for e in arrivals] == [len(p) for p in w.prompts]
    for row in ("p50", "p90", "p99", "TTFT ms", "TPOT ms", "ITL ms", "E2E ms", "throughput:",
                "SLO attainment", "goodput:"):
        assert row in text, f"{row!r} missing from the table:\n{text}"
    assert wait_for_free_blocks(real_engine) == real_engine.num_blocks


def test_loadgen_sweep_goodput_and_plot(server, tmp_path, capsys):
    import numpy as np
    from course import loadgen
    from course.plot import is_png
    from course.trace import read_jsonl
    out, trace, png = tmp_path / "r.json", tmp_path / "t.jsonl", tmp_path / "l.png"
    args = ["--url", server, "--impl", "solutions", "--rates", "20,40", "--requests", "6",
            "--seed", "0", "--prompt-tokens", "4,12", "--output-tokens", "3,6",
            "--out", str(out), "--trace-out", str(trace), "--plot", str(png), "--no-progress"]
    # targets no run can miss (10 minutes): goodput is the higher rate tried
    loadgen.main(args + ["--slo-ttft-ms", "600000", "--slo-tpot-ms", "600000"])
    saved = json.loads(out.read_text())
    assert [r["rate_rps"] for r in saved["runs"]] == [20, 40] and saved["goodput_rps"] == 40
    assert "goodput: 40 req/s" in capsys.readouterr().out
    w = loadgen.synthetic_workload(6, 0, (4, 12), (3, 6))
    for run in saved["runs"]:
        assert run["finished"] == 6 and run["slo_attainment"] == 1.0
        assert run["summary"]["output_tokens"] == sum(w.max_tokens)
        # the table's TTFT p50 is the trace's, computed here without lesson 17
        events = read_jsonl(tmp_path / f"t.{run['rate_rps']:g}.jsonl")
        arrival = {e.request: e.time_s for e in events if e.kind == "arrival"}
        ttft = [e.time_s - arrival[e.request] for e in events if e.kind == "first_token"]
        assert run["summary"]["ttft_ms"]["50"] == pytest.approx(1e3 * np.percentile(ttft, 50))
    assert is_png(png)
    # a target no request meets (1 microsecond): no rate qualifies
    loadgen.main(args + ["--slo-ttft-ms", "0.001"])
    saved = json.loads(out.read_text())
    assert saved["goodput_rps"] is None and all(r["slo_attainment"] == 0 for r in saved["runs"])
    assert "goodput: no rate tried" in capsys.readouterr().out


def test_loadgen_counts_failed_requests(server, tmp_path, capsys):
    from course import loadgen
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "Hi there", "max_tokens": 3}\n'
                       '{"prompt": "Too long", "max_tokens": 100000}\n')
    report = loadgen.main(["--url", server, "--impl", "solutions", "--rate", "50", "--requests",
                           "4", "--prompts", str(prompts), "--out", str(tmp_path / "r.json")])
    run = report["runs"][0]
    assert (run["finished"], run["failed"]) == (2, 2)
    assert "maximum context length" in run["failures"][0]
    captured = capsys.readouterr()
    assert "2 failed" in captured.out
    assert "4/4" in captured.err, "the progress bar (stderr) should count the 4 requests"


def test_loadgen_names_unwritten_metrics(server, tmp_path):
    from course import loadgen
    stub = loadgen.load_metrics("exercises")
    assert stub is not loadgen.load_metrics("solutions")
    trace = tmp_path / "t.jsonl"
    with pytest.raises(SystemExit, match="lesson 17's metrics are not written yet") as info:
        loadgen.main(["--url", server, "--impl", "exercises", "--rate", "50", "--requests", "2",
                      "--prompt-tokens", "3,4", "--output-tokens", "2,2", "--no-progress",
                      "--out", str(tmp_path / "r.json"), "--trace-out", str(trace)])
    assert "request_metrics" in str(info.value) and str(trace) in str(info.value)
    assert trace.is_file()


# --- the README's commands ---------------------------------------------------------------------

def _readme_block(marker: str) -> list[str]:
    import re
    import shlex
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```(?:bash|sh)?\n(.+?)\n```", text, re.S)
    assert match, f"README.md must hold a command in a fenced block after <!-- {marker} -->"
    return shlex.split(match.group(1).strip())


def test_readme_serve_and_load_test_commands_parse():
    from course import loadgen
    serve = _readme_block("serve-command")
    assert serve[:3] == [".venv/bin/python", "-m", "course.server"], serve
    args = srv.build_parser().parse_args(serve[3:])
    assert args.impl == "solutions" and "--port" in serve and args.host == "127.0.0.1"
    assert srv.build_parser().parse_args([]).impl == "exercises", \
        "the server runs the learner's pieces unless told otherwise"
    load = _readme_block("loadtest-command")
    assert load[:3] == [".venv/bin/python", "-m", "course.loadgen"], load
    largs = loadgen.build_parser().parse_args(load[3:])
    assert largs.url == f"http://127.0.0.1:{args.port}", "the load test must target the server"
    assert largs.impl == "solutions"


def test_loadgen_marks_the_knee_with_lesson_24s_find_knee(tmp_path):
    """The sweep's knee comes from the selected implementation's lesson 24 (`find_knee` on p99
    TTFT against the rate); untouched stubs or a short sweep leave it unmarked, with the
    reason."""
    from course import loadgen

    def run(rate, p99):
        return {"rate_rps": rate, "summary": {"ttft_ms": {50: p99 / 2, 99: p99},
                                              "tpot_ms": {50: 5.0, 99: 6.0}}}

    runs = [run(r, p) for r, p in ((1, 10.0), (2, 11.0), (3, 12.0), (4, 400.0), (5, 900.0))]
    knee, note = loadgen.knee_of("solutions", runs)
    assert knee == 3 and "knee: 3 req/s" in note  # Kneedle: the farthest below the chord
    knee_stub, note_stub = loadgen.knee_of("exercises", runs)
    assert knee_stub is None and "not written yet" in note_stub
    assert loadgen.knee_of("solutions", runs[:2])[0] is None
    drawn = loadgen._plot(str(tmp_path / "k.png"), runs, knee)
    assert drawn.point("knee (p99 TTFT)").x == 3 and drawn.point("knee (p99 TTFT)").y == 12.0
