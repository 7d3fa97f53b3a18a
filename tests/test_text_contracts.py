"""Lesson text, stub docstrings and hints must state the same contract.

A learner reads three descriptions of each function: the lesson section its docstring names
(``Read: learning/lessonNN.md#anchor``), the docstring itself, and the ``# hint:`` lines the
stub keeps. When they disagree the learner cannot tell which one the graders hold them to.
Three checks, over every lesson:

1. A formula written both in a function's docstring and in the section it names
   (``zero = round(-lo / scale)``) is the same formula in both. (It would have caught a
   docstring that clamped the zero point while the text did not.)
2. Every indexing expression in a ``# hint:`` line (``k_cache[block_tables[:, :used]]``)
   appears, as written, in the reference code it replaces or in the lesson text, and every
   function a hint calls is called there too. (It would have caught a hint that gathered every
   column of the block table while the text and the reference read only the columns in use.)
3. Where the lesson text calls or declares a function of the lesson, the call fits it:
   keyword names are parameters, positional arguments are not too many, and a declaration
   with a return type (``quantize_rtn(w, bits, group_size) -> GroupQuant``) lists the
   parameter names in order.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from autograder.sync import find_regions, github_anchor

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.name for p in (ROOT / "solutions").glob("lesson[0-9][0-9]")
                 if (ROOT / "learning" / f"{p.name}.md").is_file())
EXTERNAL = {"torch", "F", "np", "math", "nn", "self", "cls", "os", "re"}


def solution_modules(lesson: str) -> list[Path]:
    return sorted(p for p in (ROOT / "solutions" / lesson).glob("*.py")
                  if not p.name.startswith(("test_", "__")))


# ----------------------------------------------------------------------------- text helpers


def sections(markdown: str) -> dict[str, str]:
    """anchor -> the text under that heading, down to the next heading of the same or a
    higher level (so a section includes its subsections)."""
    lines, heads, fence = markdown.splitlines(), [], False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            heads.append((i, len(line) - len(line.lstrip("#")), github_anchor(line.lstrip("#"))))
    out = {}
    for k, (i, level, anchor) in enumerate(heads):
        end = next((j for j, lv, _ in heads[k + 1:] if lv <= level), len(lines))
        out[anchor] = "\n".join(lines[i + 1:end])
    return out


def code_pieces(text: str, *, docstring: bool = False) -> list[tuple[str, bool]]:
    """(code, is_inline_span) for every fenced block line and inline code span of a markdown
    text, or every ``double-backtick`` span of a docstring."""
    pieces, fence = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fence = not fence
        elif fence:
            pieces.append((line, False))
    spans_in = text if docstring else _outside_fences(text)
    pattern = r"``(.+?)``" if docstring else r"(?<!`)`([^`]+)`(?!`)"  # spans may wrap lines
    pieces += [(" ".join(m.group(1).split()), True) for m in re.finditer(pattern, spans_in, re.S)]
    return pieces


def _outside_fences(text: str) -> str:
    kept, fence = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fence = not fence
        elif not fence:
            kept.append(line)
    return "\n".join(kept)


def _norm(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def _balanced(text: str, start: int, open_: str, close: str) -> int:
    """Index just past the bracket that closes text[start] (== open_), or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _split_top(args: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in args:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


# ----------------------------------------------------------------------------- 1. formulas

ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)\s*(.+?)\s*$")


def assignments(pieces: list[tuple[str, bool]]) -> dict[str, set[str]]:
    """name -> normalised right-hand sides, from statements like ``zero = round(-lo / s)``
    (several per line when separated by ';'; comments dropped). Numbers alone on the right
    are a worked example (``alpha = 0``, ``scale = 4/3``), not a formula, and are left out."""
    found: dict[str, set[str]] = {}
    for code, _ in pieces:
        for stmt in code.split("#")[0].split(";"):
            m = ASSIGN.match(stmt)
            if m and not m.group(2).endswith(("=", ",")) and names_in(m.group(2)):
                found.setdefault(m.group(1), set()).add(_norm(m.group(2)))
    return found


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", expr))


def operations(expr: str) -> set[str]:
    return set(re.findall(r"([A-Za-z_]\w*)\(", expr))


def contradicts(doc: set[str], text: set[str]) -> bool:
    """Two sets of formulas for one name contradict when none is written the same way and
    some pair speaks of the same quantities (one's names a subset of the other's), or one
    applies every operation of the other and more: the text's ``round(-min / scale)``
    against a docstring's ``clamp(round(-lo / scale), 0, top)``. Two notations for one idea
    (``max|x_j|`` in the text, ``act_absmax_j`` in code) are not compared."""
    if doc & text:
        return False
    for a in doc:
        for b in text:
            if names_in(a) <= names_in(b) or names_in(b) <= names_in(a):
                return True
            ops_a, ops_b = operations(a), operations(b)
            if ops_a and ops_b and (ops_a < ops_b or ops_b < ops_a):
                return True
    return False


