"""Bytes an eager chain of torch ops moves, counted op by op (CPU, deterministic, no timing).

Eager PyTorch runs one kernel per aten op: each kernel reads its input tensors from memory and
writes its outputs back. ``TrafficCounter`` records that traffic for every op dispatched while
it is active, as the sum of the sizes of the tensors the op takes and returns:

    >>> x = torch.randn(4, 8)
    >>> with TrafficCounter() as t:
    ...     y = (x * 2).exp()          # two ops: mul reads x, writes a temporary; exp likewise
    >>> t.bytes_read, t.bytes_written
    (256, 256)

What counts:

* an op's tensor arguments at the size it sees them (``numel x element_size``; a broadcast
  ``[1, T, d]`` input is ``T x d`` elements, not the size it is broadcast to) and its tensor
  outputs the same way;
* an in-place op (``add_``) reads and writes its target;
* views (``view``, ``reshape`` of a contiguous tensor, ``slice``, ``unsqueeze``, ``transpose``,
  ``expand``) move nothing: their output shares the input's storage and no data is copied;
* an op whose results are empty (a tensor with a zero-sized axis) moves nothing;
* 0-dimensional tensors (Python numbers torch wraps for ``x * 2``) are ignored.

This is the model of an UNFUSED chain (every intermediate makes a round trip through memory).
Caches are ignored: on a GPU an intermediate that fits in L2 may never reach HBM, so the count is
an upper bound on what the device really moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["OpTraffic", "TrafficCounter", "count_traffic"]


@dataclass(frozen=True)
class OpTraffic:
    """One aten op: its name and the bytes of tensors it read and wrote."""

    op: str
    bytes_read: int
    bytes_written: int

    def __str__(self) -> str:
        return f"{self.op}: read {self.bytes_read:,} B, wrote {self.bytes_written:,} B"


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor) and t.dim() > 0]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class TrafficCounter(TorchDispatchMode):
    """Context manager recording the bytes each aten op reads and writes (see the module
    docstring for what counts). Use a fresh counter for each measurement."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[OpTraffic] = []

    @property
    def bytes_read(self) -> int:
        return sum(o.bytes_read for o in self.log)

    @property
    def bytes_written(self) -> int:
        return sum(o.bytes_written for o in self.log)

    @property
    def total_bytes(self) -> int:
        """Bytes read plus bytes written, over every op recorded."""
        return self.bytes_read + self.bytes_written

    def report(self) -> str:
        """One line per op that moved data, for a readable failure message."""
        lines = [f"{len(self.log)} ops, {self.bytes_read:,} B read + {self.bytes_written:,} B "
                 f"written = {self.total_bytes:,} B"]
        return "\n".join(lines + [f"  {o}" for o in self.log])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs, outputs = _tensors((args, kwargs)), _tensors(out)
        mutates = func._schema.is_mutable
        shared = {StorageWeakRef(t.untyped_storage()) for t in inputs}
        if not mutates and outputs and all(StorageWeakRef(t.untyped_storage()) in shared
                                           for t in outputs):
            return out  # a view: nothing moves
        if outputs and not any(t.numel() for t in outputs):
            return out  # an empty result: no element computed, nothing to read
        self.log.append(OpTraffic(str(func), sum(map(_nbytes, inputs)),
                                  sum(map(_nbytes, outputs))))
        return out


def count_traffic(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> TrafficCounter:
    """Run ``fn(*args, **kwargs)`` under a fresh ``TrafficCounter`` and return the counter."""
    with TrafficCounter() as counter:
        fn(*args, **kwargs)
    return counter
