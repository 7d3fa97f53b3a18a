"""The learner notebooks (notebooks/lessonNN.ipynb): generated from their sources, one per
lesson, clean on the reference, and stopped by the first stub on the untouched exercises.

Each notebook is executed by nbclient in its own kernel (no server). Against the reference
(``$COURSE_IMPL=solutions``) every cell must run without an error; the test cell only collects
the lesson's visible tests there (``$COURSE_NOTEBOOK_TESTS=collect``), since this suite runs
each of them already. Against the untouched stubs the notebook must stop with the
NotImplementedError of a stub of its own lesson, after its setup cell.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from autograder import notebooks

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.name for p in (ROOT / "solutions").iterdir()
                 if p.is_dir() and re.fullmatch(r"lesson\d\d", p.name))
SOURCES = {p.stem: p for p in notebooks.sources(ROOT)}
CELL_TIMEOUT_S = 300  # a cell's limit; the slowest reference cell takes a few seconds


def test_every_lesson_has_a_notebook():
    missing = [lesson for lesson in LESSONS if lesson not in SOURCES]
    assert not missing, f"no notebooks/<lesson>.py for: {missing}"


def test_notebooks_are_in_step_with_their_sources():
    lines = notebooks.diff(ROOT)
    assert not lines, "a notebook is stale or was edited by hand; run `autograder sync`:\n" + \
        "".join(lines[:60])


@pytest.mark.parametrize("lesson", sorted(SOURCES))
def test_notebook_shape(lesson):
    """Setup first, the visible tests last, a text cell on top, no magics (autoreload comes
    from setup), and a link to the lesson's text."""
    import nbformat

    nb = nbformat.reads((ROOT / "notebooks" / f"{lesson}.ipynb").read_text(), as_version=4)
    nbformat.validate(nb)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        "the first cell is a markdown title"
    assert f'setup("{lesson}")' in code[0], "the first code cell calls setup(<this lesson>)"
    assert code[-1].strip() == f'run_tests("{lesson}")', "the last cell runs the visible tests"
    assert not any(line.lstrip().startswith(("%", "!")) for cell in code
                   for line in cell.splitlines()), "no IPython magics or shell escapes"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert f"../learning/{lesson}.md" in text, "link the lesson's text"


def _execute(lesson: str, impl: str, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_IMPL", impl)
    monkeypatch.setenv("COURSE_NOTEBOOK_TESTS", "collect")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # One thread per kernel: the suite runs beside other workers on a small machine, where
    # torch's default of a thread per core makes the notebooks' small tensors many times slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    nb = nbformat.reads((ROOT / "notebooks" / f"{lesson}.ipynb").read_text(), as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    return nb, client


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return re.sub(r"\x1b\[[0-9;]*m", "", "".join(parts))  # pytest's colours


@pytest.mark.parametrize("lesson", sorted(SOURCES))
def test_notebook_runs_clean_on_the_reference(lesson, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    nb, client = _execute(lesson, "solutions", monkeypatch)
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"notebooks/{lesson}.ipynb fails on the reference:\n{str(exc)[-3000:]}")
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    collected = _outputs_text(last)
    assert re.search(r"\b\d+ tests? collected", collected), \
        f"the test cell collected no tests:\n{collected[-2000:]}"
    images = sum(1 for c in nb.cells if c.cell_type == "code" for out in c.get("outputs", [])
                 if "image/png" in out.get("data", {}))
    declared = sum(c.source.count("show_plot(") for c in nb.cells if c.cell_type == "code")
    assert images >= declared, f"{declared} show_plot calls but {images} images shown"


@pytest.mark.parametrize("lesson", sorted(SOURCES))
def test_notebook_stops_at_the_first_stub(lesson, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    nb, client = _execute(lesson, "exercises", monkeypatch)
    with pytest.raises(CellExecutionError) as caught:
        client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(code)
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed, "no cell recorded the error"
    error = next(o for o in code[failed[0]].outputs if o.output_type == "error")
    assert error.ename == "NotImplementedError", \
        f"expected a stub's NotImplementedError, got {error.ename}: {error.evalue}\n" \
        f"{str(caught.value)[-2000:]}"
    assert error.evalue.startswith(f"{lesson}:"), \
        f"the first stub reached is not one of {lesson}'s: {error.evalue}"
    assert failed[0] >= 1, "the setup cell itself failed"
    assert json.dumps(nb.metadata.get("course", {})), "course metadata present"


# -- the converter and the notebook helper ------------------------------------------------------

def test_percent_source_converts_to_the_same_bytes_every_time():
    source = "# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n\n# %%\nprint(x)\n"
    first = notebooks.to_ipynb(source, "lesson99")
    assert first == notebooks.to_ipynb(source, "lesson99")
    nb = json.loads(first)
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "code", "code"]
    assert "".join(nb["cells"][0]["source"]) == "# Title\n\ntext"
    assert "".join(nb["cells"][1]["source"]) == "x = 1"
    assert [c["id"] for c in nb["cells"]] == ["lesson99-00", "lesson99-01", "lesson99-02"]
    assert all(c["outputs"] == [] and c["execution_count"] is None
               for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("source,message", [
    ("x = 1\n# %%\ny = 2\n", "before the first"),
    ("# %% [markdown]\nnot a comment\n", "start with '#'"),
    ("# %% [raw]\n# x\n", "unknown cell kind"),
    ("# %%\n\n# %%\nx = 1\n", "empty code cell"),
    ("\n\n", "no cells"),
])
def test_a_broken_source_is_refused_with_the_line(source, message):
    with pytest.raises(notebooks.NotebookError, match=message):
        notebooks.to_ipynb(source, "lesson99", "notebooks/lesson99.py")


def test_a_hand_edited_notebook_is_reported(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "lesson07.py").write_text("# %% [markdown]\n# # T\n# %%\nx = 1\n")
    assert notebooks.write(tmp_path) == [Path("notebooks/lesson07.ipynb")]
    assert notebooks.diff(tmp_path) == []
    path = tmp_path / "notebooks" / "lesson07.ipynb"
    path.write_text(path.read_text().replace("x = 1", "x = 2"))
    assert any("x = 2" in line for line in notebooks.diff(tmp_path))
    (tmp_path / "notebooks" / "lesson07.py").unlink()  # a notebook without a source goes
    assert notebooks.write(tmp_path) == [Path("notebooks/lesson07.ipynb")]
    assert not path.exists()


def test_lab_refuses_a_badly_named_lesson():
    from autograder import lab

    for bad in ("12", "lesson1", "Lesson12", 12):
        with pytest.raises(ValueError, match="lessonNN"):
            lab.setup(bad)


@pytest.mark.parametrize("impl,code,says", [("solutions", 0, "all visible tests pass"),
                                            ("exercises", 1, "some visible tests fail")])
def test_lab_runs_the_visible_tests_and_says_how_they_went(impl, code, says, monkeypatch,
                                                           capsys):
    from autograder import lab

    monkeypatch.setenv("COURSE_IMPL", impl)
    monkeypatch.delenv("COURSE_NOTEBOOK_TESTS", raising=False)
    monkeypatch.setattr(lab, "_state", {})
    assert lab.run_tests("lesson12", "-k", "waste") == code
    out = capsys.readouterr().out
    assert says in out and ("passed" in out if code == 0 else "failed" in out), out[-2000:]
