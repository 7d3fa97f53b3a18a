"""Run the same tests against any implementation of the lessons: the ``--impl`` option.

Every test imports the code under test naturally::

    from exercises.lesson12.allocator import BlockAllocator

and this plugin decides which file that name resolves to:

* ``--impl=exercises`` (the default): the learner's stubs in ``exercises/``;
* ``--impl=solutions``: the reference implementation in ``solutions/``;
* ``--impl=PATH``: a folder holding ``lessonNN/`` packages (a submitted copy).

Only modules named ``exercises.lessonNN.<module>`` are redirected. Test modules
(``test_*``) and ``conftest`` stay where they are, so the tests that run are always the
course's own, whatever the target. The redirection is a ``sys.meta_path`` finder installed
in ``pytest_configure`` (once the options are parsed), before collection imports any test
module; ``pytest_load_initial_conftests`` only registers the hypothesis profiles. A module missing from the target raises ``ModuleNotFoundError``
naming the file it looked for; it never falls back to another implementation.

When grading, the finder also reports each module of the target as its import begins and
ends (``watch_imports``: the recorder streams it, so the grader knows which module hung or
crashed at import), and refuses at once the modules named in ``$COURSE_BROKEN_MODULES``
(those that already hung or crashed at import in an earlier grading child).

The plugin also registers the course's hypothesis profiles: ``course`` (the default:
derandomized, so every run and every grade is the same) and ``explore`` (random, more
examples; ``--hypothesis-profile=explore``).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from autograder.shared import REPO_ROOT, is_lesson_dir

ENV_VAR = "COURSE_IMPL"
BROKEN_ENV = "COURSE_BROKEN_MODULES"


def resolve_impl(value: str | None, rootdir: Path = REPO_ROOT) -> Path:
    """Turn an ``--impl`` value into the folder that holds ``lessonNN/`` packages."""
    if value in (None, "", "exercises"):
        return rootdir / "exercises"
    if value == "solutions":
        return rootdir / "solutions"
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise pytest.UsageError(f"--impl={value}: no such folder. Give 'exercises', "
                                "'solutions' or a folder that holds lessonNN/ packages.")
    if is_lesson_dir(path.name):
        raise pytest.UsageError(f"--impl={value} is one lesson folder; give its parent, "
                                f"the folder that holds {path.name}/.")
    return path


class _WatchedLoader(importlib.abc.Loader):
    """A module's own loader, with ``watch("importing"|"imported", name)`` around its code."""

    def __init__(self, loader, watch):
        self.loader, self.watch = loader, watch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.watch("importing", module.__name__)
        try:
            self.loader.exec_module(module)
        finally:
            self.watch("imported", module.__name__)


class ImplFinder(importlib.abc.MetaPathFinder):
    """Resolve ``exercises.lessonNN.<module>`` to ``<root>/lessonNN/<module>.py``."""

    def __init__(self, root: Path, broken: dict[str, str] | None = None):
        self.root = root
        self.broken = dict(broken or {})  # module name -> why it is not imported
        self.watch = None  # watch(kind, name), see watch_imports

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if len(parts) != 3 or parts[0] != "exercises" or not is_lesson_dir(parts[1]):
            return None
        module = parts[2]
        if module.startswith("test_") or module == "conftest":
            return None
        if fullname in self.broken:
            raise ImportError(self.broken[fullname], name=fullname)
        file = self.root / parts[1] / f"{module}.py"
        if not file.is_file():
            raise ModuleNotFoundError(
                f"{fullname}: the implementation under test has no {parts[1]}/{module}.py "
                f"(looked in {self.root}). Create that file, or keep the name the "
                "lesson's stub gives it.", name=fullname)
        spec = importlib.util.spec_from_file_location(fullname, file)
        if self.watch is not None:
            spec.loader = _WatchedLoader(spec.loader, self.watch)
        return spec


def watch_imports(watch) -> None:
    """Call ``watch("importing"|"imported", name)`` around the import of each module of the
    implementation under test (the grading child's recorder streams these)."""
    for finder in sys.meta_path:
        if isinstance(finder, ImplFinder):
            finder.watch = watch


def install(root: Path, broken: dict[str, str] | None = None) -> ImplFinder:
    """Put a finder for ``root`` first on ``sys.meta_path`` (replacing an earlier one)."""
    uninstall()
    finder = ImplFinder(root, broken)
    sys.meta_path.insert(0, finder)
    for name in [n for n in sys.modules if n.startswith("exercises.lesson")]:
        if not _is_test_module(name):
            del sys.modules[name]
    return finder


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, ImplFinder)]


def _register_hypothesis_profiles() -> None:
    try:
        from hypothesis import HealthCheck, Phase, settings
    except ImportError:  # hypothesis is a dependency; stay importable without it anyway
        return
    # No "explain" phase: its notes clutter the first failure a learner reads.
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
    common = dict(deadline=None, print_blob=True, phases=phases,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("course", derandomize=True, database=None, max_examples=60,
                              **common)
    settings.register_profile("explore", max_examples=400, **common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course")
    group.addoption("--impl", default=os.environ.get(ENV_VAR, "exercises"),
                    help="which implementation the tests import as exercises.lessonNN: "
                         "'exercises' (default), 'solutions', or a folder of lessonNN/ "
                         f"packages (env {ENV_VAR})")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    _register_hypothesis_profiles()
    _triton_interpreter_without_gpu()


def _triton_interpreter_without_gpu() -> None:
    """Without a GPU the kernel track's tests run Triton's interpreter, and Triton decides
    that when ``triton.language`` is first imported (its own ``@jit`` helpers, ``tl.zeros``
    among them, are made then). torch imports Triton early (``torch.utils.flop_counter``,
    which ``course.counting`` uses), so ``course.triton_track.import_triton`` in a test module
    can be too late: choose here, before collection imports anything. Sets
    ``TRITON_INTERPRET=1`` when Triton is installed and torch sees no GPU; a value already set
    wins."""
    if "TRITON_INTERPRET" in os.environ or importlib.util.find_spec("triton") is None:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


def _share_the_cores() -> None:
    """Under pytest-xdist, give each worker its share of the cores for torch's thread pool.

    By default every worker starts a thread per core, so ``-n 2`` on two cores runs four busy
    threads, and a heavy test slows down many times over on a loaded machine. An explicit
    ``OMP_NUM_THREADS`` wins.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_configure(config: pytest.Config) -> None:
    _share_the_cores()
    root = resolve_impl(config.getoption("impl"), Path(str(config.rootpath)))
    config._course_impl = root  # type: ignore[attr-defined]
    install(root, json.loads(os.environ.get(BROKEN_ENV) or "{}"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"implementation under test: {getattr(config, '_course_impl', '?')}"


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GPU tests without CUDA, with one plain reason."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU (GPU graders run on the GPU runner)")
        for item in gpu_items:
            item.add_marker(skip)
