"""Planted bugs, one module per lesson: each lists the mutations of its reference solution
that its graders must catch (see tests/test_graders_catch_bugs.py)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    name: str
    lesson: str
    file: str
    old: str
    new: str
    catchers: tuple[str, ...]  # node ids relative to the repo root that must fail
    gpu: bool = False  # the catchers are GPU graders: run only where CUDA is


def all_mutations() -> list[Mutation]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("lesson"):
            found += importlib.import_module(f"{__name__}.{info.name}").MUTATIONS
    return found
