"""The CPU kernels torch computes with, pinned so that training and scoring give the same bytes on
any x86-64 CPU with AVX2.

torch's CPU wheels choose their kernels by what the CPU offers: ATen's vectorised ops (layer norm,
softmax, GELU, Adam) run AVX-512 code on a CPU that has it and AVX2 code elsewhere, oneDNN (the
convolution of the patch embedding) picks its own instruction set, and MKL (the matrix products)
picks a code branch by CPU. Each choice sums in another order, so the same run gave other bytes on
another machine, and DVC took it for another result. The pin makes every AVX2 machine compute as
one: ATen and oneDNN capped at AVX2, MKL in its AVX2 reproducibility mode (on non-Intel CPUs MKL
keeps its automatic branch, which on the AMD CPUs measured already matched). MKL's `COMPATIBLE`
mode would also cover Intel against AMD, at 1.8x the step time (docs/training.md).

The variables are read when torch first computes, so `bindlab/__init__.py` sets them as the
package loads, before any stage imports torch; `check` tells a stage when torch had already chosen.
`BINDLAB_CPU_KERNELS=native` leaves the choice to torch (the benchmark's unpinned reference).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

from bindlab.errors import StageError

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SWITCH = "BINDLAB_CPU_KERNELS"
MODES = ("pinned", "native")
NEEDED_FLAGS = {"avx2", "fma"}   # what ATen's AVX2 kernels execute; without them the pin would crash


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux); empty where they cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def mode(environ=os.environ) -> str:
    value = environ.get(SWITCH, "pinned")
    if value not in MODES:
        raise StageError(f"environment: {SWITCH}={value!r} is not one of {', '.join(MODES)}; unset it to pin")
    return value


def pin(environ=os.environ, flags: set[str] | None = None) -> dict[str, str]:
    """Set the pinned kernels in `environ` (overriding the shell's values) unless the mode is native or
    the CPU cannot run AVX2 code (another architecture: torch's own choice, other bytes). Returns what
    it set."""
    if environ.get(SWITCH, "pinned") != "pinned" or platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    if not NEEDED_FLAGS <= (cpu_flags() if flags is None else flags):
        return {}
    environ.update(PINNED)
    return dict(PINNED)


def check(capability: str, environ=os.environ) -> None:
    """Fail a stage whose torch chose its kernels before the pin was set (torch imported and used
    before bindlab): its bytes would be this machine's, not the pinned ones. `capability` is
    `torch.backends.cpu.get_cpu_capability()`."""
    if mode(environ) == "pinned" and environ.get("ATEN_CPU_CAPABILITY") == PINNED["ATEN_CPU_CAPABILITY"] \
            and capability != PINNED["ATEN_CPU_CAPABILITY"].upper():
        raise StageError(f"torch computes with {capability} kernels, not the pinned AVX2 ones: import bindlab "
                         f"before torch runs anything, or set {SWITCH}=native to measure unpinned")
