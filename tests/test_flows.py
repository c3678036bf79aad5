"""The Prefect flows on the real DVC stages, under Prefect's test harness: the tiny study in a git + DVC
project (the flow runs dvc.yaml's stages and leaves DVC consistent; a stage added to dvc.yaml runs with
no other edit), fan-out on a Dask LocalCluster via prefect-dask, and bad input (no project, an unknown
variant, a failing stage)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from background import JOBS
from tiny import dvc, env, pipeline_raw, project, write_params


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=180):  # a loaded 2-core machine starts it slowly
        yield


@pytest.fixture
def in_folder(tmp_path):
    old = Path.cwd()
    yield tmp_path
    os.chdir(old)


def test_study_flow_keeps_dvc_consistent(harness, in_folder):
    from flows.study import study
    folder = project(in_folder / "study", pipeline_raw())
    os.chdir(folder)
    states = study(runner="processes", workers=2)
    assert set(states.values()) == {"Completed"}
    stages = set(dvc(folder, "stage", "list", "--name-only").stdout.split())
    assert set(states) == stages  # one task per DVC stage, named by it
    assert json.loads(dvc(folder, "status", "--json").stdout or "{}") == {}   # DVC agrees: all up to date
    assert "Running stage" not in dvc(folder, "repro").stdout
    eval_json = json.loads((folder / "data/metrics/ideal/seed0/eval.json").read_text())
    assert eval_json["steps"] == 4 and 0 <= eval_json["i2t_strict"] <= 1
    # a second run skips everything; one variant's change reruns that variant only
    assert study(workers=1, runner="threads") == {}
    r = yaml.safe_load((folder / "params.yaml").read_text())
    r["variants"]["one_object"]["objects_mentioned"] = 2
    write_params(folder, r)
    states = study(workers=1, runner="threads")
    assert set(states) == {"captions@one_object", "stats@one_object", "validate@one_object", "audit@one_object",
                           "train@one_object-0", "evaluate@one_object-0", "audit_overview", "report"}
    assert json.loads(dvc(folder, "status", "--json").stdout or "{}") == {}
    # a stage added to dvc.yaml runs with no other edit, after the stage it depends on
    pipeline = yaml.safe_load((folder / "dvc.yaml").read_text())
    pipeline["stages"]["caption_count"] = {
        "cmd": "python -c \"import polars as pl; print(pl.read_parquet('data/captions/ideal/captions.parquet')"
               ".height, file=open('data/caption_count.txt', 'w'))\"",
        "deps": ["data/captions/ideal/captions.parquet"], "outs": ["data/caption_count.txt"]}
    (folder / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    assert study(workers=1, runner="threads") == {"caption_count": "Completed"}
    assert (folder / "data/caption_count.txt").read_text() == "300\n"
    assert json.loads(dvc(folder, "status", "--json").stdout or "{}") == {}


def test_study_flow_on_dask_local_cluster(harness, in_folder):
    """The same flow, fanned out on a Dask LocalCluster (prefect-dask); chosen variants only."""
    from flows.study import study, variant
    from prefect.artifacts import Artifact
    folder = project(in_folder / "study", pipeline_raw(variants=("ideal", "density_1")))
    os.chdir(folder)
    states = study(variants=["density_1"], runner="dask", workers=2)
    assert set(states.values()) == {"Completed"} and "train@density_1-0" in states
    assert "captions@ideal" not in states and {"sample@train", "benchmark", "report"} <= set(states)
    # the variant flow on the other one: its stages, not density_1's again
    states = variant("ideal")
    assert "evaluate@ideal-0" in states and set(states.values()) == {"Completed"}
    assert not any("density_1" in s for s in states)
    report = json.loads((folder / "data/report/details.json").read_text())
    assert report["missing_runs"] == []
    artifact = Artifact.get("metrics-density-1")
    assert artifact is not None and "i2t_strict" in str(artifact.data)


def test_bad_input(harness, in_folder):
    from bindlab.params import ParamsError
    from flows.study import study
    os.chdir(in_folder)
    with pytest.raises(ParamsError, match="no dvc.yaml"):
        study()
    r = pipeline_raw()
    r["render"]["image_size"] = 32
    folder = project(in_folder / "study", r)
    os.chdir(folder)
    with pytest.raises(ParamsError, match="unknown variant 'nope'"):
        study(variants=["nope"])
    # a stage that fails (images of another size than the model's): its downstream does not run,
    # the flow fails naming it, and what finished is kept and committed
    with pytest.raises(RuntimeError, match="train@ideal-0"):
        study(variants=["ideal"], runner="threads", workers=1)
    assert (folder / "data/validation/ideal/passed.json").exists()
    assert not (folder / "data/metrics/ideal/seed0/eval.json").exists()
    left = set(json.loads(dvc(folder, "status", "--json").stdout or "{}"))
    assert "validate@ideal" not in left and {"train@ideal-0", "evaluate@ideal-0"} <= left


def test_run_while_dvc_holds_its_lock(harness, in_folder):
    """A run started while another DVC process (a terminal `dvc repro`) holds DVC's repository lock
    fails at once with one clear line, and writes nothing. The lock is taken with DVC's own Lock
    class on its own lock file, as `dvc repro` takes it."""
    from bindlab.errors import StageError
    from dvc.lock import make_lock
    from flows.study import study
    folder = project(in_folder / "study", pipeline_raw(variants=("ideal",)))
    os.chdir(folder)
    (folder / ".dvc/tmp").mkdir(exist_ok=True)
    lock = make_lock(str(folder / ".dvc/tmp/lock"), tmp_dir=str(folder / ".dvc/tmp"))
    lock.lock()
    try:
        with pytest.raises(StageError, match=r"DVC's repository lock \(.dvc/tmp/lock\) is held by another DVC "
                                             r"process .*nothing was run"):
            study(runner="threads", workers=1, only_stale=False)
    finally:
        lock.unlock()
    assert not (folder / "data").exists()


def test_experiment_bad_knob_fails_at_once(harness, in_folder):
    """A what-if with a value the params schema refuses fails with the schema's one line, before
    anything is written (params.yaml unchanged, no data/, no DVC experiment)."""
    from bindlab.params import ParamsError
    from flows.experiment import experiment
    folder = project(in_folder / "study", pipeline_raw(variants=("ideal",)))
    os.chdir(folder)
    before = (folder / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=r"^params: variants.whatif_ideal_\w+.density: .*exceeds the 6 attribute types"):
        experiment(density=7.5)
    with pytest.raises(ParamsError, match=r"^params: variants.x.completeness: Input should be less than or equal to 1"):
        experiment(name="x", completeness=1.5)
    with pytest.raises(ParamsError, match=r"^base: unknown variant 'nope'"):
        experiment(base="nope")
    with pytest.raises(ParamsError, match=r"^seeds: \[5\] must be a non-empty subset of study.seeds \[0\]"):
        experiment(seeds=[5])
    assert (folder / "params.yaml").read_text() == before and not (folder / "data").exists()
    assert dvc(folder, "exp", "list", "--name-only").stdout.strip() == ""


def smoke_profile_run(tmp: Path) -> dict:
    """A tiny project with a `smoke` profile (run_variants ideal and density_1), its params.yaml, and
    `python -m tasks.experiment --experiment smoke` run on it. A background job (tests/background.py):
    the experiment is a subprocess, so it runs beside the tests before this one. DVC's Python API (the
    targets) is left to the test, on the pytest process's main thread."""
    import subprocess
    import sys
    r = pipeline_raw(variants=("ideal", "one_object", "density_1"))
    r["profiles"]["smoke"] = {"run_variants": ["ideal", "density_1"]}
    folder = project(tmp / "study", r)
    before = (folder / "params.yaml").read_bytes()
    run = subprocess.run([sys.executable, "-m", "tasks.experiment", "--experiment", "smoke"], cwd=folder,
                         env=env(), capture_output=True, text=True)
    return {"raw": r, "folder": folder, "before": before, "run": run}


