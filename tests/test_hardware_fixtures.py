"""The GPU spec sheets: every file loads, units are sane, peaks are dense, links per direction.

References: the vendor datasheets named in each file's [sources] table; the roofline ridge
point is peak / bandwidth (Williams, Waterman, Patterson, CACM 2009).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import hardware_fixtures as hf

EXPECTED = {
    "a100_sxm_40gb", "a100_sxm_80gb", "a10g", "b200", "h100_pcie", "h100_sxm", "h200_sxm",
    "l4", "l40s", "mi300x", "rtx_4090",
}
SPECS = hf.all_specs()
GiB, MiB = 2**30, 2**20


def test_every_expected_fixture_exists_and_loads():
    assert set(hf.names()) == EXPECTED
    assert set(SPECS) == EXPECTED
    for key, spec in SPECS.items():
        assert spec.key == key and spec.path is not None and spec.path.name == f"{key}.toml"


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_units_are_sane(key):
    s = SPECS[key]
    assert 1 * MiB <= s.l2_bytes <= 256 * MiB, f"{key}: L2 {s.l2_bytes} B is not a plausible L2"
    assert s.last_level_cache_bytes >= s.l2_bytes
    assert 16 * GiB <= s.memory_bytes <= 256 * GiB, f"{key}: memory {s.memory_bytes} B (bytes, not GB?)"
    assert 1e11 <= s.memory_bandwidth_bytes_per_s <= 1e13, f"{key}: bandwidth must be bytes/s"
    assert 50 <= s.sm_count <= 400
    for dtype, peak in s.peak_flops_per_s.items():
        assert 1e13 <= peak <= 1e16, f"{key}: peak {dtype} = {peak} is not FLOP/s"
    assert s.pcie_generation in (4, 5)
    per_direction = {4: 32e9, 5: 64e9}[s.pcie_generation]
    assert s.pcie_x16_bytes_per_s_per_direction == per_direction, (
        f"{key}: PCIe Gen{s.pcie_generation} x16 is {per_direction:.0f} B/s each way; "
        f"got {s.pcie_x16_bytes_per_s_per_direction:.0f} (a two-way total?)"
    )


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_every_number_has_a_source(key):
    s = SPECS[key]
    numeric = {"sm_count", "l2_bytes", "memory_bytes", "memory_bandwidth_bytes_per_s",
               "interconnect.gpu_link_bytes_per_s_per_direction", "interconnect.pcie_generation",
               "interconnect.pcie_x16_bytes_per_s_per_direction"}
    numeric |= {f"peak_flops_per_s.{d}" for d in s.peak_flops_per_s}
    missing = sorted(k for k in numeric if not s.sources.get(k, "").strip())
    assert not missing, f"{key}: numbers without a source: {missing}"
    assert set(s.unverified) <= set(s.sources)


def ridge(spec, dtype):
    """The roofline's ridge point in FLOP/byte, written out here (lesson 11 grades its own)."""
    return spec.peak_flops(dtype) / spec.memory_bandwidth_bytes_per_s


def test_ridge_points_match_the_datasheet_arithmetic():
    assert math.isclose(ridge(SPECS["h100_sxm"], "bf16"), 989.4e12 / 3.35e12)
    assert 290 < ridge(SPECS["h100_sxm"], hf.canonical_dtype("torch.bfloat16")) < 300
    assert 150 < ridge(SPECS["a100_sxm_80gb"], "bfloat16") < 156      # 312e12 / 2.039e12
    assert 200 < ridge(SPECS["h200_sxm"], "bf16") < 210               # more bandwidth, same peak
    assert 400 < ridge(SPECS["l4"], "bf16") < 406                     # 121e12 / 300e9


def test_peaks_are_dense_not_sparse():
    assert SPECS["h100_sxm"].peak_flops("bf16") == 989.4e12                 # not 1979
    assert SPECS["h100_sxm"].peak_flops("fp8") == 1978.9e12                 # not 3958
    assert SPECS["a100_sxm_80gb"].peak_flops("fp16") == 312e12              # not 624
    assert SPECS["l4"].peak_flops("bf16") == 121e12                         # not 242
    assert SPECS["b200"].peak_flops("bf16") == 2250e12                      # not 4500
    for key, s in SPECS.items():
        p = s.peak_flops_per_s
        assert p["fp16"] == p["bf16"], key
        assert p["tf32"] <= p["bf16"] / 2 * 1.02, f"{key}: tf32 runs at most half the 16-bit rate"
        if "fp8" in p:
            assert p["fp8"] <= 2 * p["bf16"] * 1.02, f"{key}: fp8 is at most twice 16-bit"


