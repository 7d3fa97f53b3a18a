"""The lesson text against its sources: figures quoted from the GPU fixtures equal the fixtures',
references to other lessons land on the lesson that teaches the topic, and the worked examples
that plan memory or time are recomputed here from the fixtures and the model configs.

Conventions (CONTRIBUTING.md, "Numbers in lesson text"):

- A figure quoted from a fixture carries a marker in the same paragraph,
  `<!-- fixture: h100_sxm.calibration.bf16_gemm_flops_per_s = 695 TFLOP/s -->`: fixture name, key
  path in its TOML, and the figure exactly as the text prints it. The quoted string must appear in
  the paragraph and equal the fixture value rounded to the decimals printed.
- A paragraph that says "measured" and quotes a rate (TFLOP/s, TB/s, GB/s) marks every such rate.
- Another lesson is named only through a link: `[lesson 04](lesson04.md#bytes-per-token)`, whose
  anchor must be a heading of that lesson, or, for a lesson not yet written,
  `[lesson 17](README.md#the-lessons "TTFT")`, whose title must appear in that lesson's row of
  the course map. A bare "lesson 17" is refused: it is how "lesson 24 for TTFT" went unnoticed.
  Code (fenced blocks, `inline spans`) and the title line are exempt.
"""

from __future__ import annotations

import math
import re
import shutil
import tomllib
from pathlib import Path

import pytest

import hardware_fixtures as hf
from autograder import sync
from course.config import LLAMA2_7B, LLAMA3_8B

ROOT = Path(__file__).resolve().parent.parent
LEARNING = ROOT / "learning"
LESSON_FILES = sorted(LEARNING.glob("lesson[0-9][0-9].md"))

GiB = 2**30
UNITS = {"PFLOP/s": 1e15, "TFLOP/s": 1e12, "TB/s": 1e12, "GB/s": 1e9, "GB": 1e9, "MB": 1e6,
         "GiB": 2**30, "MiB": 2**20, "KiB": 2**10, "B": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6,
         "x": 1.0, "%": 1e-2, "": 1.0}
MARKER = re.compile(r"<!--\s*fixture:\s*([a-z0-9_]+)\.([A-Za-z0-9_.]+)\s*=\s*(.+?)\s*-->")
QUOTED = re.compile(r"^(\d[\d,]*(?:\.\d+)?)\s*([A-Za-z/%]*)$")
RATE = re.compile(r"\d[\d,]*(?:\.\d+)?\s*(?:TFLOP/s|PFLOP/s|TB/s|GB/s)")
LINK = re.compile(r"\[([Ll]essons?\s+(\d\d))\]\(([^)\s]*)(?:\s+\"([^\"]*)\")?\)")
BARE = re.compile(r"\b[Ll]essons?\s+\d\d\b")


def _prose(path: Path) -> str:
    """The lesson without fenced code blocks and without its title line."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return re.sub(r"\A# .*\n", "", text)


def _paragraphs(path: Path) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", _prose(path)) if p.strip()]


def _fixture_value(name: str, key_path: str) -> float:
    with (hf.FIXTURE_DIR / f"{name}.toml").open("rb") as f:
        node = tomllib.load(f)
    for part in key_path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{name}.toml has no key {key_path!r}")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise KeyError(f"{name}.toml: {key_path!r} is not a number")
    return float(node)


def check_quoted_figure(name: str, key_path: str, quoted: str) -> str | None:
    """None when `quoted` (e.g. "695 TFLOP/s") is the fixture's value as printed; else why not."""
    m = QUOTED.match(quoted)
    if not m or m.group(2) not in UNITS:
        return f"cannot read {quoted!r}: write a number and one of the units {sorted(UNITS)}"
    number, unit = m.groups()
    decimals = len(number.split(".")[1]) if "." in number else 0
    printed = float(number.replace(",", ""))
    try:
        value = _fixture_value(name, key_path)
    except KeyError as exc:
        return str(exc)
    expected = round(value / UNITS[unit], decimals)
    if not math.isclose(printed, expected, rel_tol=1e-9, abs_tol=1e-12):
        return (f"{name}.{key_path} = {value!r} reads {expected:.{decimals}f} {unit} at the "
                f"precision printed, but the text says {quoted!r}")
    return None


def _markers():
    for path in LESSON_FILES:
        for para in _paragraphs(path):
            for m in MARKER.finditer(para):
                yield path.name, para, m


def test_the_marker_check_catches_a_wrong_figure():
    """The check itself: the old "about 750 TFLOP/s" would fail, 695 passes, units convert."""
    assert check_quoted_figure("h100_sxm", "calibration.bf16_gemm_flops_per_s", "695 TFLOP/s") is None
    assert check_quoted_figure("h100_sxm", "calibration.bf16_gemm_flops_per_s", "750 TFLOP/s")
    assert check_quoted_figure("h100_sxm", "calibration.fp8_gemm_flops_per_s", "1,308 TFLOP/s") is None
    assert check_quoted_figure("h100_sxm", "calibration.fp8_gemm_flops_per_s", "1.3 PFLOP/s") is None
    assert check_quoted_figure("h100_sxm", "memory_bytes", "80 GiB") is None
    assert check_quoted_figure("h100_sxm", "memory_bytes", "80 GB")  # 85.9 GB
    assert "no key" in check_quoted_figure("h100_sxm", "calibration.nope", "1 x")


def test_figures_quoted_from_fixtures_equal_the_fixtures():
    bad = []
    for lesson, para, m in _markers():
        name, key_path, quoted = m.groups()
        body = MARKER.sub("", para)
        if quoted not in " ".join(body.split()):
            bad.append(f"{lesson}: the marker quotes {quoted!r}, which its paragraph does not print")
            continue
        problem = check_quoted_figure(name, key_path, quoted)
        if problem:
            bad.append(f"{lesson}: {problem}")
    assert not bad, "figures in lesson text disagree with hardware_fixtures:\n" + "\n".join(bad)


def test_there_are_markers_to_check():
    assert sum(1 for _ in _markers()) >= 5


def unmarked_rates(paragraph: str) -> list[str]:
    """The rates a paragraph about measurements quotes without a fixture marker for them."""
    if "measured" not in paragraph.lower():
        return []
    marked = {m.group(3) for m in MARKER.finditer(paragraph)}
    body = " ".join(MARKER.sub("", paragraph).split())
    return [rate for rate in RATE.findall(body) if " ".join(rate.split()) not in marked]


