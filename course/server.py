"""An OpenAI-compatible HTTP server in front of the capstone's engine.

Start it (the reference pieces; ``--impl exercises``, the default, runs yours)::

    python -m course.server --impl solutions --port 8000

and talk to it with any OpenAI client (``base_url="http://127.0.0.1:8000/v1"``, any api key).
The text: learning/capstone.md#serve-it-and-load-test-it.

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions`` and ``POST
/v1/chat/completions``, each streamed (server-sent events in OpenAI's chunk format, ending with
``data: [DONE]``) or not (one JSON body with ``usage``). Errors use OpenAI's error body,
``{"error": {"message", "type", "param", "code"}}``: 400 for a bad parameter or a prompt longer
than the context (code ``context_length_exceeded``, as OpenAI answers), 404 for an unknown model
or path, 500 when the engine fails.

How it is built. The engine is not thread-safe, so ONE thread owns it (``EngineWorker``): the
HTTP handlers, on uvicorn's asyncio loop, put commands (add a request, abort one) on a queue;
the worker thread takes them, calls ``engine.add_request`` / ``engine.abort``, calls
``engine.step()`` while any request is unfinished, and hands each ``StepOutput`` to the asyncio
queue of its request with ``loop.call_soon_threadsafe``. A handler turns token ids into text as
they come (``IncrementalDetokenizer``) and sends one chunk per token. A client that goes away
mid-request is noticed at its next token, or within ``DISCONNECT_POLL_S`` while none comes (the
handler checks the connection; a streamed response is also cancelled by Starlette when the
client leaves), and its request is aborted, which frees its KV blocks.

Parameters, and the choices this server makes where OpenAI's API leaves room:

* ``prompt`` (completions): a string, or a list of token ids. One prompt per request.
* ``messages`` (chat): ``role`` and ``content`` (a string, or a list of ``{"type": "text"}``
  parts), rendered by the tokenizer's chat template with the assistant's turn opened.
* ``max_tokens`` (or ``max_completion_tokens``): default 16 for completions (OpenAI's
  default), and for chat the rest of the context capped at ``--max-tokens-default`` (256).
* ``temperature`` in [0, 2] (0 is greedy; default 1, as OpenAI's), ``top_p`` in (0, 1],
  ``top_k`` (an extension, as vLLM's: -1 or 0 for none), ``seed``.
* ``stop``: a string or a list of up to 4. Generation ends before the first occurrence in the
  generated text (it is not returned, as OpenAI does); a streamed response holds back the last
  few characters that could start a stop string until they cannot.
* The model's end-of-sequence token ends a generation (finish_reason ``stop``); ``ignore_eos``
  (an extension, as vLLM's; the load generator uses it) turns that off, so a request makes
  exactly ``max_tokens`` tokens.
* ``n`` must be 1; ``logprobs``, ``echo``, ``best_of`` > 1, ``suffix``, tools and
  ``response_format`` are refused with a 400 naming the parameter, never silently ignored.
* ``stream_options: {"include_usage": true}`` adds a last chunk carrying ``usage``.
"""


import argparse
import asyncio
import concurrent.futures
import json
import logging
import queue
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EngineWorker", "IncrementalDetokenizer", "RequestError", "ShuttingDown", "build_app",
           "make_server", "main", "MODEL_NAME"]

MODEL_NAME = "SmolLM2-135M-Instruct"
DISCONNECT_POLL_S = 0.2  # how often a waiting handler checks that its client is still there
MAX_STOP_STRINGS = 4
log = logging.getLogger("course.server")


