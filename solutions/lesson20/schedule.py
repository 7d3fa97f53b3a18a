"""Pipeline stages and micro-batch schedules, simulated on a unit-time clock.

A pipeline of ``p`` stages holds consecutive blocks of layers, one block per stage (one GPU
each). A batch is cut into ``m`` micro-batches that flow through the stages one after another.
``pipeline_schedule`` lays out every stage's operations on a clock where a forward of one
micro-batch on one stage takes ``FORWARD_UNITS`` and a backward ``BACKWARD_UNITS`` (about twice
a forward: it computes the gradients of both the activations and the weights):

* ``"forward"``: inference. Forward ops only; each stage runs micro-batches 0..m-1 in order.
* ``"gpipe"`` (Huang et al. 2019): every forward, then every backward.
* ``"1f1b"`` (PipeDream-Flush, Narayanan et al. 2021): stage ``s`` runs ``p - 1 - s`` warm-up
  forwards, then alternates one forward and one backward, then drains the backwards.

All three leave each stage idle for the same fraction of the timeline, the bubble
``(p - 1) / (m + p - 1)``; 1F1B keeps fewer micro-batches' activations alive at once.

Read: learning/lesson20.md#the-bubble
"""

from __future__ import annotations

from dataclasses import dataclass

FORWARD_UNITS = 1
BACKWARD_UNITS = 2
KINDS = ("forward", "gpipe", "1f1b")


@dataclass(frozen=True)
class Op:
    """One operation on one stage: ``kind`` is ``"F"`` or ``"B"``, on micro-batch
    ``microbatch``, from clock tick ``start`` for ``duration`` ticks."""

    kind: str
    microbatch: int
    start: int
    duration: int

    @property
    def end(self) -> int:
        return self.start + self.duration


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def split_layers(n_layers: int, pp: int) -> list[range]:
    """Consecutive, balanced blocks of layer indices, one per pipeline stage.

    ``n_layers`` layers over ``pp`` stages: every stage gets ``n_layers // pp`` layers and the
    FIRST ``n_layers % pp`` stages one more. ``split_layers(10, 4)`` is
    ``[range(0, 3), range(3, 6), range(6, 8), range(8, 10)]``. The ranges cover
    ``range(n_layers)`` in order, without gaps or overlaps, and never differ by more than one
    layer. Raises ValueError when ``pp < 1`` or ``pp > n_layers`` (a stage without layers).

    Read: learning/lesson20.md#stages-and-micro-batches
    """
    _check_positive("n_layers", n_layers)
    _check_positive("pp (the number of stages)", pp)
    if pp > n_layers:
        raise ValueError(f"cannot split {n_layers} layers over {pp} stages: a stage would "
                         "hold no layer")
    ### BEGIN SOLUTION
    base, extra = divmod(n_layers, pp)
    # stage s starts after s stages of `base` layers and min(s, extra) extra ones
    return [range(s * base + min(s, extra), (s + 1) * base + min(s + 1, extra))
            for s in range(pp)]
    ### END SOLUTION


def bubble_fraction(pp: int, n_microbatches: int) -> float:
    """Fraction of a pipeline's timeline that a stage spends idle: ``(p - 1) / (m + p - 1)``.

    The first micro-batch needs ``p - 1`` steps to reach the last stage, and the last one
    leaves the first stage ``p - 1`` steps before the end; the run lasts ``m + p - 1`` steps
    of which each stage works ``m``. One stage (``pp = 1``) has no bubble.

    Read: learning/lesson20.md#the-bubble
    """
    _check_positive("pp (the number of stages)", pp)
    _check_positive("n_microbatches", n_microbatches)
    ### BEGIN SOLUTION
    return (pp - 1) / (n_microbatches + pp - 1)
    ### END SOLUTION


def pipeline_schedule(pp: int, n_microbatches: int, kind: str) -> list[list[Op]]:
    """Every stage's operations, with start times, for ``kind`` in ``KINDS``.

    Returns ``stages``: ``stages[s]`` is stage ``s``'s list of ``Op`` in the order it runs
    them. A forward takes ``FORWARD_UNITS``, a backward ``BACKWARD_UNITS``. The rules:

    * a stage runs one op at a time, in its list's order;
    * ``F`` of micro-batch ``i`` on stage ``s > 0`` starts after ``F`` of ``i`` on stage
      ``s - 1`` ends (it needs those activations);
    * ``B`` of ``i`` on the last stage starts after its own ``F`` of ``i`` ends; on stage
      ``s < p - 1`` after ``B`` of ``i`` on stage ``s + 1`` ends (it needs that gradient);
    * every op starts as early as these rules allow (clock 0 for the first).

    Order of each stage's ops: ``"forward"``: ``F0 .. F(m-1)``; ``"gpipe"``: all forwards,
    then ``B0 .. B(m-1)``; ``"1f1b"``: ``w = min(p - 1 - s, m)`` warm-up forwards, then
    ``F(w) B0 F(w+1) B1 ..`` until the forwards run out, then the remaining backwards.

    Read: learning/lesson20.md#the-bubble
    """
    _check_positive("pp (the number of stages)", pp)
    _check_positive("n_microbatches", n_microbatches)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    p, m = pp, n_microbatches
    ### BEGIN SOLUTION
    # hint: first each stage's order of (kind, microbatch); then place ops: keep per stage the
    # hint: tick it is free and its next op, and sweep over the stages, placing every op whose
    # hint: input has an end time, until all are placed
    orders: list[list[tuple[str, int]]] = []
    for s in range(p):
        forwards = [("F", i) for i in range(m)]
        backwards = [("B", i) for i in range(m)]
        if kind == "forward":
            order = forwards
        elif kind == "gpipe":
            order = forwards + backwards
        else:
            warm = min(p - 1 - s, m)
            order = forwards[:warm]
            for i in range(m - warm):
                order += [forwards[warm + i], backwards[i]]
            order += backwards[m - warm:]
        orders.append(order)

    ends: dict[tuple[str, int, int], int] = {}  # (kind, stage, microbatch) -> end tick
    free = [0] * p  # tick at which each stage is free again
    nxt = [0] * p  # index of each stage's next op in its order
    stages: list[list[Op]] = [[] for _ in range(p)]
    while any(nxt[s] < len(orders[s]) for s in range(p)):
        progressed = False
        for s in range(p):
            while nxt[s] < len(orders[s]):
                op, i = orders[s][nxt[s]]
                if op == "F":
                    dep = ("F", s - 1, i) if s > 0 else None
                else:
                    dep = ("B", s + 1, i) if s < p - 1 else ("F", s, i)
                if dep is not None and dep not in ends:
                    break  # wait for another stage
                start = max(free[s], ends[dep] if dep is not None else 0)
                duration = FORWARD_UNITS if op == "F" else BACKWARD_UNITS
                stages[s].append(Op(op, i, start, duration))
                ends[(op, s, i)] = free[s] = start + duration
                nxt[s] += 1
                progressed = True
        if not progressed:  # pragma: no cover - the orders above never deadlock
            raise RuntimeError("schedule deadlocked")
    return stages
    ### END SOLUTION
