"""Run every GPU grader on the reference several times in one pytest process and summarise.

Two roles, both used by ``tools/gpu_repeat.sh``:

* a pytest plugin (``-p tools.gpu_repeat --repeat-runs N --repeat-dir DIR``): each selected
  test runs N times, in rounds (every grader once, then every grader again, ...). During round
  k, ``COURSE_BENCH_OUT`` points at ``DIR/runKK.jsonl``, so the figures each grader records
  with ``course.bench.record`` are filed by round; each test's outcome goes to
  ``DIR/outcomes.jsonl``.
* a summary (``python tools/gpu_repeat.py DIR``): per grader, passed / failed / skipped over
  the rounds and the first failure; per recorded figure (ratios, fractions, speed-ups), its
  value in every round with the minimum and maximum; and the THRESHOLD constants of each
  grader's file, to compare against.

One process instead of one per round saves the start-up (imports, CUDA context) N - 1 times.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

RUN_PARAM = "gpu_repeat_run"
FIGURE = re.compile(r"ratio|fraction|speedup|in_copies")
THRESHOLD = re.compile(r"^(\w*THRESHOLD\w*|MAX_LEFT_FREE)\s*=\s*([0-9.eE+-]+)", re.M)
PARAMS = re.compile(r"\[([^\]]*)\]$")


# ----------------------------------------------------------------------------- pytest plugin

def pytest_addoption(parser):
    group = parser.getgroup("gpu_repeat")
    group.addoption("--repeat-runs", type=int, default=1, help="rounds: run each test N times")
    group.addoption("--repeat-dir", default="gpu_repeat_out",
                    help="folder for runKK.jsonl (figures) and outcomes.jsonl")


_FOLDER: list[Path] = []  # the --repeat-dir of this session, resolved


def pytest_configure(config):
    folder = Path(config.getoption("--repeat-dir")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    _FOLDER[:] = [folder]


def _outcomes_path() -> Path:
    return _FOLDER[0] / "outcomes.jsonl"


def pytest_generate_tests(metafunc):
    runs = metafunc.config.getoption("--repeat-runs")
    if runs < 1:
        raise pytest.UsageError(f"--repeat-runs must be at least 1, got {runs}")
    metafunc.fixturenames.append(RUN_PARAM)
    metafunc.parametrize(RUN_PARAM, range(1, runs + 1),
                         ids=[f"run{k}" for k in range(1, runs + 1)])


def _round(item) -> int:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(RUN_PARAM, 1) if callspec else 1


def pytest_runtest_setup(item):
    """File the figures recorded during this call under its round (a hook, not a fixture: a
    name added to ``metafunc.fixturenames`` in pytest_generate_tests never gets its fixture
    function called)."""
    os.environ["COURSE_BENCH_OUT"] = str(_FOLDER[0] / f"run{_round(item):02d}.jsonl")


def pytest_collection_modifyitems(items):
    items.sort(key=_round)  # stable: round 1 of every grader, then round 2, ...


def pytest_runtest_logreport(report):
    outcome = report.outcome
    if report.when != "call" and outcome == "passed":
        return
    if report.when != "call" and outcome == "failed":
        outcome = "error"
    message = ""
    if outcome in ("failed", "error"):
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash else str(report.longrepr)[-500:]
    elif outcome == "skipped" and isinstance(report.longrepr, tuple):
        message = report.longrepr[2]
    with open(_outcomes_path(), "a") as fh:
        fh.write(json.dumps({"nodeid": report.nodeid, "when": report.when, "outcome": outcome,
                             "message": message.splitlines()[0][:300] if message else ""}) + "\n")




# ----------------------------------------------------------------------------- summary

def grader_name(nodeid: str) -> str:
    """The node id without its round: test_x[64-4096-run3] -> test_x[64-4096], test_y[run2] -> test_y."""
    match = PARAMS.search(nodeid)
    if not match:
        return nodeid
    kept = [p for p in match.group(1).split("-") if not re.fullmatch(r"run\d+", p)]
    return nodeid[:match.start()] + (f"[{'-'.join(kept)}]" if kept else "")


def summarise(folder: Path) -> int:
    """Print the per-grader counts and per-figure values; return 1 if any round failed."""
    results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first_failure: dict[str, str] = {}
    outcomes = folder / "outcomes.jsonl"
    final: dict[str, tuple[str, str]] = {}
    for line in outcomes.read_text().splitlines() if outcomes.exists() else []:
        row = json.loads(line)
        previous = final.get(row["nodeid"])
        if previous is None or previous[0] == "passed" or row["outcome"] in ("failed", "error"):
            final[row["nodeid"]] = (row["outcome"], row["message"])
    for nodeid, (outcome, message) in final.items():
        name = grader_name(nodeid)
        results[name][outcome] += 1
        if outcome in ("failed", "error") and name not in first_failure:
            first_failure[name] = message
    print(f"\n=== outcomes per grader (rounds found: "
          f"{len(sorted(folder.glob('run*.jsonl')))} with figures) ===")
    bad = 0
    for name in sorted(results):
        counts = results[name]
        bad += counts["failed"] + counts["error"]
        line = (f"{counts['passed']:3d} passed {counts['failed']:3d} failed "
                f"{counts['error']:3d} errors {counts['skipped']:3d} skipped  {name}")
        print(line)
        if name in first_failure:
            print(f"      first failure: {first_failure[name]}")
    if not results:
        print("no outcomes recorded: did pytest run with -p tools.gpu_repeat?")

    series: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(folder.glob("run*.jsonl")):
        k = int(path.stem[3:])
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            label = rec.get("test", "?") + (f"[{rec['shape']}]" if "shape" in rec else "")
            for key, value in rec.items():
                if FIGURE.search(key) and isinstance(value, (int, float)):
                    series[f"{label} {key}"][k] = float(value)
    print("\n=== recorded figures per round (min .. max) ===")
    for label in sorted(series):
        values = series[label]
        cells = " ".join(f"{values[k]:.4g}" for k in sorted(values))
        print(f"{label}: {cells}   [{min(values.values()):.4g} .. {max(values.values()):.4g}, "
              f"n={len(values)}]")
    if not series:
        print("no figures recorded (without CUDA every GPU grader skips before recording)")

    print("\n=== thresholds in the graders' files ===")
    root = Path(__file__).resolve().parent.parent
    files = sorted({n.split("::", 1)[0] for n in results} - {""}) or \
        sorted(str(p.relative_to(root)) for p in (root / "autograder/hidden").glob("*/test_gpu_*.py"))
    for rel in files:
        found = THRESHOLD.findall((root / rel).read_text()) if (root / rel).is_file() else []
        print(f"{rel}: " + (", ".join(f"{k} = {v}" for k, v in found) or "none found"))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/gpu_repeat.py FOLDER (the --repeat-dir of a run)")
    sys.exit(summarise(Path(sys.argv[1])))
