"""Every lesson's planted bugs cover every class of learner mistake (tests/mutations/__init__.py
BUG_CLASSES), or the lesson says why a class does not apply to it. A new lesson that skips a
class fails here until it plants a bug of that class or gives its reason."""

from __future__ import annotations

import pytest

from mutations import BUG_CLASSES, lesson_modules

MODULES = {m.__name__.rsplit(".", 1)[1]: m for m in lesson_modules()}


@pytest.mark.parametrize("lesson", sorted(MODULES))
def test_every_bug_class_is_planted_or_ruled_out(lesson):
    module = MODULES[lesson]
    planted = {m.kind for m in module.MUTATIONS}
    ruled_out = getattr(module, "NOT_APPLICABLE", {})
    assert not set(ruled_out) - set(BUG_CLASSES), \
        f"{lesson}: NOT_APPLICABLE names unknown classes {sorted(set(ruled_out) - set(BUG_CLASSES))}"
    both = planted & set(ruled_out)
    assert not both, f"{lesson}: {sorted(both)} are planted and also ruled out"
    short = [k for k, why in ruled_out.items() if len(why.split()) < 4]
    assert not short, f"{lesson}: give a real reason for ruling out {short}"
    missing = [k for k in BUG_CLASSES if k not in planted and k not in ruled_out]
    assert not missing, (
        f"{lesson}: no planted bug of the classes {missing} in tests/mutations/{lesson}.py and "
        "no reason in its NOT_APPLICABLE; plant one (with a grader that catches it) or say why "
        "the class has nothing to catch in this lesson")


@pytest.mark.parametrize("lesson", sorted(MODULES))
def test_every_mutation_belongs_to_its_lesson(lesson):
    wrong = [m.name for m in MODULES[lesson].MUTATIONS if m.lesson != lesson]
    assert not wrong, f"tests/mutations/{lesson}.py plants bugs of another lesson: {wrong}"
