"""The Prefect flows on the real stage functions, under Prefect's test harness: the tiny study in a
git + DVC project (the flow leaves DVC consistent), fan-out on a Dask LocalCluster via prefect-dask,
and bad input (an unknown variant, a failing stage)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tiny_pipeline import dvc, project, raw, write


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def in_folder(tmp_path):
    old = Path.cwd()
    yield tmp_path
    os.chdir(old)


def test_study_flow_keeps_dvc_consistent(harness, in_folder):
    from flows.study import study
    folder = project(in_folder / "study", raw())
    os.chdir(folder)
    states = study(runner="processes", workers=2)
    assert set(states.values()) == {"Completed"}
    assert {"sample@train", "captions@one_object", "train@ideal-0", "evaluate@one_object-0", "report"} <= set(states)
    assert json.loads(dvc(folder, "status", "--json").stdout or "{}") == {}   # DVC agrees: all up to date
    assert "Running stage" not in dvc(folder, "repro").stdout
    eval_json = json.loads((folder / "data/metrics/ideal/seed0/eval.json").read_text())
    assert eval_json["steps"] == 4 and 0 <= eval_json["i2t_strict"] <= 1
    # a second run skips everything; one variant's change reruns that variant only
    assert study(workers=1, runner="threads") == {}
    r = __import__("yaml").safe_load((folder / "params.yaml").read_text())
    r["variants"]["one_object"]["objects_mentioned"] = 2
    write(folder, r)
    states = study(workers=1, runner="threads")
    assert set(states) == {"captions@one_object", "stats@one_object", "validate@one_object", "audit@one_object",
                           "train@one_object-0", "evaluate@one_object-0", "audit_overview", "report"}
    assert json.loads(dvc(folder, "status", "--json").stdout or "{}") == {}


def test_study_flow_on_dask_local_cluster(harness, in_folder):
    """The same flow, fanned out on a Dask LocalCluster (prefect-dask), outside any DVC project."""
    from flows.study import variant
    from prefect.artifacts import Artifact
    params_file = write(in_folder, raw(variants=("ideal", "density_1")))
    os.chdir(in_folder)
    from flows.study import study
    states = study(variants=["density_1"], runner="dask", workers=2, params_file=str(params_file),
                   data=str(in_folder / "data"))
    assert set(states.values()) == {"Completed"} and "train@density_1-0" in states
    assert "captions@ideal" not in states
    # the variant flow on the other one; no DVC here, so every stage runs
    states = variant("ideal", params_file=str(params_file), data=str(in_folder / "data"))
    assert "evaluate@ideal-0" in states and set(states.values()) == {"Completed"}
    report = json.loads((in_folder / "data/report/details.json").read_text())
    assert report["missing_runs"] == []
    artifact = Artifact.get("metrics-density-1")
    assert artifact is not None and "i2t_strict" in str(artifact.data)


def test_bad_input(harness, in_folder):
    from bindlab.params import ParamsError
    from flows.study import study
    params_file = write(in_folder, raw())
    os.chdir(in_folder)
    with pytest.raises(ParamsError, match="unknown variant 'nope'"):
        study(variants=["nope"], params_file=str(params_file), data="data")
    # a stage that fails (images of another size than the model's): its downstream does not run,
    # the flow fails naming it, and what finished is kept
    r = raw()
    r["render"]["image_size"] = 32
    params_file = write(in_folder, r)
    with pytest.raises(RuntimeError, match="train@ideal-0"):
        study(variants=["ideal"], params_file=str(params_file), data="data", runner="threads", workers=1)
    assert (in_folder / "data/validation/ideal/passed.json").exists()
    assert not (in_folder / "data/metrics/ideal/seed0/eval.json").exists()
