"""A step scheduler with a token budget, a block budget and preemption (vLLM, SOSP 2023).

An engine calls the scheduler once per step:

    scheduler.add(request)                 # when a request arrives
    plan = scheduler.schedule()            # who runs, how many tokens each, who was preempted
    sampled = engine.forward(plan)         # run plan.tokens; sample where a sequence is caught up
    scheduler.update(plan, sampled)        # advance, append the sampled tokens, retire

Token accounting. A sequence knows ``tokens = prompt + output`` and has the KV of the first
``num_computed`` of them in the cache. A step feeds it ``tokens[num_computed:num_computed + n]``;
when that reaches the end of ``tokens`` the engine samples one new token, which joins
``output`` (its KV is written by the next step: a decode feeds exactly that one token). So a
prompt of ``p`` tokens is a prefill of ``p`` tokens, possibly split over several steps (chunked
prefill, SARATHI 2023), and each later step is a decode of one token. KV slots held after a
step: ``num_computed + n``, in blocks of ``block_size``.

Per step, in order (see learning/lesson18.md#the-scheduling-loop):

1. running sequences, oldest admission first, each gets ``min(tokens it has not computed,
   budget left)`` tokens (a decode needs 1; a chunked prefill the rest of its prompt); if its
   new blocks do not fit, victims are preempted until they do (possibly itself);
2. only if nobody was preempted in this step: waiting requests, in queue order, are admitted
   while the budget, the free blocks and ``max_running`` allow; the head of the queue that does
   not fit stops admission (nobody overtakes it).

Preemption (learning/lesson18.md#preemption-recompute-or-swap): the victim's blocks are freed
and it goes back to the waiting queue, keeping its generated tokens. ``recompute`` drops its KV
(``num_computed = 0``: on readmission the engine prefills prompt + output again); ``swap``
copies its KV to host memory first (``num_computed`` is kept; the engine copies the blocks back
on readmission; host memory is assumed large enough).
"""

from __future__ import annotations

from dataclasses import dataclass, field

POLICIES = ("lifo", "priority")
MODES = ("recompute", "swap")