class RequestError(Exception):
    """A request the server refuses: becomes OpenAI's error body with this status."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400,
                 code: str | None = None, type: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.status, self.code, self.type = (
            message, param, status, code, type)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


# ---------------------------------------------------------------------------------------------
# The engine thread


class ShuttingDown(RuntimeError):
    """The worker stopped: it takes no new request."""


@dataclass
class _Sink:
    """Where the worker delivers a request's outputs: an asyncio queue on the server's loop."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue

    def put(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


@dataclass
class _Add:
    request_id: str
    prompt_ids: list[int]
    params: Any
    sink: _Sink
    accepted: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


@dataclass
class _Abort:
    request_id: str


class EngineWorker:
    """The one thread that owns the engine (see the module docstring).

    ``submit`` returns a future that the worker resolves once ``engine.add_request`` accepted
    the request (or fails with its ``ValueError``); the outputs then arrive on the sink as
    ``StepOutput`` objects, the last one with ``finished`` set. ``abort`` is fire-and-forget
    and idempotent. If ``engine.step`` raises, every request in flight gets a ``StepOutput``
    with finish_reason ``"error"`` and is aborted, and the worker carries on.
    """

    IDLE_WAIT_S = 0.5  # how long an idle worker blocks on its queue before checking `stop`

    def __init__(self, engine: Any):
        self.engine = engine
        self._commands: queue.Queue = queue.Queue()
        self._sinks: dict[str, _Sink] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self.steps = 0

    def start(self) -> "EngineWorker":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._commands.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, request_id: str, prompt_ids: list[int], params: Any,
               sink: _Sink) -> concurrent.futures.Future:
        cmd = _Add(request_id, list(prompt_ids), params, sink)
        if self._stopping.is_set():
            cmd.accepted.set_exception(ShuttingDown("the server is shutting down"))
        else:
            self._commands.put(cmd)
        return cmd.accepted

    def abort(self, request_id: str) -> None:
        self._commands.put(_Abort(request_id))

    # Everything below runs on the worker thread only.

    def _handle(self, cmd: Any) -> None:
        if isinstance(cmd, _Add):
            try:
                self.engine.add_request(cmd.request_id, cmd.prompt_ids, cmd.params)
            except Exception as err:  # ValueError: too long, empty, bad params
                cmd.accepted.set_exception(err)
                return
            self._sinks[cmd.request_id] = cmd.sink
            cmd.accepted.set_result(True)
        elif isinstance(cmd, _Abort):
            if cmd.request_id in self._sinks:
                self.engine.abort(cmd.request_id)
                del self._sinks[cmd.request_id]

    def _run(self) -> None:
        while not self._stopping.is_set():
            busy = self.engine.has_unfinished()
            try:
                cmd = self._commands.get(block=not busy, timeout=None if busy else self.IDLE_WAIT_S)
            except queue.Empty:
                cmd = None
            while cmd is not None:  # take every command waiting before the next step
                self._handle(cmd)
                try:
                    cmd = self._commands.get_nowait()
                except queue.Empty:
                    cmd = None
            if self._stopping.is_set() or not self.engine.has_unfinished():
                continue
            try:
                outputs = self.engine.step()
            except Exception as err:
                log.error("engine step failed:\n%s", traceback.format_exc())
                self._fail_all(f"the engine failed on this step: {type(err).__name__}: {err} "
                               "(the server log has the traceback)")
                continue
            self.steps += 1
            for out in outputs:
                sink = self._sinks.get(out.request_id)
                if sink is None:
                    continue  # aborted by its client: nobody is listening
                sink.put(out)
                if out.finished:
                    del self._sinks[out.request_id]
        for rid in list(self._sinks):  # shutting down: release what is left
            self._sinks.pop(rid).put(_step_error(rid, "the server shut down"))
            try:
                self.engine.abort(rid)
            except Exception:
                pass

    def _fail_all(self, message: str) -> None:
        for rid in list(self._sinks):
            self._sinks.pop(rid).put(_step_error(rid, message))
            try:
                self.engine.abort(rid)
            except Exception:
                log.error("abort of %s failed:\n%s", rid, traceback.format_exc())


@dataclass
class _StepError:
    request_id: str
    message: str
    token_id: None = None
    finished: bool = True
    finish_reason: str = "error"


def _step_error(rid: str, message: str) -> _StepError:
    return _StepError(rid, message)


# ---------------------------------------------------------------------------------------------
# Token ids to text


