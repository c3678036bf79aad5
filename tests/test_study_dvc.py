"""The study through DVC, end to end on a tiny study in a temporary git repository: `dvc repro` runs
every stage, an interrupted run restarts where it stopped, a second run is a no-op, and a changed
setting makes exactly the stages that read it stale."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import yaml
from tiny_pipeline import dvc, env, project, raw


def stale(folder) -> set[str]:
    return set(json.loads(dvc(folder, "status", "--json").stdout or "{}"))


def edit_params(folder, change) -> None:
    path = folder / "params.yaml"
    r = yaml.safe_load(path.read_text())
    change(r)
    path.write_text(yaml.safe_dump(r, sort_keys=False))


def test_dvc_study_end_to_end(tmp_path):
    folder = project(tmp_path / "study", raw())
    names = set(dvc(folder, "stage", "list", "--name-only").stdout.split())
    assert {"sample@train", "render@train", "benchmark", "captions@ideal", "validate@one_object",
            "train@ideal-0", "evaluate@one_object-0", "curve@ideal-0", "audit_overview", "report"} <= names

    # interrupt the first run when training starts: what finished is recorded in dvc.lock
    p = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=folder, env=env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    seen = []
    for line in p.stdout:
        seen.append(line)
        if line.startswith("Running stage 'train@"):
            os.killpg(p.pid, signal.SIGINT)
            break
    p.wait(timeout=60)
    assert p.returncode != 0, "".join(seen[-20:])
    left = stale(folder)
    assert "sample@train" not in left and "captions@ideal" not in left
    assert {"train@ideal-0", "evaluate@ideal-0", "report"} <= left

    out = dvc(folder, "repro").stdout
    assert "Stage 'sample@train' didn't change, skipping" in out
    assert "Running stage 'sample@train'" not in out and "Running stage 'report'" in out
    assert stale(folder) == set()
    findings = json.loads((folder / "data/report/details.json").read_text())
    assert [f["number"] for f in findings["findings"]] == [1, 2, 3, 4, 5, 6, 7]
    assert findings["missing_runs"] == []
    # finding 7's curve (study.ideal_long is `ideal` here): one point per weight snapshot, in the report
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

    # one variant's knob: that variant's stages (and the cross-variant pages) only
    edit_params(folder, lambda r: r["variants"]["one_object"].update(objects_mentioned=2))
    assert stale(folder) == {"captions@one_object", "validate@one_object", "audit@one_object",
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
    folder = project(tmp_path / "study", raw())
    cmd = [sys.executable, "-m", "bindlab.cli"]
    r = subprocess.run([*cmd, "captions", "--variant", "ideal"], cwd=folder, env=env(), capture_output=True, text=True)
    assert r.returncode == 2 and "data/scenes/train.parquet" in r.stderr and "bindlab sample" in r.stderr
    r = subprocess.run([*cmd, "captions", "--variant", "nope"], cwd=folder, env=env(), capture_output=True, text=True)
    assert r.returncode == 2 and "unknown variant 'nope'" in r.stderr
    r = dvc(folder, "repro", "captions@nope", check=False)
    assert r.returncode != 0 and "captions@nope" in r.stderr
    assert not (folder / "data").exists()
