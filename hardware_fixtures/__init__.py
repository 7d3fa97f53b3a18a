"""GPU spec sheets (one TOML per GPU beside this file) and the loader that reads them.

    >>> spec = load("h100_sxm")
    >>> spec.peak_flops("bf16"), spec.memory_bandwidth_bytes_per_s   # dense FLOP/s, bytes/s
    (989400000000000.0, 3350000000000.0)
    >>> match("NVIDIA H100 PCIe").key
    'h100_pcie'

An NVIDIA fixture also has an [sm] table: the per-SM limits of its compute capability that
the CUDA occupancy rules use (``GPUSpec.sm``, an ``SMLimits``); AMD fixtures have none.
Every numeric key of a fixture needs an entry in its [sources] table (a string, or an inline
table {source = "...", verified = false, note = "..."}); the loader refuses a file without one.
`current()` finds the fixture of the GPU torch sees. This package only reads its files: it
imports nothing from `course/` (measuring an unknown GPU is `course.bench.spec_or_measure()`).
"""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hardware_fixtures.spec import SM_INTS, SM_STRINGS, GPUSpec, SMLimits, canonical_dtype

__all__ = [
    "GPUSpec", "SMLimits", "FixtureError", "UnknownGPUError", "FIXTURE_DIR", "canonical_dtype",
    "names", "load", "load_file", "all_specs", "match", "current", "spec_or_measure",
]

FIXTURE_DIR = Path(__file__).resolve().parent

_STRINGS = ("name", "vendor", "architecture", "chip", "compute_capability", "compute_unit",
            "memory_type")
_INTS = ("sm_count", "l2_bytes", "memory_bytes")
_FLOATS = ("memory_bandwidth_bytes_per_s",)
_LINK_FLOATS = ("gpu_link_bytes_per_s_per_direction", "pcie_x16_bytes_per_s_per_direction")
_REQUIRED_PEAKS = ("bf16", "fp16", "int8", "tf32", "fp32")
_TOP_LEVEL = set(_STRINGS + _INTS + _FLOATS) | {
    "last_level_cache_bytes", "match", "exclude", "peak_flops_per_s", "interconnect", "sources",
    "calibration", "sm",
}


class FixtureError(ValueError):
    """A fixture file is malformed; the message names the file and the key."""


class UnknownGPUError(LookupError):
    """No fixture has that name; the message lists the known names."""

    def __str__(self) -> str:  # LookupError would print the repr of its argument
        return str(self.args[0])


def names() -> list[str]:
    """Fixture names (file stems), sorted: ['a100_sxm_40gb', ..., 'rtx_4090']."""
    return sorted(p.stem for p in FIXTURE_DIR.glob("*.toml"))


def load(name: str) -> GPUSpec:
    """The spec of fixture `name` (e.g. 'h100_sxm'); UnknownGPUError lists the known names."""
    specs = _load_all()
    key = name.lower().removesuffix(".toml")
    if key not in specs:
        raise UnknownGPUError(f"unknown GPU fixture {name!r}; known: {', '.join(specs)}")
    return specs[key]


def all_specs() -> dict[str, GPUSpec]:
    """Every fixture, name -> GPUSpec, sorted by name."""
    return dict(_load_all())


def match(device_name: str) -> GPUSpec | None:
    """The fixture for a torch.cuda.get_device_name() string, or None if none fits.

    A match string must appear as whole words (case-insensitive), so "L4" does not match
    "NVIDIA L40S"; a fixture whose `exclude` words appear never matches; the longest matching
    string wins, so "NVIDIA H100 80GB HBM3" picks h100_sxm and "NVIDIA H100 PCIe" h100_pcie.
    """
    best, best_len = None, 0
    for spec in _load_all().values():
        if any(_has_words(device_name, word) for word in spec.exclude):
            continue
        for word in spec.match:
            if _has_words(device_name, word) and len(word) > best_len:
                best, best_len = spec, len(word)
    return best


def current() -> GPUSpec | None:
    """The fixture of the current CUDA device; None without CUDA or for an unknown GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return match(torch.cuda.get_device_name())


def load_file(path: str | Path) -> GPUSpec:
    """Parse and check one fixture file; FixtureError names the file and the offending key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError(f"{path.name}: not valid TOML: {exc}") from exc
    return _Parser(path, doc).spec()


@functools.lru_cache(maxsize=1)
def _load_all() -> dict[str, GPUSpec]:
    return {name: load_file(FIXTURE_DIR / f"{name}.toml") for name in names()}


def _has_words(text: str, words: str) -> bool:
    pattern = r"(?<![A-Za-z0-9])" + re.escape(words) + r"(?![A-Za-z0-9])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