def documented_functions(lesson: str):
    """(module, function name, docstring, section text) for each function whose docstring
    names a section of the lesson."""
    text = sections((ROOT / "learning" / f"{lesson}.md").read_text())
    for path in solution_modules(lesson):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node) or ""
                m = re.search(rf"learning/{lesson}\.md#([\w-]+)", doc)
                if m and m.group(1) in text:
                    yield path.name, node.name, doc, text[m.group(1)]


@pytest.mark.parametrize("lesson", LESSONS)
def test_formulas_in_docstring_and_lesson_text_agree(lesson):
    problems = []
    for module, name, doc, section in documented_functions(lesson):
        in_doc = assignments(code_pieces(doc, docstring=True))
        in_text = assignments(code_pieces(section))
        for var in sorted(set(in_doc) & set(in_text)):
            if contradicts(in_doc[var], in_text[var]):
                problems.append(f"{module}:{name}: the docstring says {var} = "
                                f"{sorted(in_doc[var])}, the lesson section says {var} = "
                                f"{sorted(in_text[var])}")
    assert not problems, f"{lesson}: formulas differ between text and docstring:\n" + \
        "\n".join(problems)


def test_formula_check_sees_a_clamp_the_text_does_not_have():
    doc = "``scale = (hi - lo) / top``, ``zero = clamp(round(-lo / scale), 0, top)``"
    text = "```\nscale = (hi - lo) / top;  zero = round(-min / scale)\n```\n"
    in_doc, in_text = assignments(code_pieces(doc, docstring=True)), assignments(code_pieces(text))
    assert not contradicts(in_doc["scale"], in_text["scale"])
    assert contradicts(in_doc["zero"], in_text["zero"])
    assert not contradicts({"act_absmax_j^alpha/w_absmax_j^(1-alpha)"},
                           {"max|x_j|^alpha/max|W_j|^(1-alpha)"})


# ----------------------------------------------------------------------------- 2. hints


def expressions(code: str) -> list[str]:
    """Indexing and call expressions, ``name[...]`` and ``name(...)``, outermost only."""
    found, i = [], 0
    for m in re.finditer(r"[A-Za-z_][\w.]*(?=[\[(])", code):
        if m.start() < i:
            continue
        open_ = code[m.end()]
        end = _balanced(code, m.end(), open_, "]" if open_ == "[" else ")")
        if end > 0:
            found.append(code[m.start():end])
            i = end
    return found


def hints(lesson: str):
    """(module, function, hint text, reference code of the region) for every hint."""
    for path in solution_modules(lesson):
        source = path.read_text()
        lines = source.splitlines()
        for region in find_regions(source, path.name):
            body = lines[region.begin + 1:region.end]
            hint_lines = [l.strip()[len("# hint:"):].strip() for l in body
                          if l.strip().startswith("# hint:")]
            code = "\n".join(l for l in body if not l.strip().startswith("#"))
            for hint in hint_lines:
                yield path.name, region.qualname, hint, code


@pytest.mark.parametrize("lesson", LESSONS)
def test_hint_expressions_appear_in_the_reference_or_the_text(lesson):
    text = _norm((ROOT / "learning" / f"{lesson}.md").read_text())
    problems = []
    for module, qualname, hint, code in hints(lesson):
        for expr in expressions(hint):
            # An indexing expression must appear as written; for a call, its callee (argument
            # names in a hint may follow the lesson's notation, S and T for lengths).
            callee = expr.split("(")[0] if "(" in expr.split("[")[0] else None
            wanted = _norm(callee + "(") if callee else _norm(expr)
            if wanted not in _norm(code) and wanted not in text:
                problems.append(f"{module}:{qualname}: hint writes {expr!r}, which neither the "
                                "reference nor the lesson text does")
    assert not problems, "\n".join(problems)


def test_hint_check_sees_an_expression_the_text_does_not_have():
    assert expressions("gather k_cache[block_tables] -> [batch, max_blocks * block_size]") == \
        ["k_cache[block_tables]"]
    text = _norm("gathers `k_cache[block_tables[:, :used]]` into a tensor")
    assert _norm("k_cache[block_tables]") not in text
    assert _norm("k_cache[block_tables[:, :used]]") in text


# ----------------------------------------------------------------------------- 3. signatures


def lesson_signatures(lesson: str) -> dict[str, list[tuple[list[str], bool]]]:
    """name -> [(parameter names without self, accepts *args/**kwargs)] for every function,
    method and class (its __init__ or dataclass fields) of the lesson's modules."""
    out: dict[str, list[tuple[list[str], bool]]] = {}
    for path in solution_modules(lesson):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                names = names[1:] if names[:1] in (["self"], ["cls"]) else names
                out.setdefault(node.name, []).append((names, bool(a.vararg or a.kwarg)))
            elif isinstance(node, ast.ClassDef):
                init = [n for n in node.body if isinstance(n, ast.FunctionDef)
                        and n.name == "__init__"]
                if init:
                    a = init[0].args
                    names = [x.arg for x in a.args[1:] + a.kwonlyargs]
                    out.setdefault(node.name, []).append((names, bool(a.vararg or a.kwarg)))
                elif any(isinstance(d, (ast.Name, ast.Call)) and "dataclass" in ast.dump(d)
                         for d in node.decorator_list):
                    fields = [n.target.id for n in node.body if isinstance(n, ast.AnnAssign)
                              and isinstance(n.target, ast.Name)
                              and "ClassVar" not in ast.dump(n.annotation)]
                    out.setdefault(node.name, []).append((fields, False))
    return out


