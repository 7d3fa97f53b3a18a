"""course.kernel_bench on the CPU: the loader, the missing-kernel rows, the table and its JSON,
and the one-line refusal without a GPU (the timings themselves need a GPU; hardware_fixtures/ records them)."""

import json
import sys

import pytest
import torch

from course import kernel_bench as kb


def write(root, lesson, module, text):
    folder = root / lesson
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    (folder / f"{module}.py").write_text(text)


def bench(needs, run, shapes=((1, 2), (3, 4))):
    return kb.Bench("fake", needs, shapes, run, lambda s: ("fake kernel", f"{s[0]} x {s[1]}",
                                                          "fake baseline"))


def test_modules_load_by_file_with_relative_imports_and_leave_exercises_alone(tmp_path):
    write(tmp_path, "lesson15", "helper", "VALUE = 41\n")
    write(tmp_path, "lesson15", "kern", "from .helper import VALUE\n\ndef f():\n    return VALUE + 1\n")
    before = {n for n in sys.modules if n.startswith("exercises")}
    fns = kb.load_functions(tmp_path, (("lesson15", "kern", "f"),))
    assert fns["f"]() == 42
    assert {n for n in sys.modules if n.startswith("exercises")} == before


def test_a_missing_file_attribute_or_triton_is_a_row_per_shape(tmp_path, monkeypatch):
    rows = kb.run_bench(bench((("lesson12", "nope", "f"),), None), tmp_path)
    assert [r.status for r in rows] == ["missing", "missing"]
    assert "no lesson12/nope.py" in rows[0].note and rows[1].shape == "3 x 4"
    write(tmp_path, "lesson10", "k", "def g():\n    pass\n")
    rows = kb.run_bench(bench((("lesson10", "k", "f"),), None), tmp_path, quick=True)
    assert len(rows) == 1 and rows[0].status == "missing" and "defines no f" in rows[0].note
    monkeypatch.setitem(sys.modules, "triton", None)
    write(tmp_path, "lesson16", "t", "import triton\n\ndef f():\n    pass\n")
    rows = kb.run_bench(bench((("lesson16", "t", "f"),), None), tmp_path)
    assert rows[0].status == "missing" and "Triton is not installed" in rows[0].note


def test_a_stub_an_error_and_a_timed_row(tmp_path):
    write(tmp_path, "lesson15", "k", "def f(x):\n    raise NotImplementedError('lesson15: f')\n")

    def run(fns, shape, quick):
        if shape == (3, 4):
            raise RuntimeError("launch failed\nmore detail")
        fns["f"](1)

    rows = kb.run_bench(bench((("lesson15", "k", "f"),), run), tmp_path)
    assert rows[0].status == "missing" and "not written yet" in rows[0].note
    assert rows[1].status == "error" and rows[1].note == "RuntimeError: launch failed"

    def timed(fns, shape, quick):
        return [kb.Row("fake", "k", "s", "b", kernel_us=10.0, baseline_us=9.0, target=0.9).judge(),
                kb.Row("fake", "k", "s", "b", kernel_us=10.0, baseline_us=8.0, target=0.9).judge(),
                kb.Row("fake", "k", "s", "b", kernel_us=10.0, baseline_us=30.0)]

    rows = kb.run_bench(bench((("lesson15", "k", "f"),), timed, shapes=((1, 1),)), tmp_path)
    assert [r.status for r in rows] == ["pass", "FAIL", "-"]
    assert rows[0].ratio == pytest.approx(0.9) and rows[2].ratio == pytest.approx(3.0)


def test_table_and_json():
    rows = [kb.Row("w4a16", "lesson15 w4a16_gemv_triton", "1 x 4096 -> 4096", "torch int4 kernel",
                   kernel_us=8.0, baseline_us=12.0, target=1.0, note="weights at 1 GB/s").judge(),
            kb.Row("paged", "lesson12 paged_decode_triton", "64 x 4096", "dense SDPA",
                   target=0.9, status="missing", note="no lesson12/triton_paged.py in x")]
    text = kb.format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["kernel", "shape"] and set(lines[1]) <= {"-", " "}
    assert "1.50x" in lines[2] and ">= 1.00x" in lines[2] and lines[2].rstrip().endswith("pass")
    assert lines[3].strip() == "weights at 1 GB/s"
    assert lines[4].rstrip().endswith("missing") and " - " in lines[4]
    assert lines[5].strip().startswith("no lesson12/triton_paged.py")
    data = json.loads(json.dumps(kb.to_json(rows, {"device": "x"})))
    assert data["device"] == "x" and data["rows"][0]["ratio"] == pytest.approx(1.5)
    assert data["rows"][1]["ratio"] is None and data["rows"][1]["status"] == "missing"


def test_without_a_gpu_one_line_and_exit_code_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert kb.main(["--impl", "solutions", "--only", "w4a16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA GPU" in err
    with pytest.raises(SystemExit):
        kb.parse(["--only", "nonsense"])


def test_every_bench_is_named_and_loads_from_the_reference():
    """Every name a bench loads exists in the reference (the Triton modules are read as text:
    they import Triton, which may be absent)."""
    assert [b.name for b in kb.BENCHES] == ["paged", "paged_torch", "paged_fp8", "w4a16",
                                            "split_kv", "graph"]
    root = kb.impl_root("solutions")
    for b in kb.BENCHES:
        for lesson, module, attr in b.needs:
            path = root / lesson / f"{module}.py"
            assert path.is_file(), f"a bench needs {lesson}/{module}.py"
            if module.startswith("triton"):
                assert f"def {attr}(" in path.read_text(), f"{lesson}/{module}.py lacks {attr}"
            else:
                assert callable(kb.load_functions(root, ((lesson, module, attr),))[attr])