def test_rtx_4090_peaks_state_the_fp32_accumulate_rate():
    s = SPECS["rtx_4090"]
    assert s.peak_flops("bf16") == 165.2e12
    assert math.isclose(s.peak_flops("fp16_fp16acc"), 2 * s.peak_flops("fp16"), rel_tol=1e-3)


def test_links_are_stored_per_direction():
    assert SPECS["h100_sxm"].nvlink_bytes_per_s_per_direction == 450e9       # not 900e9
    assert SPECS["h200_sxm"].nvlink_bytes_per_s_per_direction == 450e9
    assert SPECS["a100_sxm_80gb"].nvlink_bytes_per_s_per_direction == 300e9  # not 600e9
    assert SPECS["b200"].nvlink_bytes_per_s_per_direction == 900e9           # not 1.8e12
    for key in ("l4", "l40s", "a10g", "rtx_4090"):
        assert SPECS[key].nvlink_bytes_per_s_per_direction == 0.0, key
    assert SPECS["mi300x"].nvlink_bytes_per_s_per_direction == 0.0           # Infinity Fabric instead
    assert SPECS["mi300x"].gpu_link_bytes_per_s_per_direction == 448e9


@pytest.mark.parametrize("device_name, key", [
    ("NVIDIA H100 80GB HBM3", "h100_sxm"),
    ("NVIDIA H100 PCIe", "h100_pcie"),
    ("NVIDIA H200", "h200_sxm"),
    ("NVIDIA A100-SXM4-80GB", "a100_sxm_80gb"),
    ("NVIDIA A100-SXM4-40GB", "a100_sxm_40gb"),
    ("NVIDIA L4", "l4"),
    ("NVIDIA L40S", "l40s"),
    ("NVIDIA A10G", "a10g"),
    ("NVIDIA GeForce RTX 4090", "rtx_4090"),
    ("AMD Instinct MI300X", "mi300x"),
    ("AMD Instinct MI300X VF", "mi300x"),
    ("NVIDIA B200", "b200"),
    ("nvidia h100 pcie", "h100_pcie"),
])
def test_match_picks_the_right_fixture(device_name, key):
    spec = hf.match(device_name)
    assert spec is not None and spec.key == key, f"{device_name!r} -> {spec and spec.key}, want {key}"


@pytest.mark.parametrize("device_name", [
    "NVIDIA H100 NVL", "NVIDIA H200 NVL", "NVIDIA GH200 480GB", "NVIDIA GB200", "NVIDIA L40",
    "NVIDIA A10", "NVIDIA A100 80GB PCIe", "NVIDIA GeForce RTX 4090 D",
    "NVIDIA GeForce RTX 4090 Laptop GPU", "AMD Instinct MI300A", "Tesla T4", "",
])
def test_match_refuses_other_gpus(device_name):
    spec = hf.match(device_name)
    assert spec is None, f"{device_name!r} is not one of our fixtures, but matched {spec.key}"


def test_each_fixture_matches_its_own_strings():
    for key, spec in SPECS.items():
        for word in spec.match:
            assert hf.match(f"NVIDIA {word}").key == key, f"{word!r} is claimed by two fixtures"


def test_unknown_name_lists_the_known_names():
    with pytest.raises(hf.UnknownGPUError) as info:
        hf.load("h100")
    message = str(info.value)
    assert "'h100'" in message
    for key in EXPECTED:
        assert key in message
    assert hf.load("H100_SXM").key == "h100_sxm"


def test_unknown_dtype_lists_the_known_dtypes():
    with pytest.raises(KeyError, match="fp8") as info:
        SPECS["a100_sxm_80gb"].peak_flops("float8_e4m3fn")                  # A100 has no fp8
    assert "bf16" in str(info.value)