def test_the_measured_rate_check_wants_a_marker():
    old = "Measured here on an H100 80GB HBM3: a BF16 8192^3 GEMM about 750 TFLOP/s."
    assert unmarked_rates(old) == ["750 TFLOP/s"]
    new = ("Measured here: 695 TFLOP/s.\n"
           "<!-- fixture: h100_sxm.calibration.bf16_gemm_flops_per_s = 695 TFLOP/s -->")
    assert unmarked_rates(new) == []


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: p.name)
def test_measured_rates_in_text_are_marked(path):
    """Bug caught: lesson 16 quoted "about 750" and "about 1420 TFLOP/s measured here" while the
    fixture recorded 695 and 1308: a measured figure must come from the fixture, visibly."""
    bad = [f"{rate!r} in: {' '.join(para.split())[:120]}..."
           for para in _paragraphs(path) for rate in unmarked_rates(para)]
    assert not bad, (f"{path.name}: rates in a paragraph about measurements without a "
                     f"`<!-- fixture: ... -->` marker:\n" + "\n".join(bad))


def _course_map_rows(learning: Path = LEARNING) -> dict[str, str]:
    text = (learning / "README.md").read_text()
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\d) \|.*$", text, re.M)}


def check_lesson_link(number: str, target: str, title: str | None,
                      learning: Path = LEARNING) -> str | None:
    """None when a link to lesson `number` lands on the lesson that teaches what it names."""
    rows = _course_map_rows(learning)
    if number not in rows:
        return f"lesson {number} is not in the course map"
    written = (learning / f"lesson{number}.md").is_file()
    path, _, anchor = target.partition("#")
    if path == f"lesson{number}.md":
        if not anchor:
            return f"link to lesson {number} needs #anchor naming the section meant"
        if anchor not in sync.lesson_anchors(learning, f"lesson{number}"):
            return f"#{anchor} is not a heading of lesson{number}.md"
        return None
    if path == "README.md" and anchor == "the-lessons":
        if written:
            return f"lesson {number} exists: link lesson{number}.md#section instead of the map"
        if not title:
            return (f"a link to the unwritten lesson {number} needs a title naming its topic: "
                    f'[lesson {number}](README.md#the-lessons "topic")')
        if title.lower() not in rows[number].lower():
            return f"lesson {number}'s row in the course map does not mention {title!r}"
        return None
    return f"{target!r} is not lesson{number}.md#section nor README.md#the-lessons"


@pytest.fixture
def unwritten_24(tmp_path) -> Path:
    """A copy of learning/ in which lesson 24 is not written yet (its row says "coming")."""
    copy = tmp_path / "learning"
    shutil.copytree(LEARNING, copy)
    (copy / "lesson24.md").unlink(missing_ok=True)
    text = (copy / "README.md").read_text()
    row = _course_map_rows(copy)["24"]
    (copy / "README.md").write_text(text.replace(row, re.sub(r"\| [^|]*\|$", "| coming |", row)))
    return copy


def test_the_link_check_catches_the_wrong_lesson(unwritten_24):
    """The check itself: "lesson 02 for FLOPs" and "lesson 24 for TTFT" are refused."""
    assert check_lesson_link("01", "lesson01.md#flops-per-token", None) is None
    assert check_lesson_link("02", "lesson02.md#flops-per-token", None)
    assert check_lesson_link("24", "README.md#the-lessons", "goodput", unwritten_24) is None
    assert check_lesson_link("24", "README.md#the-lessons", "TTFT", unwritten_24)
    assert check_lesson_link("03", "lesson03.md", None)
    assert check_lesson_link("03", "README.md#the-lessons", "prefill")


def reference_problems(prose: str, learning: Path = LEARNING) -> list[str]:
    """Every problem with the references to other lessons in `prose` (code already removed)."""
    bad = []
    for m in LINK.finditer(prose):
        problem = check_lesson_link(m.group(2), m.group(3), m.group(4), learning)
        if problem:
            bad.append(f"[{m.group(1)}]({m.group(3)}): {problem}")
    for m in BARE.finditer(re.sub(r"`[^`\n]*`", "", LINK.sub("", prose))):  # code spans exempt
        bad.append(f"bare {m.group(0)!r}: write it as a link (CONTRIBUTING.md)")
    return bad


def test_the_reference_check_refuses_bare_and_wrong_references(unwritten_24):
    assert reference_problems("FLOPs: see lesson 02.")  # the original defect, bare
    assert reference_problems("FLOPs: see [lesson 02](lesson02.md#flops-per-token).")
    assert reference_problems("TTFT ([lesson 24](README.md#the-lessons \"TTFT\")).",
                              unwritten_24)
    assert not reference_problems("FLOPs: see [lesson 01](lesson01.md#flops-per-token).")
    assert not reference_problems("goodput ([lesson 24](README.md#the-lessons \"goodput\")).",
                                  unwritten_24)
    assert not reference_problems("run `autograder grade exercises --lesson 03`")


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: p.name)
def test_references_to_other_lessons_are_links_that_resolve(path):
    bad = reference_problems(_prose(path))
    assert not bad, f"{path.name}:\n" + "\n".join(bad)


# Worked examples that plan memory or time: recomputed from the fixture and the model config,
# so a change of either (or a figure typed by hand) shows up here.

def _params(c) -> int:
    d = c.d_model
    attn = 2 * d * c.n_heads * c.d_head + 2 * d * c.n_kv_heads * c.d_head
    per_layer = attn + 3 * d * c.d_ff + 2 * d
    return c.n_layers * per_layer + c.vocab_size * d * (1 if c.tie_embeddings else 2) + d


def _kv_bytes_per_token(c, nbytes=2) -> int:
    return 2 * c.n_layers * c.n_kv_heads * c.d_head * nbytes


def _text(name: str) -> str:
    return " ".join((LEARNING / name).read_text().split())


