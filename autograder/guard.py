"""Tamper detection inside the grading child: did the submission change the grader's world?

The submission's code runs in the same process as pytest, the tests and the recorder, so it
*can* replace ``torch.allclose``, ``course.testing.assert_close``, a pytest internal, a name
in a test module, or register a pytest plugin of its own. It cannot do so unseen:

* before collection imports any submission code, :class:`Guard` imports the modules a test
  relies on (every module of ``course``, see :func:`course_modules`) and takes a snapshot (object identities) of their namespaces, of the namespaces
  of key classes (``torch.Tensor``, pytest's reports), of the registered pytest plugins and
  of every hook's implementations;
* after each test module is imported it snapshots that module's namespace too, and checks
  that every ``from M import name`` of the module's source is bound to ``M.name`` as it was
  before any submission code ran (a submission imported by the test module could rebind an
  earlier import);
* :meth:`Guard.check` compares all of that with the snapshot. The recorder calls it after
  every test and after every test module's import; a change fails that test (or every test
  of that module) with a reason naming what was replaced, and :meth:`Guard.restore` puts the
  originals back so the rest of the grade stands.

This is detection of the ordinary ways to cheat, not a sandbox: code in the same process
can in principle find and defeat anything here (see docs/THREAT_MODEL.md).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
import sys
import types

# Imported and snapshotted before any submission code runs.
WATCHED_MODULES = (
    "builtins", "math", "operator", "functools", "json", "hmac", "hashlib", "os", "inspect",
    "torch", "torch.nn.functional", "torch.testing", "torch.linalg", "numpy",
    "hypothesis", "hypothesis.strategies", "hypothesis.core",
    "pytest", "_pytest.runner", "_pytest.reports", "_pytest.python", "_pytest.main",
    "_pytest.outcomes", "_pytest.assertion.rewrite", "_pytest.assertion.util",
    "_pytest.fixtures", "_pytest.nodes", "pluggy",
)
WATCHED_PREFIXES = ("course", "autograder", "_pytest")
# name of a class -> where it lives; their own namespaces are snapshotted too
WATCHED_CLASSES = (
    ("torch", "Tensor"), ("torch._C", "TensorBase"), ("_pytest.reports", "TestReport"),
    ("_pytest.reports", "BaseReport"), ("_pytest.runner", "CallInfo"),
    ("_pytest.python", "Function"), ("autograder.recorder", "Recorder"),
    ("autograder.guard", "Guard"), ("pluggy", "PluginManager"), ("pluggy", "HookCaller"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "list"), ("builtins", "dict"),
    ("builtins", "tuple"), ("builtins", "str"), ("builtins", "object"),
)
_SKIP_NAMES = {"__builtins__", "__loader__", "__spec__", "__cached__", "__file__"}


def _interesting(value) -> bool:
    return callable(value) or isinstance(value, types.ModuleType)


def _namespace(obj) -> dict[str, int]:
    try:
        items = list(vars(obj).items())
    except TypeError:
        return {}
    return {k: id(v) for k, v in items if k not in _SKIP_NAMES and _interesting(v)}


def course_modules() -> list[str]:
    """Every module of the ``course`` package, found on disk: a helper added to ``course/``
    is guarded without a change here."""
    import course
    return ["course", *sorted(f"course.{info.name}"
                              for info in pkgutil.walk_packages(course.__path__)
                              if not info.name.startswith("_"))]


class Guard:
    def __init__(self, pluginmanager=None, hook=None, submission_root: str | None = None):
        self.pm, self.hook = pluginmanager, hook
        self.submission_root = submission_root
        self.objects: dict[tuple[str, str], object] = {}  # (owner, name) -> original object
        self.owners: dict[str, object] = {}
        self.plugins: set[int] = set()
        self.hooks: dict[str, tuple[int, ...]] = {}
        self.imports: dict[str, list[tuple[str, str, str]]] = {}  # module -> bindings

    # -- snapshot -------------------------------------------------------------------------
    def snapshot(self) -> None:
        for name in WATCHED_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # an optional dependency that is absent: nothing to guard
                continue
        for name in course_modules():  # the shared helpers the tests use: every one
            try:
                importlib.import_module(name)
            except Exception:
                pass
        for name, module in list(sys.modules.items()):
            if module is None:
                continue
            if name in WATCHED_MODULES or name.split(".")[0] in WATCHED_PREFIXES:
                self._watch(f"module {name}", module)
        for modname, clsname in WATCHED_CLASSES:
            cls = getattr(sys.modules.get(modname), clsname, None)
            if cls is not None:
                self._watch(f"class {modname}.{clsname}", cls)
        self.snapshot_plugins()

    def snapshot_plugins(self) -> None:
        if self.pm is not None:
            self.plugins = {id(p) for p in self.pm.get_plugins()}
        if self.hook is not None:
            self.hooks = {name: self._impls(caller) for name, caller in vars(self.hook).items()
                          if hasattr(caller, "get_hookimpls")}

    @staticmethod
    def _impls(caller) -> tuple[int, ...]:
        return tuple(id(impl.function) for impl in caller.get_hookimpls())

    def _watch(self, label: str, owner) -> None:
        self.owners[label] = owner
        try:
            items = list(vars(owner).items())
        except TypeError:
            return
        for key, value in items:
            if key not in _SKIP_NAMES and _interesting(value):
                self.objects[(label, key)] = value

    def watch_test_module(self, module: types.ModuleType) -> None:
        """Snapshot a test module after its import; remember its ``from M import x`` lines."""
        label = f"test module {module.__name__}"
        self._watch(label, module)
        bindings = []
        try:
            tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        except Exception:
            tree = ast.Module(body=[], type_ignores=[])
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    bindings.append((node.module, alias.name, alias.asname or alias.name))
        self.imports[label] = bindings

    # -- check and restore ------------------------------------------------------------------
    def _is_submission(self, modname: str) -> bool:
        parts = modname.split(".")
        return (len(parts) == 3 and parts[0] == "exercises" and parts[1].startswith("lesson")
                and not parts[2].startswith("test_") and parts[2] != "conftest")

    def check(self) -> list[str]:
        """What changed since the snapshot, in words; empty when nothing did."""
        changed = []
        for (label, key), original in self.objects.items():
            owner = self.owners[label]
            try:
                current = vars(owner).get(key, _MISSING)
            except TypeError:
                continue
            if current is not original and not _torch_wrapper(current, original):
                changed.append(f"{label.split(' ', 1)[1]}.{key} was "
                               + ("deleted" if current is _MISSING else "replaced"))
        for label, bindings in self.imports.items():
            module = self.owners[label]
            for source, name, bound in bindings:
                if self._is_submission(source):
                    continue  # the code under test: the test imports it on purpose
                origin = sys.modules.get(source)
                expected = getattr(origin, name, _MISSING) if origin else _MISSING
                if isinstance(expected, types.ModuleType) or expected is _MISSING:
                    continue
                original = self.objects.get((f"module {source}", name), expected)
                if vars(module).get(bound, _MISSING) is not original:
                    changed.append(f"{module.__name__}.{bound} (imported from {source}) was "
                                   "replaced")
        if self.pm is not None:
            new = [p for p in self.pm.get_plugins() if id(p) not in self.plugins
                   and not self._harmless_plugin(p)]
            changed += [f"a pytest plugin was registered: {self._plugin_name(p)}" for p in new]
        if self.hook is not None:
            for name, impls in self.hooks.items():
                caller = getattr(self.hook, name, None)
                if caller is None or self._impls(caller) != impls:
                    if not self._only_harmless_new_impls(caller, impls):
                        changed.append(f"the implementations of pytest hook {name} changed")
        return sorted(set(changed))

    def _plugin_name(self, plugin) -> str:
        return getattr(plugin, "__name__", None) or type(plugin).__name__

    def _harmless_plugin(self, plugin) -> bool:
        # conftest modules of the course's own tests (loaded from the workspace's tests)
        name = getattr(plugin, "__name__", "") or ""
        return isinstance(plugin, types.ModuleType) and name.endswith("conftest") \
            and not self._is_submission(name)

    def _only_harmless_new_impls(self, caller, impls) -> bool:
        if caller is None:
            return False
        current = caller.get_hookimpls()
        old = set(impls)
        if not old <= {id(i.function) for i in current}:
            return False
        return all(id(i.function) in old or self._harmless_plugin(i.plugin) for i in current)

    def restore(self) -> None:
        """Put every replaced object back and unregister plugins that appeared."""
        for (label, key), original in self.objects.items():
            owner = self.owners[label]
            try:
                if vars(owner).get(key, _MISSING) is not original:
                    setattr(owner, key, original)
            except Exception:
                pass
        for label, bindings in self.imports.items():
            module = self.owners[label]
            for source, name, bound in bindings:
                if self._is_submission(source):
                    continue
                original = self.objects.get((f"module {source}", name))
                if original is not None and vars(module).get(bound) is not original:
                    setattr(module, bound, original)
        if self.pm is not None:
            for plugin in list(self.pm.get_plugins()):
                if id(plugin) not in self.plugins and not self._harmless_plugin(plugin):
                    try:
                        self.pm.unregister(plugin)
                    except Exception:
                        pass


_MISSING = object()


def _torch_wrapper(current, original) -> bool:
    """torch wraps a few of its functions (``torch.manual_seed``) when dynamo first loads:
    a wrapper defined in torch's own files whose ``__wrapped__`` is the original is fine."""
    if getattr(current, "__wrapped__", None) is not original:
        return False
    torch = sys.modules.get("torch")
    code = getattr(current, "__code__", None)
    return bool(torch and code and code.co_filename.startswith(
        str(getattr(torch, "__path__", [""])[0])))
_ = builtins  # imported so that it is in sys.modules when snapshot() walks it