def test_the_spec_holds_the_figures_a_roofline_needs_and_no_roofline():
    """The spec gives peak FLOP/s per dtype and DRAM bytes/s; lesson 11 has learners build the
    roofline from them, so the spec must not ship ridge_point, attainable_flops and the like."""
    s = SPECS["h100_sxm"]
    assert s.peak_flops("bf16") == 989.4e12 and s.memory_bandwidth_bytes_per_s == 3.35e12
    # decode GEMV of a 4096 x 4096 bf16 weight: 2 FLOP per 2-byte weight -> intensity 1,
    # far below the ridge; a big square GEMM (8192^3, 3 bf16 matrices) lies far above it
    assert 2 * 4096 * 4096 / (2 * 4096 * 4096) < ridge(s, "bf16")
    assert 2 * 8192**3 / (3 * 2 * 8192**2) > ridge(s, "bf16")
    for name in ("ridge_point", "attainable_flops", "roofline_time_s", "is_memory_bound",
                 "classify", "roofline_report"):
        assert not hasattr(s, name), f"GPUSpec.{name} would hand lesson 11's answer to learners"


@pytest.mark.parametrize("key", ["h100_sxm", "h200_sxm"])
def test_measured_calibrations_are_below_the_roofs(key):
    """A measured figure above the datasheet roof would be a timing bug."""
    s = SPECS[key]
    cal = s.calibration
    assert cal is not None
    for k in ("device", "date", "command", "torch", "cuda"):
        assert isinstance(cal[k], str) and cal[k], k
    assert s.name.split()[1] in cal["device"]  # "H100" / "H200"
    assert isinstance(cal.get("provisional", False), bool)
    assert 0.5 < cal["copy_bytes_per_s"] / s.memory_bandwidth_bytes_per_s <= 1.0
    assert 0.5 < cal["bf16_gemm_flops_per_s"] / s.peak_flops("bf16") <= 1.0
    assert 0.5 < cal["fp8_gemm_flops_per_s"] / s.peak_flops("fp8") <= 1.0
    assert 0.5 < cal["sdpa_decode_bytes_per_s"] / s.memory_bandwidth_bytes_per_s <= 1.0


def test_only_measured_gpus_carry_a_calibration():
    assert {k for k, spec in SPECS.items() if spec.calibration} == {"h100_sxm", "h200_sxm"}


def test_specs_are_read_only():
    s = SPECS["h100_sxm"]
    with pytest.raises(Exception):
        s.sm_count = 1
    with pytest.raises(TypeError):
        s.peak_flops_per_s["bf16"] = 1.0


def test_current_is_none_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hf.current() is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 PCIe")
    assert hf.current().key == "h100_pcie"


def test_spec_or_measure_needs_cuda(monkeypatch):
    import torch
    from course import bench
    from course.bench import CudaUnavailableError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CudaUnavailableError, match="needs a CUDA GPU"):
        bench.spec_or_measure()


# --- malformed files: the error names the file and the key --------------------------------

def _fixture_text(**replace: str) -> str:
    text = (hf.FIXTURE_DIR / "l4.toml").read_text()
    for old, new in replace.items():
        assert old in text or old == "", old
        text = text.replace(old, new)
    return text


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken_gpu.toml"
    path.write_text(text)
    return path


def test_a_copy_of_a_good_file_loads(tmp_path):
    assert hf.load_file(_write(tmp_path, _fixture_text())).sm_count == 58


@pytest.mark.parametrize("old, new, key", [
    ("sm_count = 58\n", "", "sm_count"),
    ("sm_count = 58", 'sm_count = "58"', "sm_count"),
    ("memory_bandwidth_bytes_per_s = 300e9", "memory_bandwidth_bytes_per_s = -1.0",
     "memory_bandwidth_bytes_per_s"),
    ("tf32 = 60e12\n", "", "peak_flops_per_s.tf32"),
    ("pcie_generation = 4\n", "", "interconnect.pcie_generation"),
    ('fp32 = "NVIDIA L4 datasheet: FP32 30.3 TFLOPS"\n', "", "peak_flops_per_s.fp32"),
    ("fp32 = 30.3e12", "fp32 = 30.3e12\nfp64 = 0.5e12", "peak_flops_per_s.fp64"),
    ('memory_bytes = "NVIDIA', 'memory_byte = "NVIDIA', "memory_bytes"),
    ('memory_bytes = "NVIDIA', 'memory_byte = "typo"\nmemory_bytes = "NVIDIA', "sources.memory_byte"),
    ("sm_count = 58", "sm_count = 58\nsm_cout = 58", "sm_cout"),
])
def test_malformed_file_error_names_file_and_key(tmp_path, old, new, key):
    path = _write(tmp_path, _fixture_text(**{old: new}))
    with pytest.raises(hf.FixtureError) as info:
        hf.load_file(path)
    message = str(info.value)
    assert "broken_gpu.toml" in message and f"'{key}'" in message, message


