"""Shared fixtures. The tiny study (tests/tiny.py) is built once per session; tests that write into
it work on a copy. Session fixtures are built on first use, so a single test file or test run alone
builds only what it needs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import (build_data, copy_study, digest, dvc, env, pipeline_raw, project, stale, tiny_params_dict,
                  tiny_raw, write_params)


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    """Path of a tiny params.yaml in an empty temporary folder (outputs go to tmp_path / 'data')."""
    return write_params(tmp_path, tiny_params_dict())


@pytest.fixture
def tiny_params(tiny_params_file: Path):
    from bindlab.params import load_params
    return load_params(tiny_params_file)


def _unchanged(folder: Path):
    """Yield folder; at the end of the session, fail if a test wrote into it (instead of a copy), so no
    test can come to depend on another having run before it."""
    before = digest(folder)
    yield folder
    after = digest(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test wrote into the shared {folder.name} instead of a copy: {changed[:10]}"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The folder of the tiny study's data (params.yaml, data/): the data stages of every variant of
    `tiny.VARIANTS` and the benchmark; nothing trained, nothing validated (no torch: the statistics,
    validation and audit tests run alone without importing it). Read-only: a test that writes uses
    `tiny.copy_study`."""
    folder = tmp_path_factory.mktemp("tiny_data")
    build_data(folder, tiny_raw())
    yield from _unchanged(folder)


@pytest.fixture(scope="session")
def tiny_study(tiny_data, tmp_path_factory) -> Path:
    """The folder of the tiny study: `tiny_data` with `ideal` trained 6 steps (weight snapshots at
    steps 3 and 6), without validation. Read-only: a test that writes uses `tiny.copy_study`."""
    from bindlab.train import train_stage
    folder = tmp_path_factory.mktemp("tiny_study")
    params, paths, _ = copy_study(tiny_data, folder)
    train_stage(params, paths, "ideal", progress=False, require_validation=False)
    yield from _unchanged(folder)


@pytest.fixture(scope="session")
def dvc_study(tmp_path_factory) -> dict:
    """A tiny DVC project (`tiny.pipeline_raw()`) whose study `dvc repro` ran from scratch with its own
    cache: interrupted with SIGINT as training started, then run again to the end. -> the folder and
    what was seen on the way (the stage list, the interrupted run's exit status and output, the stale
    stages after it, the second run's output, the stale stages after that). Read-only: a test that
    edits the project works on a copy."""
    folder = project(tmp_path_factory.mktemp("dvc_study") / "study", pipeline_raw())
    names = set(dvc(folder, "stage", "list", "--name-only").stdout.split())
    p = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=folder, env=env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    seen = []
    for line in p.stdout:
        seen.append(line)
        if line.startswith("Running stage 'train@"):
            os.killpg(p.pid, signal.SIGINT)
            break
    p.wait(timeout=60)
    interrupted = {"returncode": p.returncode, "seen": seen, "stale": stale(folder)}
    second = dvc(folder, "repro", check=False)
    return {"folder": folder, "names": names, "interrupted": interrupted,
            "second": second, "stale": stale(folder)}


def pytest_terminal_summary(terminalreporter):
    """The size of the fault-injection suite (tests/test_faults.py), reported with every run."""
    counts = {k: sum("test_faults.py::test_fault[" in getattr(r, "nodeid", "") for r in terminalreporter.stats.get(k, []))
              for k in ("passed", "failed", "skipped")}
    if sum(counts.values()):
        terminalreporter.write_line(f"fault injection: {sum(counts.values())} cases (artifact x damage x reader): "
                                    f"{counts['passed']} passed, {counts['failed']} failed, "
                                    f"{counts['skipped']} skipped by design")