JOBS.register("smoke_profile", smoke_profile_run)


@pytest.fixture
def smoke_profile(background_jobs):
    """`smoke_profile_run`'s outcome, waited for inside the test."""
    return lambda: background_jobs.result("smoke_profile")


def test_a_profiles_run_variants_are_the_targets_of_its_experiment(smoke_profile):
    """`make study PROFILE=P` (tasks.experiment --experiment P) gives `dvc exp run` the stages of P's
    run_variants (every seed) and the shared stages that need nothing else (their scene set, the
    benchmark, and the validation of both) as targets: DVC runs those, no stage of another variant;
    the report then covers exactly them, and params.yaml is put back, so a plain `make study` is the
    default study. Without run_variants there are no targets (every stage); a bad name is one line, exit 2."""
    from bindlab.params import ParamsError
    from tasks.experiment import dvc_targets
    done = smoke_profile()
    r, folder, before, run = done["raw"], done["folder"], done["before"], done["run"]
    targets = dvc_targets(folder, "smoke")   # params.yaml is as before the run (asserted below)
    # the seed's chance level is shared by every variant of the seed, upstream of their evaluations
    shared = ("sample@train", "render@train", "validate_scenes@train", "benchmark", "validate_benchmark",
              "chance@0")
    assert targets == [n for n in dvc(folder, "stage", "list", "--name-only").stdout.split()
                       if n.split("@")[-1] in ("ideal", "ideal-0", "density_1", "density_1-0") or n in shared]
    assert {"captions@ideal", "train@density_1-0", "evaluate@ideal-0", "curve@ideal-0", "audit@density_1"} <= set(targets)
    assert dvc_targets(folder, "default") == []
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Running stage 'train@density_1-0'" in run.stdout and "Running stage 'validate_benchmark'" in run.stdout
    assert "one_object" not in run.stdout and "'report'" not in run.stdout
    assert (folder / "params.yaml").read_bytes() == before and "put back as it was" in run.stdout
    details = json.loads((folder / "data/report/details.json").read_text())
    assert details["missing_runs"] == [] and details["profile"] == "smoke"
    assert sorted(p["variant"] for p in details["findings"][0]["lines"][0]) == ["density_1", "ideal"]
    assert "smoke" in dvc(folder, "exp", "show", "--no-pager", "--csv").stdout
    with pytest.raises(ParamsError, match="run_variants: 'nope' is not a variant"):
        write_params(folder, dict(r, profiles={"smoke": {"run_variants": ["nope"]}}))
        dvc_targets(folder, "smoke")
    bad = subprocess.run([sys.executable, "-m", "tasks.experiment", "--targets", "nope"], cwd=folder,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "profile: 'nope'" in bad.stderr