def test_invalid_toml_names_the_file(tmp_path):
    path = _write(tmp_path, "name = \n")
    with pytest.raises(hf.FixtureError, match="broken_gpu.toml: not valid TOML"):
        hf.load_file(path)


def test_unverified_entries_are_reported():
    assert not SPECS["a10g"].is_verified("peak_flops_per_s.bf16")
    assert SPECS["h100_sxm"].is_verified("peak_flops_per_s.bf16")
    assert all(SPECS[k].unverified == {} for k in ("h100_sxm", "a100_sxm_80gb"))


def test_spec_or_measure_uses_the_fixture_or_measures_an_unknown_gpu(monkeypatch):
    from types import SimpleNamespace

    import torch
    from course import bench

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 PCIe")
    assert bench.spec_or_measure().key == "h100_pcie"

    props = SimpleNamespace(name="Tesla T4", major=7, minor=5, multi_processor_count=40,
                            L2_cache_size=4 * MiB, total_memory=15 * GiB)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: props.name)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a: props)
    monkeypatch.setattr(bench, "measure_copy_bandwidth", lambda nbytes: 2.5e11)
    monkeypatch.setattr(bench, "measure_gemm_flops", lambda n, dtype: 5e13)
    spec = bench.spec_or_measure()
    assert spec.measured and spec.key == "measured" and spec.name == "Tesla T4"
    assert spec.memory_bandwidth_bytes_per_s == 2.5e11 and spec.peak_flops("bf16") == 5e13
    assert ridge(spec, "bf16") == 200.0
    assert (spec.sm_count, spec.l2_bytes, spec.memory_bytes) == (40, 4 * MiB, 15 * GiB)
    assert spec.calibration["copy_bytes_per_s"] == 2.5e11 and "course.bench" in spec.calibration["command"]
    assert "measured" in spec.sources["memory_bandwidth_bytes_per_s"]


# Every number in a fixture says its unit in its name: the key (or the table holding it) ends in
# one of these suffixes. Dimensionless figures are named as what they are: a ratio of two
# measured quantities, a fraction of a whole, a count, or an ordinal generation.
UNIT_SUFFIXES = ("_bytes", "_bytes_per_s", "_bytes_per_s_per_direction", "_flops_per_s", "_s",
                 "_ratio", "_fraction", "_count",
                 "_generation")