class IncrementalDetokenizer:
    """Turn a growing list of token ids into text deltas whose concatenation is the text.

    Decoding one token at a time is wrong for byte-level BPE: a character of several bytes
    (an accented letter, CJK, an emoji) may span tokens, and a token alone then decodes to the
    replacement character U+FFFD. So the text is decoded from a short window of recent ids:
    ``decode(ids[prefix:])`` minus ``decode(ids[prefix:read])`` is the new text, and it is held
    back while it ends in U+FFFD (an unfinished character). ``flush`` returns what is held back
    when the generation ends. Special tokens (end of sequence) are not shown.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # ids[prefix:read] is the window already shown
        self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        shown = self._decode(self.ids[self.prefix:self.read])
        text = self._decode(self.ids[self.prefix:])
        if len(text) > len(shown) and not text.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return text[len(shown):]
        return ""

    def flush(self) -> str:
        shown = self._decode(self.ids[self.prefix:self.read])
        text = self._decode(self.ids[self.prefix:])
        self.prefix = self.read = len(self.ids)
        return text[len(shown):]


class _StopStrings:
    """Cut the generated text before the first stop string; hold back a possible start of one."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""   # everything generated so far (after detokenizing)
        self.sent = 0    # characters of it already released
        self.hit = False

    def feed(self, delta: str, final: bool = False) -> str:
        """Release what may be shown now; sets ``hit`` once a stop string appeared."""
        self.text += delta
        cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit = True
            end = cut
        else:
            end = len(self.text) if final else max(self.sent, len(self.text) - self.hold)
        out = self.text[self.sent:end]
        self.sent = end
        return out


# ---------------------------------------------------------------------------------------------
# Parameters


def _number(body: dict, name: str, default, lo=None, hi=None, *, integer=False,
            lo_open=False, allow_none=True):
    value = body.get(name, default)
    if value is None and allow_none:
        return default
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise RequestError(f"'{name}' must be {kind}, got {value!r}", param=name)
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise RequestError(f"'{name}' must be {'>' if lo_open else '>='} {lo}, got {value!r}",
                           param=name)
    if hi is not None and value > hi:
        raise RequestError(f"'{name}' must be <= {hi}, got {value!r}", param=name)
    return value


_REFUSED = {  # parameter -> the value that is fine (anything else is refused)
    "logprobs": (None, False), "top_logprobs": (None,), "echo": (None, False),
    "best_of": (None, 1), "suffix": (None,), "tools": (None, []), "functions": (None, []),
    "tool_choice": (None, "none"), "response_format": (None, {"type": "text"}),
    "logit_bias": (None, {}),
}


@dataclass
class _Request:
    prompt_ids: list[int]
    params: Any
    stops: list[str]
    stream: bool
    include_usage: bool