def blocks_for(n_tokens: int, block_size: int) -> int:
    """Blocks that hold ``n_tokens`` KV slots."""
    return -(-n_tokens // block_size)


@dataclass
class Request:
    """A generation request. ``priority``: lower is more important (0 before 1), as in vLLM."""

    id: int
    prompt: list[int]
    max_new_tokens: int
    arrival: int = 0  # the step at which it reaches the server
    priority: int = 0

    def __post_init__(self):
        if len(self.prompt) < 1 or self.max_new_tokens < 1:
            raise ValueError(f"request {self.id}: the prompt and max_new_tokens must be >= 1, "
                             f"got {len(self.prompt)} prompt tokens and max_new_tokens="
                             f"{self.max_new_tokens}")


@dataclass
class Sequence:
    """The scheduler's state of one request."""

    request: Request
    output: list[int] = field(default_factory=list)  # tokens generated so far
    num_computed: int = 0  # tokens whose KV is in the GPU cache (or on the host, if swapped)
    blocks: int = 0  # GPU blocks held
    admitted_order: int = -1  # larger = admitted more recently (set at every admission)
    preemptions: int = 0
    swapped: bool = False  # its KV is on the host

    @property
    def id(self) -> int:
        return self.request.id

    @property
    def tokens(self) -> list[int]:
        return self.request.prompt + self.output

    @property
    def finished(self) -> bool:
        return len(self.output) >= self.request.max_new_tokens


@dataclass
class Plan:
    """What one step runs. ``tokens`` maps a sequence id to the number of tokens it is fed,
    in schedule order; its sum never exceeds the token budget."""

    step: int
    tokens: dict[int, int] = field(default_factory=dict)
    admitted: list[int] = field(default_factory=list)  # taken from the waiting queue
    preempted: list[int] = field(default_factory=list)  # in the order they were preempted
    swap_out: dict[int, int] = field(default_factory=dict)  # id -> blocks copied to the host
    swap_in: dict[int, int] = field(default_factory=dict)  # id -> blocks copied back


class Scheduler:
    """FCFS admission under a token budget and a block budget, with preemption.

    ``policy`` picks the victim: ``"lifo"`` the most recently admitted running sequence
    (vLLM's default); ``"priority"`` the least important one by effective priority
    (``priority - waited // aging_steps``: a request gains one level per ``aging_steps`` steps
    since its arrival, so none waits forever), ties broken by the most recent admission. The
    waiting queue is ordered by ``(arrival, id)`` under ``lifo`` and by
    ``(effective priority, arrival, id)`` under ``priority``.
    """

    def __init__(self, num_blocks: int, block_size: int, token_budget: int,
                 max_running: int = 256, policy: str = "lifo", mode: str = "recompute",
                 aging_steps: int | None = 16):
        if num_blocks < 1 or block_size < 1 or token_budget < 1 or max_running < 1:
            raise ValueError(f"num_blocks, block_size, token_budget and max_running must be "
                             f">= 1, got {num_blocks}, {block_size}, {token_budget}, "
                             f"{max_running}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if aging_steps is not None and aging_steps < 1:
            raise ValueError(f"aging_steps must be >= 1 or None, got {aging_steps}")
        self.num_blocks, self.block_size = num_blocks, block_size
        self.token_budget, self.max_running = token_budget, max_running
        self.policy, self.mode, self.aging_steps = policy, mode, aging_steps
        self.free_blocks = num_blocks
        self.waiting: list[Sequence] = []  # kept in queue order (see ``_queue_key``)
        self.running: list[Sequence] = []  # in admission order, oldest first
        self.finished: list[Sequence] = []
        self.steps = 0
        self._admissions = 0

    # ---- given: queue order, bookkeeping after a step --------------------------------------

    def effective_priority(self, seq: Sequence) -> int:
        """``priority`` less one level per ``aging_steps`` steps waited since arrival."""
        waited = max(0, self.steps - seq.request.arrival)
        aged = waited // self.aging_steps if self.aging_steps else 0
        return seq.request.priority - aged

    def _queue_key(self, seq: Sequence) -> tuple:
        r = seq.request
        if self.policy == "priority":
            return (self.effective_priority(seq), r.arrival, r.id)
        return (r.arrival, r.id)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def update(self, plan: Plan, sampled: dict[int, int]) -> list[int]:
        """After the engine ran ``plan``: advance ``num_computed``, append the sampled token
        of every sequence that is now caught up, retire finished ones (their blocks are freed
        at once) and start the next step. Returns the ids that finished."""
        by_id = {s.id: s for s in self.running}
        done = []
        for sid, n in plan.tokens.items():
            seq = by_id[sid]
            seq.num_computed += n
            if seq.num_computed == len(seq.tokens):
                if sid not in sampled:
                    raise ValueError(f"sequence {sid} caught up in step {plan.step} but the "
                                     "engine sampled no token for it")
                seq.output.append(sampled[sid])
            if seq.finished:
                done.append(sid)
        for seq in [s for s in self.running if s.id in done]:
            self.running.remove(seq)
            self.free_blocks += seq.blocks
            seq.blocks = 0
            self.finished.append(seq)
        self.steps += 1
        return done

    # ---- what you write --------------------------------------------------------------------

    def add(self, request: Request) -> None:
        """Queue ``request``, or raise ValueError if it could never run (admission control).

        A request may hold ``len(prompt) + max_new_tokens - 1`` KV slots at most (the last
        token is sampled, never fed); if the blocks for that exceed ``num_blocks``, no amount
        of preemption can make room: raise ValueError naming the request, the blocks it needs
        and the blocks the cache has. Otherwise wrap it in a ``Sequence`` and insert it into
        ``self.waiting`` in queue order (``self._queue_key``).

        Read: learning/lesson18.md#admission-control
        """
        ### BEGIN SOLUTION
        need = blocks_for(len(request.prompt) + request.max_new_tokens - 1, self.block_size)
        if need > self.num_blocks:
            raise ValueError(f"request {request.id} may need {need} blocks but the cache has "
                             f"{self.num_blocks}: it could never run")
        self.waiting.append(Sequence(request))
        self.waiting.sort(key=self._queue_key)
        ### END SOLUTION

    def choose_victim(self) -> Sequence:
        """The running sequence to preempt under ``self.policy``.

        ``lifo``: the one admitted most recently (largest ``admitted_order``). ``priority``:
        the largest ``effective_priority``; among equals, the one admitted most recently.

        Read: learning/lesson18.md#choosing-a-victim
        """
        ### BEGIN SOLUTION
        if self.policy == "priority":
            return max(self.running,
                       key=lambda s: (self.effective_priority(s), s.admitted_order))
        return max(self.running, key=lambda s: s.admitted_order)
        ### END SOLUTION

    def preempt(self, seq: Sequence, plan: Plan) -> None:
        """Take running ``seq`` off the GPU and back to the waiting queue.

        Undo its part of ``plan`` if it was already scheduled this step (remove it from
        ``plan.tokens``; ``schedule`` gives those tokens back to its budget); free all its
        blocks; under
        ``recompute`` drop its KV (``num_computed = 0``); under ``swap`` record the blocks
        copied out in ``plan.swap_out`` and mark it ``swapped``. It keeps its ``output``.
        Count the preemption, append its id to ``plan.preempted`` and insert it into
        ``self.waiting`` in queue order. About 15 lines.

        Read: learning/lesson18.md#preemption-recompute-or-swap
        """
        ### BEGIN SOLUTION
        plan.tokens.pop(seq.id, None)
        self.running.remove(seq)
        if self.mode == "swap":
            plan.swap_out[seq.id] = blocks_for(seq.num_computed, self.block_size)
            seq.swapped = True
        else:
            seq.num_computed = 0
        self.free_blocks += seq.blocks
        seq.blocks = 0
        seq.preemptions += 1
        plan.preempted.append(seq.id)
        self.waiting.append(seq)
        self.waiting.sort(key=self._queue_key)
        ### END SOLUTION

    def schedule(self) -> Plan:
        """Plan one step within ``token_budget`` tokens and the free blocks.

        0. Re-sort ``waiting`` by ``_queue_key`` (aging changes the order over time).
        1. For each running sequence, oldest admission first: ``n = min(len(tokens) -
           num_computed, budget left)``; stop when the budget is spent. It needs
           ``blocks_for(num_computed + n) - blocks`` new blocks; while they exceed
           ``free_blocks``, preempt ``choose_victim()`` (if that is the sequence itself, it
           does not run; if the victim was already in ``plan.tokens``, its tokens return to
           the budget left). Then take the blocks and record ``plan.tokens[id] = n``.
        2. If nobody was preempted: admit from the head of ``waiting`` while the budget
           lasts, ``len(running) < max_running`` and its blocks fit, else stop. An admitted
           sequence gets ``n = min(len(tokens) - num_computed, budget left)``, its blocks,
           a new ``admitted_order`` (increment ``self._admissions`` and use it), joins
           ``running`` and ``plan.admitted``; a swapped one is copied back
           (``plan.swap_in[id]`` = its blocks before this step's tokens, ``swapped = False``).

        Returns the plan; ``update`` advances the sequences once the engine ran it. About 40
        lines.

        Read: learning/lesson18.md#the-scheduling-loop
        """
        ### BEGIN SOLUTION
        plan = Plan(self.steps)
        self.waiting.sort(key=self._queue_key)  # aging may have reordered it
        budget = self.token_budget
        for seq in list(self.running):
            if budget == 0:
                break
            if seq not in self.running:  # preempted earlier in this step
                continue
            n = min(len(seq.tokens) - seq.num_computed, budget)
            need = blocks_for(seq.num_computed + n, self.block_size) - seq.blocks
            while need > self.free_blocks and seq in self.running:
                victim = self.choose_victim()
                budget += plan.tokens.get(victim.id, 0)  # it may have been scheduled already
                self.preempt(victim, plan)
            if seq not in self.running:
                continue
            self.free_blocks -= need
            seq.blocks += need
            plan.tokens[seq.id] = n
            budget -= n
        while not plan.preempted and self.waiting and budget > 0 \
                and len(self.running) < self.max_running:
            seq = self.waiting[0]
            n = min(len(seq.tokens) - seq.num_computed, budget)
            need = blocks_for(seq.num_computed + n, self.block_size)
            if need > self.free_blocks:
                break
            self.waiting.pop(0)
            if seq.swapped:
                plan.swap_in[seq.id] = blocks_for(seq.num_computed, self.block_size)
                seq.swapped = False
            self.free_blocks -= need
            seq.blocks = need
            self._admissions += 1
            seq.admitted_order = self._admissions
            self.running.append(seq)
            plan.admitted.append(seq.id)
            plan.tokens[seq.id] = n
            budget -= n
        return plan
        ### END SOLUTION
