"""GPUSpec: one GPU's spec sheet, in bytes, bytes/s and FLOP/s.

The roofline built on these figures (ridge points, attainable FLOP/s, which side of the ridge
an operator lies on) is what lesson 11 has learners write; the spec only holds the numbers.

Conventions every number follows (the TOML files state them too):
- bytes and bytes/s, decimal for bandwidth (3.35 TB/s = 3.35e12 B/s), exact for capacities
  (a datasheet's "80GB" is binary: memory_bytes = 80 GiB = 85,899,345,920);
- tensor-core peaks are dense (no 2:4 sparsity) and, for 16-bit and fp8, with FP32 accumulate;
- interconnect bandwidths are per direction (NVLink4: 450e9, not the 900e9 "total").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Names that mean the same peak: torch dtype names, short names, common spellings.
_DTYPE_ALIASES = {
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "fp8": "fp8", "float8": "fp8", "e4m3": "fp8", "e5m2": "fp8",
    "float8_e4m3fn": "fp8", "float8_e5m2": "fp8",
    "float8_e4m3fnuz": "fp8", "float8_e5m2fnuz": "fp8",
    "fp4": "fp4",
    "int8": "int8",
    "tf32": "tf32", "tensorfloat32": "tf32",
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
}


def canonical_dtype(dtype: object) -> str:
    """'bf16' for torch.bfloat16, 'bfloat16' or 'BF16'; other names pass through lowercased."""
    name = str(dtype).lower().removeprefix("torch.")
    return _DTYPE_ALIASES.get(name, name)


@dataclass(frozen=True)
class SMLimits:
    """What one streaming multiprocessor can hold at once: the limits of the CUDA occupancy rules.

    Counts are of threads, warps, blocks and 32-bit registers; sizes are bytes. Registers are
    given to a warp in units of `register_allocation_unit_count` and split evenly over the SM's
    `sub_partitions_per_sm_count` partitions; shared memory is given to a block in units of
    `shared_memory_allocation_unit_bytes`, after adding the driver's
    `reserved_shared_memory_per_block_bytes`. `shared_memory_per_sm_bytes` is the largest
    carveout of the unified L1 / shared memory (`l1_and_shared_memory_per_sm_bytes`).
    """

    compute_capability: str
    threads_per_warp_count: int
    max_threads_per_block_count: int
    max_threads_per_sm_count: int
    max_warps_per_sm_count: int
    max_blocks_per_sm_count: int
    registers_per_sm_count: int
    max_registers_per_block_count: int
    max_registers_per_thread_count: int
    register_allocation_unit_count: int
    register_allocation_granularity: str          # "warp"
    sub_partitions_per_sm_count: int
    shared_memory_per_sm_bytes: int
    max_shared_memory_per_block_bytes: int
    reserved_shared_memory_per_block_bytes: int
    shared_memory_allocation_unit_bytes: int
    l1_and_shared_memory_per_sm_bytes: int


SM_INTS = tuple(name for name, kind in SMLimits.__annotations__.items() if kind == "int")
SM_STRINGS = tuple(name for name, kind in SMLimits.__annotations__.items() if kind == "str")


@dataclass(frozen=True)
class GPUSpec:
    """A GPU's datasheet figures (dense peaks, per-direction links) and optional calibration.

    Invariant: every number has an entry in `sources` (key path -> where it comes from);
    `unverified` maps the key paths whose source is secondary or derived to a note.
    """

    key: str                                  # fixture name, e.g. "h100_sxm"
    name: str
    vendor: str
    architecture: str
    chip: str
    compute_capability: str                   # "9.0"; "gfx942" for AMD
    match: tuple[str, ...]                    # whole-word substrings of the device name
    exclude: tuple[str, ...]                  # a device name containing one of these never matches
    compute_unit: str                         # "SM" (NVIDIA) or "CU" (AMD)
    sm_count: int                             # SMs, or CUs on AMD
    l2_bytes: int
    last_level_cache_bytes: int               # the largest on-chip cache (L2, or AMD's Infinity Cache)
    memory_type: str
    memory_bytes: int
    memory_bandwidth_bytes_per_s: float       # datasheet DRAM bandwidth (reads + writes together)
    peak_flops_per_s: Mapping[str, float]     # dense; int8 in OP/s
    gpu_link: str                             # "NVLink4", "none", ...
    gpu_link_bytes_per_s_per_direction: float
    pcie_generation: int
    pcie_x16_bytes_per_s_per_direction: float
    sources: Mapping[str, str]
    unverified: Mapping[str, str] = field(default_factory=dict)
    calibration: Mapping[str, Any] | None = None  # measured rates, command, date; None if none
    sm: SMLimits | None = None                # per-SM occupancy limits; None for AMD (CUs differ)
    path: Path | None = None                  # the TOML it came from; None when measured
    measured: bool = False                    # True: built by spec_or_measure on an unknown GPU

    @property
    def nvlink_bytes_per_s_per_direction(self) -> float:
        """NVLink bandwidth one way in bytes/s; 0.0 when the GPU has no NVLink."""
        if self.gpu_link.startswith("NVLink"):
            return self.gpu_link_bytes_per_s_per_direction
        return 0.0

    @property
    def is_provisional(self) -> bool:
        """True when the calibration is missing or marked provisional (not yet re-measured)."""
        return self.calibration is None or bool(self.calibration.get("provisional", False))

    def peak_flops(self, dtype: object) -> float:
        """Dense peak in FLOP/s (OP/s for int8) for a dtype name or torch dtype."""
        wanted = canonical_dtype(dtype)
        if wanted not in self.peak_flops_per_s:
            known = ", ".join(sorted(self.peak_flops_per_s))
            raise KeyError(f"{self.name} has no peak for dtype {dtype!r} ({wanted!r}); known: {known}")
        return self.peak_flops_per_s[wanted]

    def is_verified(self, key_path: str) -> bool:
        """False when the number at key_path (e.g. 'peak_flops_per_s.fp8') is marked unverified."""
        return key_path not in self.unverified