def _parse_common(body: dict, prompt_ids: list[int], tokenizer: Any, max_model_len: int,
                  default_max_tokens: int, sampling_params_cls: Any) -> _Request:
    for name, fine in _REFUSED.items():
        if name in body and body[name] not in fine:
            raise RequestError(f"'{name}' is not supported by this server", param=name)
    n = _number(body, "n", 1, integer=True)
    if n != 1:
        raise RequestError(f"'n' must be 1 (this server makes one choice per request), got {n}",
                           param="n")
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0, lo_open=True)
    top_k = _number(body, "top_k", None, -1, integer=True)
    if top_k is not None and top_k < 1:
        top_k = None  # -1 or 0: no top-k cut, as vLLM reads them
    seed = _number(body, "seed", None, integer=True)
    if not prompt_ids:
        raise RequestError("the prompt is empty: give at least one token", param="prompt")
    room = max_model_len - len(prompt_ids)
    mt_name = "max_completion_tokens" if body.get("max_completion_tokens") is not None \
        else "max_tokens"
    max_tokens = _number(body, mt_name, None, 1, integer=True)
    if room < 1 or (max_tokens is not None and max_tokens > room):
        asked = f" + {max_tokens} tokens to generate" if max_tokens is not None else ""
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {len(prompt_ids) + (max_tokens or 0)} tokens ({len(prompt_ids)} in the "
            f"prompt{asked}). Please reduce the length of the prompt or of max_tokens.",
            param="messages" if "messages" in body else "prompt", code="context_length_exceeded")
    if max_tokens is None:
        max_tokens = min(default_max_tokens, room)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) \
            or len(stops) > MAX_STOP_STRINGS:
        raise RequestError(f"'stop' must be a non-empty string or a list of at most "
                           f"{MAX_STOP_STRINGS} of them, got {stop!r}", param="stop")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError(f"'stream' must be true or false, got {stream!r}", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError("'stream_options' must be an object", param="stream_options")
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise RequestError(f"'ignore_eos' must be true or false, got {ignore_eos!r}",
                           param="ignore_eos")
    eos = getattr(tokenizer, "eos_token_id", None)
    stop_ids = () if ignore_eos or eos is None else (int(eos),)
    params = sampling_params_cls(temperature=float(temperature), top_p=float(top_p), top_k=top_k,
                                 max_tokens=max_tokens, stop_token_ids=stop_ids, seed=seed)
    return _Request(prompt_ids, params, stops, stream, bool(options.get("include_usage")))


def _completion_prompt(body: dict, tokenizer: Any, vocab_size: int) -> list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one prompt
    if isinstance(prompt, str):
        return list(tokenizer.encode(prompt, add_special_tokens=False))
    if isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool)
                                        for t in prompt):
        bad = [t for t in prompt if not 0 <= t < vocab_size]
        if bad:
            raise RequestError(f"token id {bad[0]} in 'prompt' is outside the vocabulary "
                               f"(0 to {vocab_size - 1})", param="prompt")
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        raise RequestError(f"one prompt per request, got {len(prompt)}: send them as separate "
                           "requests (they are batched on the server)", param="prompt")
    raise RequestError("'prompt' must be a string or a list of token ids", param="prompt")


