"""Same params -> same bytes. Two fresh tiny DVC projects run `dvc repro` from scratch, each with its
own cache: every hash in dvc.lock agrees (validation, audit, training, evaluation and report included),
and the run-dependent records (wall-clock times, GX Data Docs) are outside the hashed outputs."""
from __future__ import annotations

import yaml
from tiny_pipeline import dvc, project, raw


def hashes(folder) -> dict[tuple[str, str], str]:
    lock = yaml.safe_load((folder / "dvc.lock").read_text())["stages"]
    return {(stage, o["path"]): o["md5"] for stage, s in lock.items() for o in s.get("outs", [])}


def test_two_fresh_runs_give_the_same_bytes(tmp_path):
    runs = []
    for name in ("a", "b"):
        folder = project(tmp_path / name, raw())
        dvc(folder, "repro")
        runs.append(folder)
    a, b = (hashes(f) for f in runs)
    assert len(a) > 30 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert (runs[0] / "dvc.lock").read_text() == (runs[1] / "dvc.lock").read_text()
    # what differs between runs was written, outside every declared output
    records = runs[0] / "data" / "runs"
    assert (records / "metrics/ideal/seed0/timing.json").exists()
    assert (records / "validation/ideal/docs/index.html").exists()
    assert (records / "validation/ideal/gx_results.json").exists()
