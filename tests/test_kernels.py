"""The pinned CPU kernels: training's bytes are the same under the environments of two different
machines once pinned, and differ without the pin; the pin's rules (which CPUs, which mode, a torch
that chose before it) on their own."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from bindlab import kernels
from bindlab.errors import StageError
from tiny import copy_study

# Two machines as torch sees them: this one as it is, and one whose CPU offers neither AVX2 nor
# AVX-512 (ATen's default kernels, oneDNN's SSE4.1 code), whichever this one has.
MACHINES = {"this": {}, "older": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}}


def _train(folder, environ: dict) -> str:
    """`bindlab train` of the tiny study's `ideal` in a fresh process -> one hash of its outputs."""
    shutil.rmtree(folder / "data/models", ignore_errors=True)
    shutil.rmtree(folder / "data/metrics", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in kernels.PINNED} | environ
    subprocess.run([sys.executable, "-m", "bindlab.cli", "train", "--params", str(folder / "params.yaml"),
                    "--data", str(folder / "data"), "--variant", "ideal", "--fresh", "--unvalidated",
                    "--threads", "1"], check=True, capture_output=True, env=env, cwd=folder)
    h = hashlib.md5()
    for f in sorted((folder / "data").rglob("*")):
        if f.is_file() and f.suffix in (".pt", ".tsv"):
            h.update(f.read_bytes())
    return h.hexdigest()


@pytest.mark.skipif(not kernels.NEEDED_FLAGS <= kernels.cpu_flags(), reason="the pin needs an x86-64 CPU with AVX2")
def test_training_bytes_are_the_same_on_two_machines_only_when_pinned(tiny_study, tmp_path):
    copy_study(tiny_study, tmp_path)
    native = {m: _train(tmp_path, e | {kernels.SWITCH: "native"}) for m, e in MACHINES.items()}
    pinned = {m: _train(tmp_path, e) for m, e in MACHINES.items()}
    assert native["this"] != native["older"], "unpinned, the two machines' kernels should give other bytes"
    assert pinned["this"] == pinned["older"], "pinned, both machines must give the same bytes"


def test_pin_sets_every_variable_and_overrides_the_shell():
    environ = {"ATEN_CPU_CAPABILITY": "avx512"}
    assert kernels.pin(environ, flags={"avx2", "fma", "avx512f"}) == kernels.PINNED
    assert environ == kernels.PINNED


def test_pin_leaves_a_cpu_without_avx2_and_the_native_mode_alone():
    assert kernels.pin(environ := {}, flags={"sse4_2", "avx"}) == {} and environ == {}
    environ = {kernels.SWITCH: "native"}
    assert kernels.pin(environ, flags={"avx2", "fma"}) == {} and environ == {kernels.SWITCH: "native"}


def test_a_torch_that_chose_before_the_pin_fails_the_stage():
    pinned = dict(kernels.PINNED)
    kernels.check("AVX2", pinned)
    with pytest.raises(StageError, match="AVX512 kernels"):
        kernels.check("AVX512", pinned)
    kernels.check("AVX512", {kernels.SWITCH: "native"})   # measuring unpinned is allowed
    with pytest.raises(StageError, match=kernels.SWITCH):
        kernels.check("AVX2", {kernels.SWITCH: "fast"})


def test_the_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert kernels.cpu_flags(tmp_path / "cpuinfo") == {"fpu", "sse2", "avx2", "fma"}
    assert kernels.cpu_flags(tmp_path / "absent") == set()