def _chat_prompt(body: dict, tokenizer: Any) -> list[int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects",
                           param="messages")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError(f"messages[{i}] must be an object with a 'role' string",
                               param=f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text ones
            if not all(isinstance(p, dict) and p.get("type") == "text"
                       and isinstance(p.get("text"), str) for p in content):
                raise RequestError(f"messages[{i}].content: only text parts are supported",
                                   param=f"messages[{i}].content")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise RequestError(f"messages[{i}].content must be a string", 
                               param=f"messages[{i}].content")
        clean.append({"role": m["role"], "content": content})
    ids = tokenizer.apply_chat_template(clean, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # some versions return a BatchEncoding
        ids = ids["input_ids"]
    return [int(t) for t in ids]


# ---------------------------------------------------------------------------------------------
# The app


def _error_response(err: RequestError):
    from fastapi.responses import JSONResponse
    return JSONResponse(err.body(), status_code=err.status)


def build_app(worker: EngineWorker, *, model_name: str = MODEL_NAME,
              default_max_tokens: int = 256):
    """The FastAPI app serving ``worker``'s engine (the worker must be started)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    engine = worker.engine
    tokenizer = engine.tokenizer
    vocab_size = len(tokenizer)
    params_cls = _sampling_params_class(engine)
    app = FastAPI(title="course.server", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    @app.exception_handler(RequestError)
    async def _request_error(request, err: RequestError):
        return _error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, err):
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        return _error_response(RequestError(
            f"{request.method} {request.url.path}: {err.detail}", status=err.status_code,
            type=kind))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, err):
        return _error_response(RequestError(f"invalid request: {err.errors()!r}"))

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model",
                                            "created": created, "owned_by": "course"}]}

    async def read_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(f"the request body is not valid JSON ({err})")
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != model_name:
            raise RequestError(f"The model '{model}' does not exist: this server serves "
                               f"'{model_name}'", param="model", status=404,
                               code="model_not_found")
        return body

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await read_body(request)
        prompt_ids = _completion_prompt(body, tokenizer, vocab_size)
        req = _parse_common(body, prompt_ids, tokenizer, engine.max_model_len, 16, params_cls)
        return await serve(request, req, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request)
        prompt_ids = _chat_prompt(body, tokenizer)
        req = _parse_common(body, prompt_ids, tokenizer, engine.max_model_len,
                            default_max_tokens, params_cls)
        return await serve(request, req, chat=True)

    async def serve(request: Request, req: _Request, chat: bool):
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        sink = _Sink(asyncio.get_running_loop(), asyncio.Queue())
        try:
            await asyncio.wrap_future(worker.submit(rid, req.prompt_ids, req.params, sink))
        except ValueError as err:  # the engine refused it
            raise RequestError(str(err), param="prompt")
        except ShuttingDown as err:
            raise RequestError(str(err), status=503, type="server_error")
        except Exception as err:  # the engine broke while adding it (an unwritten piece?)
            log.error("add_request failed:\n%s", traceback.format_exc())
            raise RequestError(f"the engine failed to add this request: {type(err).__name__}: "
                               f"{err}", status=500, type="server_error")
        except asyncio.CancelledError:
            worker.abort(rid)  # cancelled while the engine took it: nobody will read it
            raise
        gen = _Generation(rid, req, tokenizer, worker, sink, request)
        if req.stream:
            return StreamingResponse(_sse(gen, chat, model_name), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            text, reason = await gen.run_to_end()
        finally:
            gen.close()
        if reason is None:
            return JSONResponse({}, status_code=499)  # the client left; nobody reads this
        if reason == "error":
            raise RequestError(gen.error, status=500, type="server_error")
        choice = {"index": 0, "finish_reason": reason, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return {"id": rid, "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": model_name, "choices": [choice],
                "usage": gen.usage()}

    return app


def _sampling_params_class(engine: Any):
    cls = getattr(engine, "SamplingParams", None)
    if cls is None:
        from course.engine import SamplingParams as cls
    return cls


class _Generation:
    """One request's outputs, as text deltas, with stop strings and disconnects handled."""

    def __init__(self, rid, req: _Request, tokenizer, worker, sink, request):
        self.rid, self.req, self.worker, self.sink, self.request = rid, req, worker, sink, request
        self.detok = IncrementalDetokenizer(tokenizer)
        self.stops = _StopStrings(req.stops)
        self.completion_tokens = 0
        self.done = False
        self.error = ""

    def usage(self) -> dict:
        n = len(self.req.prompt_ids)
        return {"prompt_tokens": n, "completion_tokens": self.completion_tokens,
                "total_tokens": n + self.completion_tokens}

    async def _next(self):
        """The next StepOutput; None when the client disconnected (checked at each output,
        and every ``DISCONNECT_POLL_S`` while none comes)."""
        while True:
            try:
                out = await asyncio.wait_for(self.sink.queue.get(), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                out = None
            if await self.request.is_disconnected():
                return None
            if out is not None:
                return out

    async def deltas(self):
        """Yield (text, finish_reason) pairs: one per token, the last with its reason.

        finish_reason is None until the end; a disconnected client ends the iteration early.
        """
        while not self.done:
            out = await self._next()
            if out is None:
                return
            if out.token_id is not None:
                self.completion_tokens += 1
                piece = self.detok.add(out.token_id)
            else:
                piece = ""
            if out.finished:
                self.done = True
                piece += self.detok.flush()
            text = self.stops.feed(piece, final=out.finished)
            if self.stops.hit and not out.finished:
                self.done = True
                self.worker.abort(self.rid)  # stop string: the engine stops here
                yield text, "stop"
                return
            if out.finished:
                reason = out.finish_reason
                if reason == "error":
                    self.error = getattr(out, "message", "the engine failed on this request")
                elif reason not in ("stop", "length"):
                    reason = "stop" if self.stops.hit else (reason or "stop")
                yield text, ("stop" if self.stops.hit and reason != "error" else reason)
                return
            yield text, None

    async def run_to_end(self) -> tuple[str, str | None]:
        parts, reason = [], None
        async for text, reason in self.deltas():
            parts.append(text)
        return "".join(parts), reason

    def close(self) -> None:
        """Abort the request in the engine unless it finished (a client that left)."""
        if not self.done:
            self.done = True
            self.worker.abort(self.rid)


def _sse_event(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _sse(gen: _Generation, chat: bool, model_name: str):
    created = int(time.time())
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(text: str | None, reason: str | None, role: bool = False) -> dict:
        if chat:
            delta = {} if text is None else {"content": text}
            if role:
                delta = {"role": "assistant", "content": ""}
            choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": reason, "logprobs": None}
        return {"id": gen.rid, "object": kind, "created": created, "model": model_name,
                "choices": [choice]}

    try:
        if chat:
            yield _sse_event(chunk(None, None, role=True))
        async for text, reason in gen.deltas():
            if reason == "error":
                yield _sse_event({"error": {"message": gen.error, "type": "server_error",
                                            "param": None, "code": None}})
                return
            if chat and reason is not None:  # OpenAI: the reason comes in a chunk of its own
                if text:
                    yield _sse_event(chunk(text, None))
                yield _sse_event(chunk(None, reason))
            else:
                yield _sse_event(chunk(text, reason))
        if not gen.done:
            return  # the client left
        if gen.req.include_usage:
            last = chunk(None, None)
            last["choices"], last["usage"] = [], gen.usage()
            yield _sse_event(last)
        yield "data: [DONE]\n\n"
    finally:
        gen.close()


# ---------------------------------------------------------------------------------------------
# Starting it


def make_server(engine: Any, *, host: str = "127.0.0.1", port: int = 8000,
                model_name: str = MODEL_NAME, default_max_tokens: int = 256,
                log_level: str = "warning"):
    """A uvicorn server for `engine` and its started worker: ``server.run()`` serves until
    ``server.should_exit`` is set; then call ``worker.stop()``. Port 0 picks a free port
    (read it from ``server.servers[0].sockets[0].getsockname()[1]`` once ``server.started``)."""
    import uvicorn

    worker = EngineWorker(engine).start()
    app = build_app(worker, model_name=model_name, default_max_tokens=default_max_tokens)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=2, lifespan="off")
    return uvicorn.Server(config), worker


def build_parser() -> argparse.ArgumentParser:
    """The command line (README's commands are checked against it)."""
    parser = argparse.ArgumentParser(
        prog="python -m course.server",
        description="Serve SmolLM2-135M-Instruct with the capstone engine behind an "
                    "OpenAI-compatible API (/v1/completions, /v1/chat/completions).")
    parser.add_argument("--impl", default="exercises",
                        help="the pieces the engine runs: exercises (yours, the default), "
                             "solutions, or a folder laid out like exercises/")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--num-blocks", type=int, default=512,
                        help="KV-cache blocks (default 512, of --block-size tokens each)")
    parser.add_argument("--block-size", type=int, default=16, help="tokens per block (16)")
    parser.add_argument("--token-budget", type=int, default=256,
                        help="tokens one engine step may process (default 256)")
    parser.add_argument("--max-running", type=int, default=32,
                        help="requests in the running batch at most (default 32)")
    parser.add_argument("--no-prefix-cache", action="store_true", help="turn prefix caching off")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--max-tokens-default", type=int, default=256,
                        help="max_tokens of a chat request that gives none (default 256)")
    parser.add_argument("--log-level", default="info")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0 to 65535, got {args.port}")

    import torch

    from course.engine import Engine, EngineError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"loading SmolLM2-135M-Instruct with the pieces of '{args.impl}' ...", flush=True)
    try:
        engine = Engine.from_pretrained(
            args.impl, num_blocks=args.num_blocks, block_size=args.block_size,
            token_budget=args.token_budget, max_running=args.max_running,
            prefix_cache=not args.no_prefix_cache, device=args.device,
            dtype=getattr(torch, args.dtype))
    except (EngineError, ValueError) as err:
        print(f"course.server: cannot start the engine: {err}", file=sys.stderr)
        return 1
    server, worker = make_server(engine, host=args.host, port=args.port,
                                 default_max_tokens=args.max_tokens_default,
                                 log_level=args.log_level)
    print(f"serving '{MODEL_NAME}' on http://{args.host}:{args.port}/v1 (Ctrl-C stops)",
          flush=True)
    try:
        server.run()
    finally:
        worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
