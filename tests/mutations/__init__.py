"""Planted bugs, one module per lesson: each lists the mutations of its reference solution
that its graders must catch (see tests/test_graders_catch_bugs.py).

Every mutation names the class of learner mistake it stands for (``kind``, one of
``BUG_CLASSES``). Each lesson module either plants at least one bug of every class or says in
``NOT_APPLICABLE`` why a class has nothing to catch in that lesson; ``tests/test_repo.py`` checks
this, so a new lesson cannot skip a class silently.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

# The classes of mistakes learners make that a grader must be able to see. Random inputs rarely
# expose them: each needs an input written for it.
BUG_CLASSES = {
    "logic": "the algorithm itself is wrong (wrong formula, wrong order of steps)",
    "extreme": "numerically extreme but legal inputs: logits in the hundreds, temperatures "
               "near zero, exp without max-subtraction, very large or very small scales",
    "rows-differ": "a per-row quantity (threshold, maximum, length) computed over the whole "
                   "batch: only rows that differ expose it",
    "boundary": "exact boundaries and ties: a cut-off hit exactly, equal candidates, strict "
                "vs non-strict inequality, one past the end",
    "special-value": "token id 0, length 0 or 1, an empty table, a single block, a group of one",
    "multi-token": "a chunk of several new tokens, or the cache's contents, exposes what one "
                   "query at a time hides (order of keys, causal offsets)",
    "dtype-device": "bf16/fp16 inputs, results in the promised dtype, tensors on the inputs' "
                    "device",
    "unvaried-arg": "an argument the tests never vary: a process group, a non-default scale, "
                    "a direction recorded as a pair",
    "contract": "a contract in the docstring never asserted: what is raised, what is recorded "
                "and in which order, what is left unchanged",
    "cost": "the right answer at the wrong cost: extra copies, a Python loop, extra "
            "collectives, more FLOPs or bytes than the lesson allows",
}


@dataclass(frozen=True)
class Mutation:
    name: str
    lesson: str  # "lessonNN", or "capstone"
    file: str  # in the lesson's folder; for the capstone "lessonNN/module.py"
    old: str
    new: str
    catchers: tuple[str, ...]  # node ids relative to the repo root that must fail
    gpu: bool = False  # the catchers are GPU graders: run only where CUDA is
    kind: str = "logic"  # one of BUG_CLASSES

    def __post_init__(self):
        if self.kind not in BUG_CLASSES:
            raise ValueError(f"mutation '{self.name}': kind {self.kind!r} is not one of "
                             f"{sorted(BUG_CLASSES)}")


def lesson_modules() -> list:
    return [importlib.import_module(f"{__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
            if info.name.startswith("lesson") or info.name == "capstone"]


def all_mutations() -> list[Mutation]:
    found = []
    for module in lesson_modules():
        found += module.MUTATIONS
    return found