class _Parser:
    """Reads one fixture document, checking types and that every number has a source."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc

    def fail(self, key: str, problem: str) -> FixtureError:
        return FixtureError(f"{self.path.name}: key '{key}': {problem}")

    def get(self, table: dict[str, Any], key: str, kind: type, prefix: str = "") -> Any:
        full = prefix + key
        if key not in table:
            raise self.fail(full, "missing")
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(full, f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        if kind in (int, float) and value < 0:
            raise self.fail(full, f"must not be negative, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "expected a list of strings")
        return tuple(value)

    def spec(self) -> GPUSpec:
        d = self.doc
        for key in d:
            if key not in _TOP_LEVEL:
                raise self.fail(key, f"unknown key; expected one of {', '.join(sorted(_TOP_LEVEL))}")
        numbers: dict[str, float] = {}
        fields: dict[str, Any] = {k: self.get(d, k, str) for k in _STRINGS}
        for k in _INTS:
            fields[k] = numbers[k] = self.get(d, k, int)
        for k in _FLOATS:
            fields[k] = numbers[k] = self.get(d, k, float)
        llc = d.get("last_level_cache_bytes")
        if llc is not None:
            numbers["last_level_cache_bytes"] = self.get(d, "last_level_cache_bytes", int)
        fields["last_level_cache_bytes"] = max(fields["l2_bytes"], llc or 0)
        if not self.strings("match"):
            raise self.fail("match", "needs at least one device-name substring")
        peaks_table = self.get(d, "peak_flops_per_s", dict)
        for k in _REQUIRED_PEAKS:
            self.get(peaks_table, k, float, "peak_flops_per_s.")
        peaks = {k: self.get(peaks_table, k, float, "peak_flops_per_s.") for k in peaks_table}
        numbers.update({f"peak_flops_per_s.{k}": v for k, v in peaks.items()})
        link = self.get(d, "interconnect", dict)
        fields["gpu_link"] = self.get(link, "gpu_link", str, "interconnect.")
        fields["pcie_generation"] = self.get(link, "pcie_generation", int, "interconnect.")
        numbers["interconnect.pcie_generation"] = fields["pcie_generation"]
        for k in _LINK_FLOATS:
            fields[k] = numbers[f"interconnect.{k}"] = self.get(link, k, float, "interconnect.")
        fields["sm"] = self.sm_limits(numbers)
        sources, unverified = self.sources(numbers)
        return GPUSpec(
            key=self.path.stem, match=self.strings("match"), exclude=self.strings("exclude"),
            peak_flops_per_s=MappingProxyType(peaks), sources=MappingProxyType(sources),
            unverified=MappingProxyType(unverified), calibration=self.calibration(),
            path=self.path, **fields,
        )

    def sm_limits(self, numbers: dict[str, float]) -> SMLimits | None:
        """The optional [sm] table (NVIDIA only): every field of SMLimits, nothing else."""
        table = self.doc.get("sm")
        if table is None:
            return None
        if not isinstance(table, dict):
            raise self.fail("sm", "expected a table")
        for key in table:
            if key not in SM_INTS + SM_STRINGS:
                raise self.fail(f"sm.{key}", f"unknown key; expected one of {', '.join(SM_INTS + SM_STRINGS)}")
        values: dict[str, Any] = {k: self.get(table, k, str, "sm.") for k in SM_STRINGS}
        for k in SM_INTS:
            values[k] = numbers[f"sm.{k}"] = self.get(table, k, int, "sm.")
            if values[k] <= 0:
                raise self.fail(f"sm.{k}", f"must be positive, got {values[k]}")
        if values["compute_capability"] != self.doc.get("compute_capability"):
            raise self.fail("sm.compute_capability", "differs from the file's compute_capability")
        return SMLimits(**values)

    def sources(self, numbers: dict[str, float]) -> tuple[dict[str, str], dict[str, str]]:
        flat: dict[str, str] = {}
        unverified: dict[str, str] = {}
        self._flatten_sources(self.get(self.doc, "sources", dict), "", flat, unverified)
        for key in numbers:
            if key not in flat:
                raise self.fail(key, "has no entry in [sources]; every number needs a source")
        for key in flat:
            if key not in numbers:
                raise self.fail(f"sources.{key}", "names no number in this file (a typo?)")
        return flat, unverified

    def _flatten_sources(self, table: dict, prefix: str, flat: dict, unverified: dict) -> None:
        for key, entry in table.items():
            path = prefix + key
            if isinstance(entry, str):
                flat[path] = entry
            elif isinstance(entry, dict) and "source" in entry:
                flat[path] = self.get(entry, "source", str, f"sources.{path}.")
                if not entry.get("verified", True):
                    unverified[path] = str(entry.get("note", "marked verified = false"))
            elif isinstance(entry, dict):
                self._flatten_sources(entry, path + ".", flat, unverified)
            else:
                raise self.fail(f"sources.{path}", "expected a string or {source = ...}")

    def calibration(self) -> MappingProxyType | None:
        table = self.doc.get("calibration")
        if table is None:
            return None
        if not isinstance(table, dict):
            raise self.fail("calibration", "expected a table")
        for k in ("device", "date", "command"):
            self.get(table, k, str, "calibration.")
        for k, v in table.items():
            if k.endswith("_per_s"):
                if self.get(table, k, float, "calibration.") <= 0:
                    raise self.fail(f"calibration.{k}", "must be positive")
        return MappingProxyType(dict(table))