def _numeric_keys(table, prefix=""):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _numeric_keys(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield prefix + key


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_every_number_names_its_unit(key):
    """Bug caught: a key such as `quant_threshold = 18.0` or `fp8_quantize_in_copies = 11.2`,
    whose reader cannot tell a ratio from seconds or GB from GiB."""
    import tomllib

    with (hf.FIXTURE_DIR / f"{key}.toml").open("rb") as f:
        doc = tomllib.load(f)
    doc.pop("sources", None)
    bad = [path for path in _numeric_keys(doc)
           if not any(part.endswith(UNIT_SUFFIXES) for part in path.split("."))]
    assert not bad, (f"{key}.toml: {len(bad)} numeric key(s) name no unit: {', '.join(bad)}; "
                     f"end the key (or its table) in one of {', '.join(UNIT_SUFFIXES)}")


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_capacity_is_the_datasheet_figure_in_binary_units(key):
    """A datasheet's "80GB" is stored as 80 GiB (the device reports more than 80e9 B), and the
    file says so next to the number."""
    s = SPECS[key]
    assert s.memory_bytes % GiB == 0, f"{key}: memory_bytes {s.memory_bytes} is not whole GiB"
    text = s.path.read_text()
    assert "binary" in text and "GiB x 2**30" in text, f"{key}.toml does not state the unit of memory_bytes"


@pytest.mark.parametrize("key,reported", [("h100_sxm", "device_total_memory_bytes"),
                                          ("h200_sxm", "nvidia_smi_memory_bytes")])
def test_device_reported_memory_is_within_two_percent_under_the_binary_figure(key, reported):
    """Were the datasheet's GB decimal, the device would report less than 80e9 B, not more."""
    s = SPECS[key]
    got = s.calibration[reported]
    assert 0.98 * s.memory_bytes <= got <= s.memory_bytes
    assert got > s.memory_bytes / GiB * 1e9


# --- per-SM limits (lesson 07's occupancy rules) -------------------------------------------

NVIDIA = sorted(k for k in EXPECTED if k != "mi300x")
KiB = 2**10


@pytest.mark.parametrize("key", NVIDIA)
def test_every_nvidia_fixture_has_consistent_sm_limits(key):
    """Bug caught: a warp count that disagrees with the thread count, a per-block shared-memory
    limit that forgets the 1 KiB the driver reserves, or a limit copied from another
    compute capability."""
    s = SPECS[key]
    sm = s.sm
    assert sm is not None, f"{key}: NVIDIA fixture without an [sm] table"
    assert sm.compute_capability == s.compute_capability
    assert sm.threads_per_warp_count == 32
    assert sm.max_warps_per_sm_count * 32 == sm.max_threads_per_sm_count
    assert sm.max_threads_per_block_count == 1024 and sm.max_registers_per_thread_count == 255
    assert sm.registers_per_sm_count == sm.max_registers_per_block_count == 64 * KiB
    assert sm.register_allocation_granularity == "warp"
    assert sm.reserved_shared_memory_per_block_bytes == 1 * KiB
    assert sm.max_shared_memory_per_block_bytes + 1 * KiB == sm.shared_memory_per_sm_bytes, \
        f"{key}: the per-block opt-in limit is the SM's shared memory less the 1 KiB reservation"
    assert sm.shared_memory_per_sm_bytes < sm.l1_and_shared_memory_per_sm_bytes
    assert sm.shared_memory_per_sm_bytes % KiB == 0
    missing = [f"sm.{k}" for k in hf.spec.SM_INTS if f"sm.{k}" not in s.sources]
    assert not missing, f"{key}: per-SM limits without a source: {missing}"


@pytest.mark.parametrize("cc, threads, blocks, smem_kib", [
    ("8.0", 2048, 32, 164), ("8.6", 1536, 16, 100), ("8.9", 1536, 24, 100),
    ("9.0", 2048, 32, 228), ("10.0", 2048, 32, 228),
])
def test_sm_limits_follow_the_compute_capability(cc, threads, blocks, smem_kib):
    """The CUDA C++ Programming Guide's table, one column per compute capability: every fixture
    of that capability carries the same per-SM limits."""
    same = [s for s in SPECS.values() if s.compute_capability == cc]
    assert same, cc
    for s in same:
        assert (s.sm.max_threads_per_sm_count, s.sm.max_blocks_per_sm_count,
                s.sm.shared_memory_per_sm_bytes) == (threads, blocks, smem_kib * KiB), s.key


def test_amd_has_no_sm_table():
    """MI300X compute units follow other rules (64-wide wavefronts, per-SIMD register files):
    the loader leaves `sm` empty rather than inventing NVIDIA limits."""
    assert SPECS["mi300x"].sm is None
    assert SPECS["mi300x"].compute_unit == "CU"


@pytest.mark.parametrize("old, new, key", [
    ("max_blocks_per_sm_count = 24\n", "", "sm.max_blocks_per_sm_count"),
    ("max_blocks_per_sm_count = 24", "max_blocks_per_sm_count = 0", "sm.max_blocks_per_sm_count"),
    ("max_blocks_per_sm_count = 24", "max_block_per_sm_count = 24", "sm.max_block_per_sm_count"),
    ('[sm]                                  # per-SM limits of compute capability 8.9 (occupancy rules)\ncompute_capability = "8.9"',
     '[sm]\ncompute_capability = "9.0"', "sm.compute_capability"),
])
def test_malformed_sm_table_names_the_key(tmp_path, old, new, key):
    path = _write(tmp_path, _fixture_text(**{old: new}))
    with pytest.raises(hf.FixtureError) as info:
        hf.load_file(path)
    assert f"'{key}'" in str(info.value), str(info.value)
