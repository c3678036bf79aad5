"""Shared fixtures. The tiny study (tests/tiny.py) is built once per session; tests that write into
it work on a copy. Session fixtures are built on first use, so a single test file or test run alone
builds only what it needs; the from-scratch DVC studies (`dvc_study`, `made_study`) are background
jobs (tests/background.py), started at the session's start when a collected test uses them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from background import JOBS
from tiny import (build_data, copy_study, digest, dvc, env, make_study, pipeline_raw, project, run, stale,
                  tiny_params_dict, tiny_raw, write_params)


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


@pytest.fixture(scope="session", autouse=True)
def background_jobs(request, tmp_path_factory):
    """Starts the background jobs (tests/background.py) the collected tests use, so they run on the
    spare core while the tests before them run."""
    JOBS.start([n for item in request.session.items for n in getattr(item, "fixturenames", ())], tmp_path_factory)
    yield JOBS
    JOBS.finish()


def build_dvc_study(tmp: Path) -> dict:
    """A tiny DVC project (`tiny.pipeline_raw()`) whose study `dvc repro` ran from scratch with its own
    cache: interrupted with SIGINT as training started, then run again to the end. -> the folder and
    what was seen on the way (the stage list, the interrupted run's exit status and output, the stale
    stages after it, the second run's output, the stale stages after that)."""
    folder = project(tmp / "study", pipeline_raw())
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


def build_made_study(tmp: Path) -> dict:
    """A tiny DVC project (`tiny.pipeline_raw()`, committed without dvc.lock: `origin`) and a clone of
    it (`folder`) whose `make study` ran from scratch with a cache folder of its own (`cache`,
    BINDLAB_DVC_CACHE). -> those, the study's output and its seconds."""
    origin = project(tmp / "origin", pipeline_raw())
    run(tmp, "git", "clone", "-q", str(origin), "alone")
    t = time.monotonic()
    out = make_study(tmp / "alone", tmp / "cache")
    return {"origin": origin, "folder": tmp / "alone", "cache": tmp / "cache", "out": out,
            "seconds": time.monotonic() - t}


JOBS.register("dvc_study", build_dvc_study)
JOBS.register("made_study", build_made_study)


@pytest.fixture(scope="session")
def dvc_study(background_jobs) -> dict:
    """`build_dvc_study`'s project and record (test_study_dvc; test_reproducible compares its bytes with
    `made_study`'s). Read-only: a test that edits the project works on a copy."""
    return background_jobs.result("dvc_study")


@pytest.fixture(scope="session")
def made_study(background_jobs) -> dict:
    """`build_made_study`'s projects, cache and record: a second fresh run for test_reproducible, and
    test_shared_cache's lone run. Read-only: a test clones it (and may store into its cache)."""
    return background_jobs.result("made_study")


def pytest_terminal_summary(terminalreporter):
    """The size of the fault-injection suite (tests/test_faults.py), reported with every run."""
    counts = {k: sum("test_faults.py::test_fault[" in getattr(r, "nodeid", "") for r in terminalreporter.stats.get(k, []))
              for k in ("passed", "failed", "skipped")}
    if sum(counts.values()):
        terminalreporter.write_line(f"fault injection: {sum(counts.values())} cases (artifact x damage x reader): "
                                    f"{counts['passed']} passed, {counts['failed']} failed, "
                                    f"{counts['skipped']} skipped by design")
