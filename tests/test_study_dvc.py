"""The study through DVC, end to end on a tiny study in a temporary git repository: `dvc repro` runs
every stage, an interrupted run restarts where it stopped, a second run is a no-op, and a changed
setting makes exactly the stages that read it stale. The interrupted and resumed run is the session's
`dvc_study` (tests/conftest.py; test_reproducible compares its bytes with another fresh run); the
edits here are made on a copy of it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import yaml
from tiny import dvc, env, pipeline_raw, project, stale


def edit_params(folder, change) -> None:
    path = folder / "params.yaml"
    r = yaml.safe_load(path.read_text())
    change(r)
    path.write_text(yaml.safe_dump(r, sort_keys=False))


def test_dvc_study_end_to_end(dvc_study, tmp_path):
    names = dvc_study["names"]
    assert {"sample@train", "render@train", "benchmark", "captions@ideal", "validate@one_object",
            "train@ideal-0", "chance@0", "evaluate@one_object-0", "curve@ideal-0", "audit_overview", "report"} <= names

    # the first run, interrupted when training started: what finished is recorded in dvc.lock
    first = dvc_study["interrupted"]
    assert first["returncode"] != 0, "".join(first["seen"][-20:])
    left = first["stale"]
    assert "sample@train" not in left and "captions@ideal" not in left
    assert {"train@ideal-0", "evaluate@ideal-0", "report"} <= left

    second = dvc_study["second"]
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    out = second.stdout
    assert "Stage 'sample@train' didn't change, skipping" in out
    assert "Running stage 'sample@train'" not in out and "Running stage 'report'" in out
    assert dvc_study["stale"] == set()
    folder = tmp_path / "study"
    shutil.copytree(dvc_study["folder"], folder, symlinks=True)
    findings = json.loads((folder / "data/report/details.json").read_text())
    assert [f["number"] for f in findings["findings"]] == [1, 2, 3, 4, 5, 6, 7]
    assert findings["missing_runs"] == []
    # finding 7's curve (study.ideal): one point per weight snapshot, in the report
    assert [p["step"] for p in findings["findings"][6]["curves"][0]["points"]] == [3, 4]
    assert (folder / "data/audit/ideal/index.html").exists() and (folder / "data/audit/index.html").exists()
    # the DVC metrics are two small files per run and per variant, not the full breakdowns
    metrics = json.loads(dvc(folder, "metrics", "show", "--json").stdout)
    files = {f: d["data"] for rev in metrics for f, d in rev["data"]["metrics"].items()} if isinstance(metrics, list) \
        else {f: d["data"] for f, d in next(iter(metrics.values()))["data"].items()}
    assert set(files) == {f"data/metrics/{v}/seed0/binding.json" for v in ("ideal", "one_object")} | \
        {f"data/audit/{v}/properties.json" for v in ("ideal", "one_object")}
    assert set(files["data/metrics/ideal/seed0/binding.json"]) == {"i2t_pairwise", "i2t_strict", "t2i_pairwise",
                                                                   "probe", "r1_i2t"}
    assert files["data/audit/ideal/properties.json"]["density"]["declared"] == 6  # every attribute type

    # nothing changed: a no-op (its time is a benchmark figure, not a test: README, The study)
    out = dvc(folder, "repro").stdout
    assert "Running stage" not in out, out

    # one variant's knob: that variant's stages (and the cross-variant pages) only; stats reads the
    # variant's params itself (its batch statistic draws the variant's training batches)
    edit_params(folder, lambda r: r["variants"]["one_object"].update(objects_mentioned=2))
    assert stale(folder) == {"captions@one_object", "stats@one_object", "validate@one_object", "audit@one_object",
                             "train@one_object-0", "audit_overview", "report"}
    edit_params(folder, lambda r: r["variants"]["one_object"].update(objects_mentioned=1))
    # the training config: training only (evaluation follows through its deps), no data stage
    edit_params(folder, lambda r: r["train"].update(lr=0.001))
    assert stale(folder) == {"train@ideal-0", "train@one_object-0"}
    # switching the profile (a what-if without hand edits) touches every stage
    edit_params(folder, lambda r: r.update(profile="nope"))
    r = dvc(folder, "repro", "--dry", check=False)
    assert r.returncode != 0 and "profiles.nope" in r.stderr


def test_missing_upstream_and_unknown_variant(tmp_path):
    """Without DVC driving: a stage whose input is missing names it; an unknown variant is named."""
    folder = project(tmp_path / "study", pipeline_raw())
    cmd = [sys.executable, "-m", "bindlab.cli"]
    r = subprocess.run([*cmd, "captions", "--variant", "ideal"], cwd=folder, env=env(), capture_output=True, text=True)
    assert r.returncode == 2 and "data/scenes/train.parquet" in r.stderr and "bindlab sample" in r.stderr
    r = subprocess.run([*cmd, "captions", "--variant", "nope"], cwd=folder, env=env(), capture_output=True, text=True)
    assert r.returncode == 2 and "unknown variant 'nope'" in r.stderr
    r = dvc(folder, "repro", "captions@nope", check=False)
    assert r.returncode != 0 and "captions@nope" in r.stderr
    assert not (folder / "data").exists()
