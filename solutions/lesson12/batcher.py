"""Iteration-level (continuous) batching over a paged KV cache, simulated (Orca, OSDI 2022).

No model runs here: a step is one forward pass of the engine, and what matters is which
sequences are in it and how many KV blocks they hold. Per step, in order:

1. admit waiting requests (first come, first served) while the batch has room and the
   blocks they may ever need fit; each admitted request is prefilled: its prompt's slots
   are taken and it produces its first output token in this same step;
2. decode one token for every sequence that was running before this step: write the KV of
   its previous token (one ``append_token``) and produce the next token;
3. retire every sequence that has produced ``output_len`` tokens and free its blocks at once.

Token accounting: after prefill a sequence holds ``prompt_len`` cached tokens and has
produced 1 token; each decode adds one cached token and one produced token. A request that
ends after ``n`` tokens has held at most ``prompt_len + n - 1`` slots.

Admission never over-commits: a request is admitted only if the free blocks, less the
blocks that running sequences may still claim up to their ``max_new_tokens``, cover
everything this request may need. So no decode ever runs out of blocks, without preemption
(preemption comes in lesson 18).

Read: learning/lesson12.md#continuous-batching
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .allocator import BlockAllocator
from .block_table import BlockTable


@dataclass
class Request:
    """A generation request. ``output_len`` (default ``max_new_tokens``) is how many tokens
    it will actually produce - unknown to the scheduler, which may only use the cap."""

    id: int
    prompt_len: int
    max_new_tokens: int
    output_len: int | None = None
    arrival: int = 0  # the step at which the request reaches the server

    def __post_init__(self):
        if self.output_len is None:
            self.output_len = self.max_new_tokens
        if self.prompt_len < 1 or self.max_new_tokens < 1:
            raise ValueError(f"request {self.id}: prompt_len and max_new_tokens must be >= 1")
        if not 1 <= self.output_len <= self.max_new_tokens:
            raise ValueError(f"request {self.id}: output_len must be in 1..max_new_tokens")


@dataclass
class Sequence:
    request: Request
    table: BlockTable
    produced: int = 0


@dataclass
class StepResult:
    step: int
    admitted: list[int] = field(default_factory=list)  # prefilled in this step
    decoded: list[int] = field(default_factory=list)  # produced one more token
    finished: list[int] = field(default_factory=list)  # retired, blocks freed


def worst_case_blocks(request: Request, block_size: int) -> int:
    """Blocks a request may ever hold: ``prompt_len + max_new_tokens - 1`` slots."""
    return -(-(request.prompt_len + request.max_new_tokens - 1) // block_size)


class _Engine:
    """What both batchers share: the queues, prefill, decode and retirement of sequences."""

    def __init__(self, allocator: BlockAllocator, block_size: int, max_batch_size: int):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.allocator = allocator
        self.block_size = block_size
        self.max_batch_size = max_batch_size
        self.waiting: deque[Request] = deque()
        self.running: list[Sequence] = []
        self.steps = 0

    def add(self, request: Request) -> None:
        need = worst_case_blocks(request, self.block_size)
        if need > self.allocator.num_blocks:
            raise ValueError(f"request {request.id} may need {need} blocks; the cache has "
                             f"only {self.allocator.num_blocks}: it could never run")
        self.waiting.append(request)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def reserved_blocks(self) -> int:
        """Blocks that running sequences may still claim before they finish."""
        return sum(worst_case_blocks(s.request, self.block_size) - len(s.table.blocks)
                   for s in self.running)

    def prefill(self, request: Request) -> Sequence:
        table = BlockTable(self.allocator, self.block_size)
        for _ in range(request.prompt_len):
            table.append_token()
        seq = Sequence(request, table, produced=1)
        self.running.append(seq)
        return seq

    def decode(self, seq: Sequence) -> None:
        seq.table.append_token()
        seq.produced += 1

    def retire_finished(self, result: StepResult) -> None:
        still = []
        for seq in self.running:
            if seq.produced >= seq.request.output_len:
                seq.table.free()
                result.finished.append(seq.request.id)
            else:
                still.append(seq)
        self.running = still


class ContinuousBatcher(_Engine):
    """Admits new requests at every step, as soon as a slot and the blocks allow.

    Read: learning/lesson12.md#continuous-batching
    """

    def can_admit(self, request: Request) -> bool:
        """Whether ``request`` can join the batch now without risking a later shortage.

        True when the batch has room and ``allocator.num_free - reserved_blocks()`` covers
        ``worst_case_blocks(request, block_size)``.

        Read: learning/lesson12.md#continuous-batching
        """
        ### BEGIN SOLUTION
        if len(self.running) >= self.max_batch_size:
            return False
        need = worst_case_blocks(request, self.block_size)
        return self.allocator.num_free - self.reserved_blocks() >= need
        ### END SOLUTION

    def step(self) -> StepResult:
        """Run one engine iteration: admit and prefill, decode the others, retire.

        Admission is first come, first served: the queue is in arrival order, a request is
        considered once ``arrival <= self.steps``, and admission stops at the first request
        that has not arrived or does not fit (nobody overtakes). Returns what happened and
        increments ``self.steps``. About 15 lines.

        Read: learning/lesson12.md#continuous-batching
        """
        ### BEGIN SOLUTION
        # hint: remember who was running before admitting: only they decode this step
        result = StepResult(self.steps)
        before = list(self.running)
        while self.waiting and self.waiting[0].arrival <= self.steps \
                and self.can_admit(self.waiting[0]):
            request = self.waiting.popleft()
            self.prefill(request)
            result.admitted.append(request.id)
        for seq in before:
            self.decode(seq)
            result.decoded.append(seq.request.id)
        self.retire_finished(result)
        self.steps += 1
        return result
        ### END SOLUTION


class StaticBatcher(_Engine):
    """Request-level batching, for comparison: a batch is formed only when the previous one
    has completely finished, and nothing joins it meanwhile (the batch runs as long as its
    longest member)."""

    def step(self) -> StepResult:
        result = StepResult(self.steps)
        before = list(self.running)
        if not self.running:
            while (self.waiting and self.waiting[0].arrival <= self.steps
                   and len(self.running) < self.max_batch_size
                   and self.allocator.num_free - self.reserved_blocks()
                   >= worst_case_blocks(self.waiting[0], self.block_size)):
                request = self.waiting.popleft()
                self.prefill(request)
                result.admitted.append(request.id)
        for seq in before:
            if seq.produced < seq.request.output_len:
                self.decode(seq)
                result.decoded.append(seq.request.id)
        # A static batch frees its memory only when all of its members are done.
        if all(s.produced >= s.request.output_len for s in self.running):
            self.retire_finished(result)
        self.steps += 1
        return result


@dataclass
class TraceStats:
    steps: int
    finish_step: dict[int, int]
    first_token_step: dict[int, int]
    peak_blocks_used: int


def run_trace(batcher: _Engine, requests: list[Request], max_steps: int = 100_000) -> TraceStats:
    """Feed ``requests`` (sorted by arrival) to ``batcher`` and step until all are done."""
    for request in sorted(requests, key=lambda r: (r.arrival, r.id)):
        batcher.add(request)
    finish, first, peak = {}, {}, 0
    while batcher.has_unfinished():
        if batcher.steps >= max_steps:
            raise RuntimeError(f"not finished after {max_steps} steps: "
                               f"{len(batcher.waiting)} waiting, {len(batcher.running)} running")
        result = batcher.step()
        peak = max(peak, batcher.allocator.num_used)
        for rid in result.admitted:
            first[rid] = result.step
        for rid in result.finished:
            finish[rid] = result.step
    return TraceStats(batcher.steps, finish, first, peak)