def test_lesson03_batching_example_includes_the_kv_read():
    """Bug caught: "one token in 4.8 ms" (weights only) and "at a batch of about 295 sequences the
    arithmetic would catch up", which ignored that each 4,096-token sequence adds more KV bytes
    than FLOPs and that 295 of them do not fit in 80 GiB."""
    h100 = hf.load("h100_sxm")
    bw, peak = h100.memory_bandwidth_bytes_per_s, h100.peak_flops("bf16")
    n = _params(LLAMA3_8B)
    weights, kv_seq = 2 * n, 4096 * _kv_bytes_per_token(LLAMA3_8B)
    text = _text("lesson03.md")
    assert _params(LLAMA2_7B) == 6_738_415_616 and "6,738,415,616" in text
    # example 2: the first decode step after a 2,048-token prompt reads the prompt's KV too
    w7, kv7 = 2 * _params(LLAMA2_7B), 2048 * _kv_bytes_per_token(LLAMA2_7B)
    step, prefill = (w7 + kv7) / bw, 2 * _params(LLAMA2_7B) * 2048 / peak
    assert f"= {step * 1e3:.2f} ms at batch 1" in text and f"{prefill * 1e3:.1f} x 2048" in text
    assert f"= {round(step / prefill * 2048)} tokens" in text
    assert f"{(weights + kv_seq) / bw * 1e3:.2f} ms" == "4.95 ms" and "4.95 ms" in text
    assert f"{(weights + 8 * kv_seq) / bw * 1e3:.2f} ms" == "6.08 ms" and "6.08 ms" in text
    assert f"{kv_seq:,} B" in text
    # each extra sequence: far more memory time than compute time, so never compute-bound
    assert kv_seq / bw > 9 * (2 * n / peak)
    assert f"= {2 * n / kv_seq:.0f} FLOP/byte" in text
    fits = (h100.memory_bytes - weights) // kv_seq
    assert f"holds {fits} such sequences" in text
    assert f"{(weights + fits * kv_seq) / bw * 1e3:.1f} ms" in text
    assert f"{295 * kv_seq / 1e9:.0f} GB of KV" in text
    assert f"= {2 * n * bw / (peak * _kv_bytes_per_token(LLAMA3_8B)):.0f} tokens" in text


def test_lesson04_budgets_plan_from_the_fixture_capacity():
    """Bug caught: lesson 04 planned an "80 GB" H100 from 80e9 B while lesson 06 planned the same
    card from its fixture, 80 GiB, and got another answer to the same question."""
    h100, l4 = hf.load("h100_sxm"), hf.load("l4")
    text = _text("lesson04.md")
    budget = h100.memory_bytes - 2 * _params(LLAMA3_8B) - 4 * GiB
    tokens = budget // _kv_bytes_per_token(LLAMA3_8B)
    assert f"{h100.memory_bytes:,} B" in text and f"{budget:,} / 131,072 = {tokens:,} tokens" in text
    assert f"{tokens // 8192} sequences of the" in text and f"{tokens // 1024} sequences of 1,024" in text
    left = l4.memory_bytes - 2 * _params(LLAMA2_7B)
    assert f"{left:,} B left at most, {left // _kv_bytes_per_token(LLAMA2_7B):,} tokens" in text
    assert "80e9" not in text and "24e9" not in text


def test_lesson06_plans_from_the_fixture_capacity():
    h100 = hf.load("h100_sxm")
    text = _text("lesson06.md")
    assert f"floor({h100.memory_bytes:,} x 0.9) = {int(h100.memory_bytes * 0.9):,} B" in text