def calls(code: str, inline: bool):
    """(name, [arguments], is_declaration) for each call in a piece of text. A whole inline
    span of the form ``name(a, b, c=1) -> type`` with bare names is a declaration."""
    for expr in expressions(code):
        head, _, rest = expr.partition("(")
        if not rest or "[" in head:
            continue
        parts = head.split(".")
        if len(parts) > 1 and parts[-2] in EXTERNAL:
            continue
        args = _split_top(rest[:-1])
        positional = [x for x in args if not re.match(r"^\w+\s*=(?!=)", x)]
        whole = re.fullmatch(rf"\s*{re.escape(expr)}\s*->.*", code) is not None
        declaration = inline and whole and all(re.fullmatch(r"\w+", x) for x in positional)
        yield parts[-1], args, declaration


def signature_problem(args: list[str], params: list[str], variadic: bool,
                      declaration: bool) -> str | None:
    keywords = [re.match(r"^(\w+)\s*=", x).group(1) for x in args if re.match(r"^\w+\s*=(?!=)", x)]
    positional = [x for x in args if not re.match(r"^\w+\s*=(?!=)", x)]
    if variadic:
        return None
    if any(k not in params for k in keywords):
        return f"keyword {[k for k in keywords if k not in params]} is not a parameter"
    if len(positional) > len(params):
        return f"{len(positional)} positional arguments for {len(params)} parameters"
    if declaration and positional != params[:len(positional)]:
        return f"declares ({', '.join(positional)}), the function takes ({', '.join(params)})"
    return None


# Spans that name another library's function of the same name (checked to still exist).
OTHER_LIBRARY = {("lesson02", "generate(do_sample=False)"): "HF transformers' generate"}


def test_other_library_spans_still_exist():
    for (lesson, span) in OTHER_LIBRARY:
        assert f"`{span}`" in (ROOT / "learning" / f"{lesson}.md").read_text(), (lesson, span)


TABLE_ROW = re.compile(r"^\|\s*`\w+\.py`\s*\|([^|]*)\|", re.M)


def table_declarations(text: str) -> set[str]:
    """Code spans in the second cell of a "| `file.py` | `name(a, b)` | ..." row: a table of
    what to implement declares each function with its parameters."""
    return {span for cell in TABLE_ROW.findall(text) for span in re.findall(r"`([^`]+)`", cell)}


@pytest.mark.parametrize("lesson", LESSONS)
def test_functions_named_in_the_text_exist_with_those_parameters(lesson):
    known = lesson_signatures(lesson)
    text = (ROOT / "learning" / f"{lesson}.md").read_text()
    declared = table_declarations(text)
    problems = []
    for code, inline in code_pieces(text):
        if (lesson, code.strip()) in OTHER_LIBRARY:
            continue
        for name, args, declaration in calls(code, inline):
            positional = [x for x in args if not re.match(r"^\w+\s*=(?!=)", x)]
            declaration = declaration or (code in declared and inline and all(
                re.fullmatch(r"\w+", x) for x in positional))
            if name not in known:
                continue
            reasons = [signature_problem(args, params, variadic, declaration)
                       for params, variadic in known[name]]
            if all(reasons):
                problems.append(f"`{code.strip()}`: {name} {reasons[0]}")
    assert not problems, f"learning/{lesson}.md:\n" + "\n".join(problems)


def test_signature_check_sees_a_renamed_parameter():
    params = ["w", "bits", "group_size"]
    [(name, args, decl)] = list(calls("quantize_rtn(w, bits, group) -> GroupQuant", inline=True))
    assert name == "quantize_rtn" and decl
    assert signature_problem(args, params, False, decl)
    [(_, args, decl)] = list(calls("quantize_rtn(w, bits, group_size) -> GroupQuant", inline=True))
    assert signature_problem(args, params, False, decl) is None
    [(_, args, decl)] = list(calls("x = quantize_rtn(w[name], 4, groups=64)", inline=True))
    assert not decl and "keyword" in signature_problem(args, params, False, decl)


def test_a_table_of_what_to_implement_declares_signatures():
    text = "| `tp_layers.py` | `tp_mlp_forward(x, gate, up, down, group)` | one all-reduce |\n"
    assert table_declarations(text) == {"tp_mlp_forward(x, gate, up, down, group)"}
    params = ["x", "gate_shard", "up_shard", "down_shard", "group"]
    [(_, args, _)] = list(calls("tp_mlp_forward(x, gate, up, down, group)", inline=True))
    assert signature_problem(args, params, False, True)
