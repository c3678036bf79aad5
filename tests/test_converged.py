"""experiments/converged.py: the params files of the converged profile's runs and the order and scheduling
of its runs, without training (the whole runner, `--small`, takes about 7 minutes on 2 cores; the GPU run's reports go to results/converged/)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from bindlab.params import ParamsError, load_params
from experiments.converged import PROFILE, SEEDED, SEEDS, STOPPED, plan, portable, run_all, write_params

ROOT = Path(__file__).resolve().parent.parent


def test_converged_profile_trains_findings_1_4_7_to_the_level_off(tmp_path):
    p = load_params(write_params(ROOT / "params.yaml", tmp_path / "p.yaml", small=False))
    assert p.profile == PROFILE and p.study.seeds == list(SEEDS)
    # finding 7 is judged at the ideal run's level-off, its weights scored at every snapshot
    assert p.study.level_off and p.train.checkpoint_every == 1000
    runs = set(p.run_variants)
    assert {f"density_{k}" for k in range(6)} | {p.study.ideal} <= runs      # finding 1's sweep
    assert {"completeness_50", "saliency_100"} <= runs and set(SEEDED) <= runs  # finding 4 and its seeds
    assert all(p.variant(v).steps == 5000 and p.variant(v).batch_size == 128 for v in runs)
    # the data is the default study's: the profile changes no scene set, caption or benchmark knob
    default = load_params(ROOT / "params.yaml")
    assert p.scene_sets == default.scene_sets and p.benchmark == default.benchmark
    assert all(p.variant(v).model_copy(update={"steps": 0}) == default.variant(v).model_copy(update={"steps": 0})
               for v in runs)


def test_own_format_benchmark_names_k_types(tmp_path):
    p = load_params(write_params(ROOT / "params.yaml", tmp_path / "p.yaml", small=True, benchmark_density=3))
    assert p.benchmark.density == 3 and p.variant("ideal").steps == 40
    with pytest.raises(ParamsError, match="benchmark.density"):   # density 0 has no own-format benchmark
        load_params(write_params(ROOT / "params.yaml", tmp_path / "q.yaml", small=True, benchmark_density=0))


def test_runs_go_jobs_at_a_time_and_only_finished_ones_are_marked(tmp_path):
    """The CPU path's scheduler on real processes: at most `jobs` runs at once, each run's commands in
    order; a failed training ends its run, a training stopped at the deadline is still scored, and only
    a run whose every command succeeded is marked finished (a resumed run skips it)."""
    trace = tmp_path / "trace"

    def cmd(name: str, code: str = "pass", seconds: float = 0.3) -> list[str]:
        body = (f"import time,sys; f=open({str(trace)!r},'a'); f.write('+{name}\\n'); f.flush(); "
                f"time.sleep({seconds}); f.write('-{name}\\n'); f.flush(); {code}")
        return [sys.executable, "-c", body]

    def steps(run: str, train: list[str]) -> list:
        return [("train", train, tmp_path / f"{run}_train.log"),
                ("eval", cmd(f"{run}_eval"), tmp_path / f"{run}_eval.log")]

    pipelines = {"a/seed0": steps("a", cmd("a_train")),
                 "b/seed0": steps("b", cmd("b_train", "sys.exit(3)")),
                 "c/seed0": steps("c", cmd("c_train", seconds=60)),
                 "d/seed0": steps("d", cmd("d_train", seconds=60)),
                 "e/seed0": steps("e", cmd("e_train"))}   # c and d hold both slots past the deadline
    done = tmp_path / "done"
    done.mkdir()
    now = time.time()
    status = run_all(pipelines, 2, now + 12, now + 60, tmp_path)

    events = trace.read_text().split()
    running, most = set(), 0   # runs between their first start and last end (c and d are killed in training)
    for e in events:
        run = e[1:].split("_")[0]
        if e[0] == "+":
            running.add(run)
        elif e[1:].endswith("eval") or e[1:] == "b_train":
            running.discard(run)
        most = max(most, len(running))
    assert most == 2
    assert events.index("+a_eval") > events.index("-a_train")       # in order within a run
    assert "+b_eval" not in events and status["train b/seed0"] == 3   # a failed training ends its run
    assert status["train c/seed0"] == STOPPED and "-c_eval" in events  # stopped at the deadline, then scored
    assert status["run e/seed0"] == "not started" and "+e_train" not in events
    assert [p.name for p in done.iterdir()] == ["a_seed0"]


def test_the_runs_that_decide_verdicts_come_first(tmp_path):
    p = load_params(write_params(ROOT / "params.yaml", tmp_path / "p.yaml", small=False))
    runs, densities = plan(p)
    assert runs[:3] == [(v, 0) for v in SEEDED]                                       # findings 4 and 7
    assert [v for v, _ in runs[3:6]] == ["density_5", "density_4", "density_3"]      # finding 1's top
    assert runs[6:10] == [("completeness_50", 1), ("completeness_50", 2), ("saliency_100", 1), ("saliency_100", 2)]
    assert runs[-2:] == [("ideal", 1), ("ideal", 2)] and len(runs) == len(set(runs)) == 16
    assert set(runs[10:14]) == {("density_2", 0), ("density_1", 0), ("density_0", 0), ("saliency_50", 0)}
    assert densities == {f"density_{k}": k for k in range(1, 6)}


def test_the_recorded_command_names_no_folder_of_the_machine_it_ran_on():
    ran = "/somewhere/experiments/converged.py --work /tmp/w --out /srv/out --jobs 2 --resume --params /a/params.yaml"
    assert portable(ran) == ("python -m experiments.converged --work W --out OUT --jobs 2 --resume "
                             "--params params.yaml")