def test_lesson07_occupancy_example_uses_the_fixture_limits():
    """The worked occupancy example in lesson 07 is recomputed from the H100 fixture's [sm]
    table: if a limit changes there, the text's arithmetic must change with it."""
    sm = hf.load("h100_sxm").sm
    text = " ".join(_text("lesson07.md").split())
    regs_per_warp = -(-33 * 32 // 256) * 256                                  # 1280
    quarter = sm.registers_per_sm_count // sm.sub_partitions_per_sm_count      # 16,384
    warps = quarter // regs_per_warp * sm.sub_partitions_per_sm_count          # 48
    assert (regs_per_warp, quarter, warps) == (1280, 16_384, 48)
    assert f"a quarter of the register file ({quarter:,}) holds {quarter:,} // {regs_per_warp} = 12 warps, the SM {warps}" in text
    assert f"{sm.shared_memory_per_sm_bytes:,} // 1024 = **228**" in text
    reserved = sm.reserved_shared_memory_per_block_bytes
    blocks = sm.shared_memory_per_sm_bytes // (45 * 1024 + reserved)
    assert f"{sm.shared_memory_per_sm_bytes:,} // (46,080 + {reserved}) = {blocks} blocks" in text
    assert warps / sm.max_warps_per_sm_count == 0.75
    assert f"occupancy {warps} / {sm.max_warps_per_sm_count} = 0.75" in text


def test_lesson11_ridges_and_operator_table_from_the_fixtures():
    """Every ridge point lesson 11 prints is peak / bandwidth of its fixture, and every row of
    its operator table is recomputed from the counting formulas and the H100's datasheet roofs,
    so a fixture change (or a miscount in the text) points here."""
    text, table = _text("lesson11.md"), (LEARNING / "lesson11.md").read_text()
    rows = {"a100_sxm_80gb": "A100 SXM4 80GB", "l4": "L4", "h100_sxm": "H100 SXM5 80GB",
            "h200_sxm": "H200 SXM 141GB", "b200": "B200 (HGX)"}
    for key, label in rows.items():
        spec = hf.load(key)
        bw = spec.memory_bandwidth_bytes_per_s
        row = re.search(rf"\| {re.escape(label)} \|([^\n]*?)\| ([\d.]+) FLOP/byte \| "
                        rf"(?:([\d.]+) FLOP/byte|\(no FP8\)) \|", table)
        assert row, f"lesson 11's ridge table has no row for {label}"
        assert row.group(2) == f"{spec.peak_flops('bf16') / bw:.0f}", (label, row.group(2))
        if "fp8" in spec.peak_flops_per_s:
            assert row.group(3) == f"{spec.peak_flops('fp8') / bw:.0f}", (label, row.group(3))
        else:
            assert row.group(3) is None
    h100 = hf.load("h100_sxm")
    peak, bw = h100.peak_flops("bf16"), h100.memory_bandwidth_bytes_per_s
    assert "ridge 295 FLOP/byte" in text and f"{peak / bw:.0f}" == "295"
    assert f"from 295 to {hf.load('h200_sxm').peak_flops('bf16') / 4.8e12:.0f} FLOP/byte" in text

    def row(flops, nbytes):
        t = max(flops / peak, nbytes / bw)
        return flops, nbytes, flops / nbytes, t * 1e6

    d = 4096
    for m, want in ((1, "| 33.6 M | 33.6 MB | 1.0 | memory | 10.0 us |"),
                    (16, "| 537 M | 33.8 MB | 15.9 | memory | 10.1 us |"),
                    (2048, "| 68.7 G | 67.1 MB | 1024 | compute | 69.5 us |")):
        flops, nbytes, ai, us = row(2 * m * d * d, 2 * (m * d + d * d + m * d))
        scale = (1e6, "M") if flops < 1e9 else (1e9, "G")
        got = (f"| {flops / scale[0]:.3g} {scale[1]} | {nbytes / 1e6:.1f} MB | "
               f"{ai:.1f} | {'memory' if ai < peak / bw else 'compute'} | {us:.1f} us |")
        got = got.replace("| 1024.0 |", "| 1024 |")
        assert got == want and want in text, (got, want)
    decode = row(4 * 32 * 4096 * 128, 2 * 32 * 128 * (2 + 2 * 4096))
    assert (f"| {decode[0] / 1e6:.1f} M | {decode[1] / 1e6:.1f} MB | {decode[2]:.1f} | memory | "
            f"{decode[3]:.1f} us |") in text
    prefill = row(4 * 32 * 4096 * 4096 * 128, 2 * 32 * 128 * 4 * 4096)
    assert (f"| {prefill[0] / 1e9:.0f} G | {prefill[1] / 1e6:.0f} MB | {prefill[2]:.0f} | compute "
            f"| {prefill[3]:.0f} us |") in text
    assert "`d` = 4096, compute-bound" in text and 2048 * d / (2 * 2048 + d) == 1024
    assert f"intensity ({2 * 1024**3 / (3 * 2 * 1024**2):.0f} FLOP/byte)" in text  # 1024^3 GEMM


def test_lesson08_worked_numbers():
    """Lesson 08's intensities and times, recomputed from the formulas written out here (not
    from the reference solution) and from the fixtures: a matmul reads each operand once and
    writes its output once; attention moves Q, K, V, O (plus S and P twice each, unfused); the
    RMSNorm + RoPE chain's traffic is the sum of its op table."""
    h100, h200 = hf.load("h100_sxm"), hf.load("h200_sxm")
    bw, peak = h100.memory_bandwidth_bytes_per_s, h100.peak_flops("bf16")
    copy = h200.calibration["copy_bytes_per_s"]
    text = _text("lesson08.md")
    ridge = peak / bw
    assert f"is {ridge:.0f} FLOP/byte" in text
    d = 4096
    flops, nbytes = 2 * d * d, 2 * (d + d * d + d)
    assert f"{flops:,} FLOPs over {nbytes:,} B, {flops / nbytes:.4f} FLOP/byte" in text
    assert f"= {nbytes / bw * 1e6:.1f} us" in text and f"{flops / peak * 1e6:.3f} us" in text
    row = " | ".join(f"{S * d / (2 * S + d):.1f}" for S in (1, 16, 64, 256, 345, 512, 4096))
    assert f"| I (FLOP/byte) | {row} |" in text
    assert f"S of about {ridge * d / (d - 2 * ridge):.0f}" in text
    S, h, dh = 4096, 32, 128
    af = 4 * h * S * S * dh
    fused, unfused = 2 * h * (2 * S * dh + 2 * S * dh), 2 * h * (4 * S * dh + 4 * S * S)
    assert f"{af:,} FLOPs either way" in text and f"{fused:,} B = {fused // 2**20} MiB" in text
    assert f"{af / fused:.0f} FLOP/byte" in text and f"{unfused:,} B" in text
    assert f"{af / unfused:.1f} FLOP/byte" in text
    assert f"{unfused / bw * 1e3:.2f} ms of traffic" in text
    assert f"{af / peak * 1e3:.2f} ms of arithmetic" in text
    # RMSNorm + RoPE, 16384 tokens x 32 heads x 128, bf16: the lesson's op table, row by row
    s, N, P = 2, 1 * 32 * 16384 * 128, 16384 * 128
    R = N // 128
    table = [s * N + 4 * N, 8 * N, 4 * N + 4 * R, 8 * R, 8 * R, 8 * N + 4 * R, 4 * N + s * N,
             s * 128 + 2 * s * N, (4 + s) * P, (4 + s) * P, 2 * s * N + s * P, s * N,
             2 * s * N, 2 * s * N + s * P, 3 * s * N]
    eager, one = sum(table), s * N + s * 128 + 8 * P + s * N
    assert f"{s * N:,} B = {s * N // 2**20} MiB" in text
    assert f"Fused: {one:,} B. Unfused: {eager:,} B, {eager / one:.1f} times" in text
    assert f"{copy / 1e12:.2f} TB/s" in text
    assert f"at least {one / copy * 1e6:.0f} us" in text
    assert f"about {eager / copy * 1e3:.2f} ms" in text


def test_lesson10_score_matrix_example():
    """Lesson 10's worked example: the bytes of Llama-3-8B's scores at 8,192 tokens, the traffic
    of writing and reading S and P, and the time of that traffic against the matmuls'."""
    h100 = hf.load("h100_sxm")
    c, n = LLAMA3_8B, 8192
    text = _text("lesson10.md")
    head = n * n * 2  # bf16 scores of one head
    assert f"{n} x {n} x 2 B = {head:,} B = {head // 2**20} MiB" in text
    layer = c.n_heads * head
    assert layer == 4 * GiB and "32 heads: 4 GiB of scores" in text
    traffic = 4 * layer
    assert f"4 x 4 GiB = {traffic / 1e9:.1f} GB" in text
    assert f"{traffic / h100.memory_bandwidth_bytes_per_s * 1e3:.2f} ms at the H100" in text
    flops = 4 * n * n * c.d_head * c.n_heads
    gemm = _fixture_value("h100_sxm", "calibration.bf16_gemm_flops_per_s")
    assert f"{flops / 1e12:.1f}e12 FLOP per layer" in text
    assert f"{flops / gemm * 1e3:.2f} ms at the" in text
    io = 4 * n * c.n_heads * c.d_head * 2
    assert f"4 x {n} x {c.n_heads * c.d_head} x 2 B = {io // 2**20} MiB" in text
    assert f"{io / h100.memory_bandwidth_bytes_per_s * 1e3:.2f} ms to read" in text
    assert traffic / h100.memory_bandwidth_bytes_per_s > 3 * flops / gemm  # "more than three times"
    assert 16384 * 16384 * 4 == GiB and "single head's float32 scores are 1 GiB" in text


def _lesson09_protocol(device, kernel, *, flush_inside=False, sync_each=False, flush=True,
                       warmup=3, iters=4):
    """The lesson's timing protocol with the two mistakes its text works through."""
    for _ in range(warmup):
        kernel()
    windows = [(device.event(), device.event()) for _ in range(iters)]
    for start, end in windows:
        if flush and not flush_inside:
            device.flush_l2()
        device.record(start)
        if flush and flush_inside:
            device.flush_l2()
        kernel()
        device.record(end)
        if sync_each:
            device.synchronize()
    device.synchronize()
    return {round(device.elapsed_s(s, e) * 1e6, 6) for s, e in windows[1:]}


def test_lesson09_simulated_timings_and_stall_figures():
    """The times lesson 09 quotes from the simulated device and the stall example, recomputed
    from course.simdevice's defaults and the reference load generators."""
    from course.simdevice import SimDevice
    from solutions.lesson09.load import (closed_loop_latencies, open_loop_latencies,
                                         poisson_arrivals)

    text = _text("lesson09.md")
    us = 1e-6

    def fresh():
        device = SimDevice()
        return device, device.kernel(40 * us, 25 * us, buffer="w")

    assert _lesson09_protocol(*fresh()) == {40.0} and "reports exactly 40 us" in text
    assert _lesson09_protocol(*fresh(), flush_inside=True) == {140.0} and "reports 140 us" in text
    assert _lesson09_protocol(*fresh(), flush=False) == {25.0}
    assert _lesson09_protocol(*fresh(), flush=False, sync_each=True) == {30.0}
    assert "call reports 30 us instead of 25 us" in text
    device = SimDevice()
    start, end = device.event(), device.event()
    device.record(start)
    device.kernel(40 * us)()
    device.record(end)
    device.synchronize()
    assert round(device.elapsed_s(start, end) / us) == 1085 and "reports 1085 us" in text
    service = [0.001] * 10_000
    service[5_000] = 1.0
    closed = sorted(closed_loop_latencies(4, 0.0, service))
    open_ = sorted(open_loop_latencies(poisson_arrivals(500.0, len(service), seed=31), service))
    assert f"its p99 is {closed[9_900] * 1e3:.0f} ms" in text
    assert f"seed {sum(x > 0.1 for x in open_)} of them wait" in text
    assert f"the p99 is {open_[9_900] * 1e3:.0f} ms" in text


def test_lesson14_tokens_per_step_and_best_draft_length():
    """Lesson 14's tables, recomputed from the geometric sum 1 + alpha + ... + alpha^gamma and
    the cost model of Leviathan et al. (gamma draft runs of cost c plus one target run), written
    out here rather than taken from the reference solution."""
    text = _text("lesson14.md")

    def tokens(a, g):
        return sum(a ** i for i in range(g + 1))

    def best(a, c, top=16):
        speed = [tokens(a, g) / (g * c + 1) for g in range(top + 1)]
        g = max(range(top + 1), key=lambda k: (speed[k], -k))
        return g, speed[g]

    assert f"emits {tokens(0.8, 4):.2f} tokens on average" in text
    for a in (0.5, 0.6, 0.7, 0.8, 0.9):
        row = " | ".join(f"{tokens(a, g):.2f}" for g in (1, 2, 4, 8))
        assert f"| {a} | {row} |" in text, f"alpha {a}: expected the row | {a} | {row} |"
        cells = " | ".join(f"{g} ({s:.2f}x)" for g, s in (best(a, 0.05), best(a, 0.2)))
        assert f"| {a} | {cells} |" in text, f"alpha {a}: expected the row | {a} | {cells} |"
    assert "(2 tokens at `alpha = 0.5`, 10 at 0.9)" in text


def test_lesson15_int4_bytes_and_ridge():
    """The bytes, ratios and times lesson 15 quotes for a 4096 x 4096 weight at g128, recomputed
    from the storage formula and the H200 fixture (the text once carried an "about 3.5x" that
    fits float32 scales and zeros, not the BF16 ones it described)."""
    h200 = hf.load("h200_sxm")
    bw, peak = h200.memory_bandwidth_bytes_per_s, h200.peak_flops("bf16")
    text = _text("lesson15.md")
    n = k = 4096
    bf16 = 2 * n * k
    w4 = n * k // 2 + n * (k // 128) * (2 + 2)
    assert f"{bf16:,} B" in text and f"{w4:,} B" in text
    assert f"{bf16 / w4:.2f}x" == "3.76x" and "3.76x" in text
    assert f"4 + 32 / 128 = {4 + 32 / 128}" in text
    assert f"16 / 4.25 = {16 / 4.25:.2f}x" in text
    assert f"4.5 bits per weight ({16 / 4.5:.2f}x)" in text
    assert f"= {4 + 20 / 128:.2f}` bits ({16 / (4 + 20 / 128):.2f}x)" in text
    assert f"{bf16 / bw * 1e6:.2f} us" in text and f"{w4 / bw * 1e6:.2f} us" in text
    ridge = peak / bw
    assert f"a ridge of {ridge:.0f} FLOP per byte" in text
    assert f"at about {ridge / (bf16 / w4):.0f} tokens, BF16 at about {ridge:.0f}" in text


def test_lesson17_mbu_and_mfu_examples():
    """Lesson 17's MBU and MFU examples, recomputed from the model configs and the H200
    fixture: batch 1 and batch 32 of Llama-3-8B (and the batch counted with the weights once
    per sequence), the MFU of both, and SmolLM2 at a 5 ms TPOT."""
    from course.config import SMOLLM2_135M

    h200 = hf.load("h200_sxm")
    bw, peak = h200.memory_bandwidth_bytes_per_s, h200.peak_flops("bf16")
    text = _text("lesson17.md")
    weights, kv = 2 * _params(LLAMA3_8B), 2048 * _kv_bytes_per_token(LLAMA3_8B)
    assert f"= {weights:,} B" in text and f"2,048 x 131,072 B = {kv:,} B" in text
    step = weights + kv
    assert f"together {step:,} B = {step / 1e9:.2f} GB per step" in text
    assert f"{step / 10e-3 / 1e12:.3f} TB/s in 10 ms, MBU {step / 10e-3 / bw:.2f}" in text
    assert f"take {step / bw * 1e3:.2f} ms per token" in text
    batch = weights + 32 * kv
    assert f"32 x {kv:,} B = {32 * kv / 1e9:.2f} GB of KV is {batch / 1e9:.2f} GB" in text
    assert f"MBU {batch / 20e-3 / bw:.2f}" in text
    wrong = 32 * weights + 32 * kv
    assert f"it is {wrong / 1e9:.1f} GB and MBU {wrong / 20e-3 / bw:.1f}" in text
    attention = 4 * LLAMA3_8B.n_layers * 2048 * LLAMA3_8B.d_model
    assert round(100 * attention / (2 * _params(LLAMA3_8B))) == 7 and "about 7% more" in text
    flops = 2 * _params(LLAMA3_8B)
    assert f"x {flops / 1e9:.2f} GFLOP = {100 * flops / 1e12:.2f} TFLOP/s" in text
    assert f"an MFU of {100 * 100 * flops / peak:.2f}%" in text
    assert f"at 1,600 tokens/s, is {100 * 1600 * flops / peak:.1f}%" in text
    small = 2 * _params(SMOLLM2_135M)
    small_step = small + 1024 * _kv_bytes_per_token(SMOLLM2_135M)
    assert f"= {small:,} B" in text and f"= {small_step:,} B per step" in text
    assert f"that is {small_step / 5e-3 / 1e9:.1f} GB/s, an MBU of {small_step / 5e-3 / bw:.3f}" \
        in text


def test_lesson18_swap_or_recompute_worked_example():
    """Lesson 18's swap-versus-recompute example, recomputed from the H100 fixture (PCIe per
    direction, dense BF16 peak) and the model configs with the lesson's two cost models."""
    h100 = hf.load("h100_sxm")
    link, peak = h100.pcie_x16_bytes_per_s_per_direction, h100.peak_flops("bf16")
    assert (link, peak) == (64e9, 989.4e12)
    text = _text("lesson18.md")

    def layer_params(c):
        d = c.d_model
        return c.n_layers * (2 * d * c.n_heads * c.d_head + 2 * d * c.n_kv_heads * c.d_head
                             + 3 * d * c.d_ff)

    def times(c, L):
        a = 2 * c.n_layers * c.n_heads * c.d_head
        swap = 2 * L * _kv_bytes_per_token(c) / link
        return swap, (2 * layer_params(c) * L + a * L * (L + 1)) / peak

    p3 = layer_params(LLAMA3_8B)
    assert f"P = {p3:,} parameters" in text
    kv = 2048 * _kv_bytes_per_token(LLAMA3_8B)
    assert f"holds {kv:,} B ({kv // 2**20} MiB)" in text
    swap, recompute = times(LLAMA3_8B, 2048)
    assert f"= {swap * 1e3:.2f} ms;" in text and f"= {recompute * 1e3:.2f} ms." in text
    assert f"Swap is {recompute / swap:.1f}x cheaper" in text
    assert f"swap costs {2 * _kv_bytes_per_token(LLAMA3_8B) / link * 1e6:.2f} us and recompute " \
           f"at least {2 * p3 / peak * 1e6:.2f} us" in text
    assert 2 * _kv_bytes_per_token(LLAMA3_8B) * peak / link < 2 * p3, "swap must win at L = 1"
    # Llama-2-7B: MHA, a crossover inside reach
    p2, b2 = layer_params(LLAMA2_7B), _kv_bytes_per_token(LLAMA2_7B)
    assert f"swap costs {2 * b2 / link * 1e6:.2f} us and recompute {2 * p2 / peak * 1e6:.2f} us" \
        in text
    a2 = 2 * LLAMA2_7B.n_layers * LLAMA2_7B.n_heads * LLAMA2_7B.d_head
    crossover = math.ceil((2 * b2 * peak / link - 2 * p2) / a2 - 1)
    assert f"the crossover is {crossover:,} tokens" in text
    assert times(LLAMA2_7B, crossover)[0] <= times(LLAMA2_7B, crossover)[1]
    assert times(LLAMA2_7B, crossover - 1)[0] > times(LLAMA2_7B, crossover - 1)[1]
    swap2, recompute2 = times(LLAMA2_7B, 2048)
    assert f"recompute takes {recompute2 * 1e3:.2f} ms against {swap2 * 1e3:.2f} ms" in text
    assert crossover > LLAMA2_7B.max_position and f"{LLAMA2_7B.max_position:,}-token context" in text


def test_lesson13_prefix_hit_savings():
    """Lesson 13's worked example: the KV bytes of a 4,096-token shared prefix for Llama-3-8B
    and SmolLM2-135M, what sixteen conversations save by sharing it, the prefill FLOPs a hit
    skips, and the last-token rule on it, recomputed from the model configs."""
    from course.config import SMOLLM2_135M
    from solutions.lesson13.radix_cache import tokens_to_compute

    text = _text("lesson13.md")
    llama, smol = _kv_bytes_per_token(LLAMA3_8B), _kv_bytes_per_token(SMOLLM2_135M)
    assert llama == 131_072 and f"{llama:,} B per token" in text
    prefix = 4096 * llama
    assert f"4,096 x {llama:,} B = {prefix:,} B = {prefix / 2**20:.0f} MiB" in text
    assert f"{16 * prefix / GiB:.0f} GiB becomes {prefix / 2**20:.0f} MiB" in text
    assert f"{15 * prefix:,} B ({15 * prefix / GiB:.1f} GiB)" in text
    n = _params(LLAMA3_8B)
    assert f"2 x {n:,} x 4,096 = {2 * n * 4096 / 1e12:.1f} TFLOP" in text
    assert f"4,096 x {smol:,} B = {4096 * smol:,} B = {4096 * smol / 2**20:.0f} MiB" in text
    assert f"4,096 / 16 = {4096 // 16} blocks" in text
    full = tokens_to_compute(4096, 4096, 16)
    assert f"reuses {4096 - full:,} and computes {full}" in text
    more = tokens_to_compute(4100, 4096, 16)
    assert f"prompt of 4,100 tokens with the same prefix reuses {4100 - more:,} and computes {more}" in text


def test_lesson24_littles_law_kv_example():
    """Lesson 24's worked example: L = lambda W requests in the system, and the KV bytes they
    hold at Llama-3-8B's bytes per token, recomputed from the config; and the prefill FLOPs of
    a 4,096-token prompt of a 7e9-parameter model."""
    text = _text("lesson24.md")
    rate, w, tokens = 20, 3, 1500
    n = rate * w
    assert f"L = {rate} x {w} = {n} requests" in text
    per_token = _kv_bytes_per_token(LLAMA3_8B)
    kv = n * tokens * per_token
    assert f"{n} x {tokens:,} x {per_token:,} B = {kv:,} B = {kv / 1e9:.1f} GB " \
           f"({kv / 2**30:.1f} GiB)" in text
    assert f"is {2 * 7e9 * 4096:.1e} FLOPs".replace("e+13", "e13") in text
    from hardware_fixtures import load

    step = 2 * 7e9 * 512 / load("h200_sxm").peak_flops("bf16")
    assert f"exceeds {step * 1e3:.1f} ms, the cost of one full 512-token step" in text


def test_lesson23_long_context_memory_figures():
    """The KV bytes lesson 23 quotes for Llama-3-8B at 128k tokens (16-bit and int8 with
    float32 per-token scales), the weights they outgrow and Mistral 7B's window cache,
    recomputed from lesson 04's formula and the model config."""
    text = _text("lesson23.md")
    c = LLAMA3_8B
    per_token = _kv_bytes_per_token(c)
    assert per_token == 131_072 and f"{per_token:,} B per token" in text
    tokens = 131_072
    kv = tokens * per_token
    assert f"{tokens:,} tokens x {per_token:,} B = {kv:,} B = {kv / 1e9:.1f} GB = {kv / GiB:.0f} GiB" in text
    n = _params(c)
    assert f"{2 * n / 1e9:.1f} GB of its own bf16 weights ({n:,} parameters x 2 B)" in text
    assert f"Eight such conversations need {8 * kv / GiB:.0f} GiB" in text
    int8 = tokens * 2 * c.n_layers * c.n_kv_heads * (c.d_head + 4)
    assert f"needs {int8:,} B = {int8 / GiB:.2f} GiB instead of {kv / GiB:.0f} GiB" in text
    assert f"{2 * c.d_head / (c.d_head + 4):.2f}x more tokens in the same memory at d_head 128" in text
    window = 4096 * per_token  # Mistral 7B: 32 layers, 8 KV heads of 128, like Llama-3-8B
    assert f"4,096 x {per_token:,} B = {window:,} B = {window / 2**20:.0f} MiB" in text
    assert f"32 x 4,096 = {32 * 4096:,} tokens back" in text


def test_lesson22_transfer_times_and_pool_sizes():
    """Lesson 22's worked examples: the KV of a 4,096-token Llama-3-8B prompt, its transfer time
    over NVLink4 and PCIe Gen5 (per direction, from the H200 fixture) and over 400 and 100 Gb/s
    network cards (bits / 8), the per-token comparison with a prefill at the H200's bf16 peak,
    the MHA case of Llama-2-7B, and the two pool sizes, recomputed here."""
    from solutions.lesson22.transfer import pd_ratio

    h200 = hf.load("h200_sxm")
    nvlink, pcie, peak = (h200.nvlink_bytes_per_s_per_direction,
                          h200.pcie_x16_bytes_per_s_per_direction, h200.peak_flops("bf16"))
    assert (nvlink, pcie, peak) == (450e9, 64e9, 989.4e12)
    text = _text("lesson22.md")
    per_token = _kv_bytes_per_token(LLAMA3_8B)
    kv = 4096 * per_token
    assert f"= {per_token:,} B per token" in text
    assert f"4,096 x {per_token:,} B = {kv:,} B = {kv // 2**20} MiB" in text
    for name, link in (("NVLink4", nvlink), ("PCIe Gen5", pcie), ("400 Gb/s", 400e9 / 8),
                       ("100 Gb/s", 100e9 / 8)):
        row = f"| {link / 1e9:g} GB/s | {kv / link * 1e3:.2f} ms |"
        assert row in text, f"{name}: the table must read {row!r}"
    p = _params(LLAMA3_8B)
    assert f"Llama-3-8B has {p:,} parameters" in text
    assert f"2 x {p:,} x 4,096 = {2 * p * 4096 / 1e12:.1f} TFLOP" in text
    assert f"that is {2 * p * 4096 / peak * 1e3:.2f} ms" in text
    assert f"{2 * p / peak * 1e6:.2f} us of prefill compute at peak against " \
           f"{per_token / 50e9 * 1e6:.2f} us of transfer over 50 GB/s" in text
    assert f"costs {per_token / 12.5e9 * 1e6:.2f} us per token, two thirds" in text
    assert 0.6 < (per_token / 12.5e9) / (2 * p / peak) < 0.7
    mha, p2 = _kv_bytes_per_token(LLAMA2_7B), _params(LLAMA2_7B)
    assert mha == 4 * per_token and f"ships {mha:,} B per token, four times" in text
    assert f"({2 * p2 / peak * 1e6:.2f} us of prefill per token at peak)" in text
    assert f"its transfer costs {mha / 50e9 * 1e6:.2f} us per token, " \
           f"{(mha / 50e9) / (2 * p2 / peak):.0%} of its prefill" in text
    assert pd_ratio(10_000, 2_500, 10, 3_000, 300) == (3, 2) and "a 3:2 split" in text
    assert pd_ratio(10_000, 2_500, 10, 200, 500) == (1, 2) and "a 1:2 split" in text


def test_lesson22_simulator_table():
    """Lesson 22's colocated-against-disaggregated table, rerun with the lesson's cost model
    (Llama-3-8B's KV over 50 GB/s for the transfer)."""
    from solutions.lesson22.serving_sim import CostModel, colocated_vs_disagg

    text = _text("lesson22.md")
    transfer = _kv_bytes_per_token(LLAMA3_8B) / 50e9
    cost = CostModel(prefill_s_per_token=1e-4, decode_step_s=0.02, transfer_s_per_token=transfer)
    s = colocated_vs_disagg(4.0, 200, 1000, 100, cost, seed=0)
    for mode, label in (("colocated", "colocated (1 GPU)"),
                        ("disaggregated", "disaggregated (2 GPUs)")):
        m = s[mode]
        row = (f"| {label} | {m['p99_itl_s'] * 1e3:.0f} ms | {m['max_itl_s'] * 1e3:.0f} ms | "
               f"{m['p99_ttft_s'] * 1e3:.0f} ms |")
        assert row in text, f"the table must read {row!r}"
    low = colocated_vs_disagg(2.0, 200, 1000, 100, cost, seed=0)
    assert (f"disaggregated p99 TTFT {low['disaggregated']['p99_ttft_s'] * 1e3:.0f} ms against "
            f"{low['colocated']['p99_ttft_s'] * 1e3:.0f} ms colocated") in text


def test_lesson21_mixtral_memory_decode_and_all_to_all():
    """Lesson 21's worked examples, recomputed from the Mixtral-8x7B config and the H100/H200
    fixtures: the parameter breakdown and totals, bf16 bytes and what an H200 has left, the KV
    bytes per token, the experts a decode batch touches under uniform routing (and the bytes and
    time per step), and the all-to-all bytes and wire times of expert parallelism."""
    from course.moe import MIXTRAL_8X7B as m

    h100, h200 = hf.load("h100_sxm"), hf.load("h200_sxm")
    text = _text("lesson21.md")
    d, e = m.d_model, m.n_experts
    attention = 2 * d * m.n_heads * m.d_head + 2 * d * m.n_kv_heads * m.d_head
    expert = 3 * d * m.d_ff
    assert f"2 x 4,096 x 4,096 + 2 x 4,096 x 1,024 = {attention:,}" in text
    assert f"3 x 4,096 x 14,336 = {expert:,}" in text
    assert f"8 x 4,096 = {e * d:,}" in text and f"two RMSNorm weights: {2 * d:,}" in text
    embeddings = 2 * m.vocab_size * d
    assert f"2 x 32,000 x 4,096 = {embeddings:,}" in text
    shared = m.n_layers * (attention + e * d + 2 * d) + embeddings + d
    total, active = shared + m.n_layers * e * expert, shared + m.n_layers * m.top_k * expert
    assert f"**{total:,}** parameters ({total / 1e9:.1f}B)" in text
    assert f"**{active:,}** active parameters ({active / 1e9:.1f}B)" in text
    assert (round(total / 1e9, 1), round(active / 1e9, 1)) == (46.7, 12.9)
    weights = 2 * total
    assert f"{weights:,} B ({weights / 1e9:.1f} GB, {weights / GiB:.1f} GiB)" in text
    assert weights > h100.memory_bytes, "the text says one H100 cannot hold the weights"
    left = h200.memory_bytes - weights
    assert f"{left:,} B ({left / GiB:.1f} GiB)" in text
    kv = _kv_bytes_per_token(m)
    assert f"= {kv:,} B of KV cache per token" in text and f"hold {left // kv:,} tokens" in text
    bw = h200.memory_bandwidth_bytes_per_s
    assert f"{2 * active / 1e9:.1f} GB in bf16, {2 * active / bw * 1e3:.2f} ms" in text
    one_expert = m.n_layers * expert
    assert f"(Shared parts {shared:,} parameters, one expert over all 32 layers {one_expert:,}.)" \
        in text
    for batch in (1, 4, 8, 16):
        touched = e * (1 - (1 - m.top_k / e) ** batch)
        read = 2 * (shared + touched * one_expert)
        row = (f"| {batch} | {touched:.2f} | {read / 1e9:.1f} GB | {read / bw * 1e3:.2f} ms | "
               f"{read / batch / 1e9:.2f} GB |")
        assert row in text, f"decode table row for batch {batch}: {row}"
    link = h200.gpu_link_bytes_per_s_per_direction
    sent = 4096 * m.top_k * d * 2 * (8 - 1) / 8
    assert f"= {sent:,.0f} B ({sent / 1e6:.1f} MB) per rank per all-to-all" in text
    assert f"{2 * sent:,.0f} B per layer, {64 * sent:,.0f} B ({64 * sent / 1e9:.2f} GB)" in text
    assert f"at least {sent / link * 1e6:.1f} us on the wire" in text
    assert f"the forward pass {64 * sent / link * 1e3:.2f} ms" in text
    flops, peak = 2 * active * 4096, h200.peak_flops("bf16")
    assert f"= {flops / 1e12:.1f} TFLOP, {flops / peak * 1e3:.1f} ms" in text
    small = 64 * m.top_k * d * 2 * 7 / 8
    assert f"one all-to-all is {small:,.0f} B, {small / link * 1e6:.2f} us" in text


def test_lesson20_bubble_and_ring_traffic():
    """Lesson 20's worked examples: the bubble at p = 4, m = 6 and m = 8, SmolLM2's layers over
    4 stages, and the K/V bytes per ring step for Llama-3-8B at 128k tokens on 8 ranks against
    the step's attention FLOPs on an H200, recomputed from the configs and the fixture."""
    from course.config import SMOLLM2_135M
    from solutions.lesson20.schedule import bubble_fraction, split_layers

    text = _text("lesson20.md")
    assert bubble_fraction(4, 6) == 12 / 36 and "12 / 36 = 3 / 9 idle" in text
    b = bubble_fraction(4, 8)
    assert f"the bubble is 3 / 11 =\n{b * 100:.1f}%" in text or \
        f"the bubble is 3 / 11 = {b * 100:.1f}%" in text.replace("\n", " ")
    assert f"4 x 8 / 11 = {4 * 8 / 11:.1f} times" in text.replace("\n", " ")
    assert min(m for m in range(1, 100) if bubble_fraction(4, m) < 0.1) == 28 and "`m > 27`" in text
    sizes = [len(r) for r in split_layers(SMOLLM2_135M.n_layers, 4)]
    assert f"{SMOLLM2_135M.n_layers} layers over 4 stages are {sizes[0]}, {sizes[1]}, {sizes[2]} " \
           f"and {sizes[3]} layers" in text.replace("\n", " ")
    h200 = hf.load("h200_sxm")
    c = LLAMA3_8B
    seq, ranks = 131_072, 8
    chunk = seq // ranks
    step = 2 * chunk * c.n_kv_heads * c.d_head * 2
    flat = text.replace("\n", " ")
    assert f"chunks of {chunk:,} tokens" in flat
    assert f"2 x {chunk:,} x {c.n_kv_heads} x {c.d_head} x 2 = {step:,} B ({step // 2**20} MiB)" in flat
    assert f"{ranks - 1} steps per layer: {(ranks - 1) * step // 2**20} MiB per rank per layer, " \
           f"{(ranks - 1) * step * c.n_layers / GiB:.0f} GiB over the {c.n_layers} layers" in flat
    link = h200.gpu_link_bytes_per_s_per_direction
    peak = h200.peak_flops("bf16")
    assert f"takes {step / link * 1e6:.0f} us" in flat
    flop = 4 * chunk**2 * c.n_heads * c.d_head
    assert f"4 x {chunk:,}^2 x {c.n_heads} heads x {c.d_head} FLOP = {flop / 1e12:.2f} TFLOP" in flat
    assert f"takes {flop / peak * 1e3:.2f} ms" in flat
    tokens = c.n_kv_heads * peak / (c.n_heads * link)
    assert f"about {round(tokens, -1):.0f} tokens" in flat
    assert (peak, link) == (989.4e12, 450e9) and \
        f"`{c.n_kv_heads} x 989.4e12 / ({c.n_heads} x 450e9)`" in flat


def test_capstone_references_to_lessons_are_links_that_resolve():
    path = LEARNING / "capstone.md"
    bad = reference_problems(_prose(path))
    assert not bad, f"{path.name}:\n" + "\n".join(bad)


def test_lesson03_launch_overhead_example():
    """Lesson 03's CUDA-graph paragraph: SmolLM2-135M's weight bytes per decode step (the tied
    embedding read once, as the LM head) and per layer."""
    from course.config import SMOLLM2_135M as c
    from course.model import weight_shapes
    flat = _text("lesson03.md").replace("\n", " ")
    shapes = weight_shapes(c)
    params = sum(math.prod(s) for n, s in shapes.items() if n != "lm_head.weight")
    layer = sum(math.prod(s) for n, s in shapes.items() if n.startswith("model.layers.0."))
    assert c.tie_embeddings
    assert f"reads {2 * params / 1e6:.0f} MB of BF16 weights per decode step " \
           f"({params / 1e6:.1f} M parameters;" in flat
    assert f"of which {2 * layer / 1e6:.1f} MB per layer in each of its {c.n_layers} layers" in flat
