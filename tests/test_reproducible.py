"""Same params -> same bytes, and a second clone restores instead of recomputing.

Two fresh tiny DVC projects run the study from scratch, each with its own cache (one with `make
study`, the session's `made_study`, which is also test_shared_cache's lone run; the other the
session's `dvc_study`: `dvc repro`, interrupted as training started and run again): every hash in
dvc.lock agrees (validation, audit, training, evaluation and report included), and the run-dependent
records (wall-clock times, GX Data Docs) are outside the hashed outputs. A
second clone of the first project's commit runs `make study` with the same cache folder
(BINDLAB_DVC_CACHE, as the Makefile sets for every clone on a machine): every stage comes from DVC's
run-cache, and one variant's knob retrains that variant only."""
from __future__ import annotations

import re
import time

import pytest
import yaml
from tiny import dvc, make_study, run


def hashes(folder) -> dict[tuple[str, str], str]:
    lock = yaml.safe_load((folder / "dvc.lock").read_text())["stages"]
    return {(stage, o["path"]): o["md5"] for stage, s in lock.items() for o in s.get("outs", [])}


@pytest.fixture(scope="module")
def first(made_study):
    """The session's `made_study`: a clone whose `make study` ran from scratch with its own cache."""
    return made_study["folder"], made_study["cache"]


def test_two_fresh_runs_give_the_same_bytes(first, dvc_study):
    a_folder, _ = first
    b_folder = dvc_study["folder"]  # its own cache (.dvc/cache): computed from scratch
    assert dvc_study["second"].returncode == 0, dvc_study["second"].stderr[-3000:]
    a, b = hashes(a_folder), hashes(b_folder)
    assert len(a) > 30 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert (a_folder / "dvc.lock").read_text() == (b_folder / "dvc.lock").read_text()
    # what differs between runs was written, outside every declared output
    records = b_folder / "data" / "runs"
    assert (records / "metrics/ideal/seed0/timing.json").exists()
    assert (records / "validation/ideal/docs/index.html").exists()
    assert (records / "validation/ideal/gx_results.json").exists()


def test_second_clone_restores_and_retrains_one_variant(first, tmp_path):
    a_folder, cache = first
    assert (a_folder / ".dvc/config.local").read_text().count(str(cache)) == 1  # made by `make study`
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(a_folder), str(clone))  # the commit, without dvc.lock
    t = time.perf_counter()
    out = make_study(clone, cache)
    seconds = time.perf_counter() - t
    assert "Running stage" not in out, out[-3000:]
    assert "Stage 'train@ideal-0' is cached - skipping run" in out
    assert (clone / "dvc.lock").read_text() == (a_folder / "dvc.lock").read_text()
    assert (clone / "data/models/ideal/seed0/last.pt").read_bytes() == \
           (a_folder / "data/models/ideal/seed0/last.pt").read_bytes()
    print(f"second clone: make study in {seconds:.1f} s")
    # one variant's knob: that variant retrains, the other is untouched
    p = clone / "params.yaml"
    r = yaml.safe_load(p.read_text())
    r["variants"]["one_object"]["objects_mentioned"] = 2
    p.write_text(yaml.safe_dump(r, sort_keys=False))
    out = dvc(clone, "repro").stdout
    assert "Running stage 'train@one_object-0'" in out and "Running stage 'train@ideal-0'" not in out


def test_second_clone_of_a_committed_lock_checks_out_in_one_pass(first, tmp_path):
    """With dvc.lock committed (as the project commits it), a fresh clone's `make study` checks the
    lock's outputs out of the shared cache in one pass (hard links), then `dvc repro` finds nothing
    stale: no stage runs, and every output is the first project's byte for byte."""
    a_folder, cache = first
    src = tmp_path / "src"
    run(tmp_path, "git", "clone", "-q", str(a_folder), str(src))
    (src / "dvc.lock").write_bytes((a_folder / "dvc.lock").read_bytes())
    run(src, "git", "add", "dvc.lock")
    run(src, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "study lock")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(src), str(clone))
    out = make_study(clone, cache)
    assert "Running stage" not in out and "is cached - skipping" not in out, out[-3000:]
    assert re.search(r"^A\s+data/models/ideal/seed0/?$", out, re.M), out[-3000:]  # dvc checkout's line
    assert "Stage 'train@ideal-0' didn't change, skipping" in out
    assert (clone / "dvc.lock").read_text() == (a_folder / "dvc.lock").read_text()
    model = clone / "data/models/ideal/seed0/last.pt"
    assert model.read_bytes() == (a_folder / "data/models/ideal/seed0/last.pt").read_bytes()
    assert model.stat().st_nlink > 1  # a hard link into the cache, not a copy
