"""The measured chance level (`bindlab chance`): measured once per seed into data/chance/seedS.json,
and a run's eval.json is the same bytes whether evaluate copies it from there or measures it itself."""
from __future__ import annotations

import json

import pytest

from bindlab import evaluate
from bindlab.chance import chance_stage
from bindlab.cli import main
from bindlab.evaluate import evaluate_stage
from tiny import copy_study


def _not_measured(*args, **kwargs):
    raise AssertionError("evaluate measured the chance level where the chance file applies")


def test_eval_json_is_the_same_bytes_from_the_chance_file(tiny_study, tmp_path, monkeypatch, capsys):
    params, paths, params_file = copy_study(tiny_study, tmp_path / "study")
    out = paths.metrics("ideal", 0)
    inline = evaluate_stage(params, paths, "ideal", plots=False)   # no chance file yet: measured here
    measured_here = (out / "eval.json").read_bytes()

    assert main(["chance", "--seed", "0", "--params", str(params_file), "--data", str(paths.root)]) == 0
    assert "chance seed 0 (untrained model)" in capsys.readouterr().out
    stored = json.loads(paths.chance(0).read_text())
    assert set(stored) == {"seed", "model_spec_sha256", "eval_batch", "benchmark_md5", "chance_measured"}
    assert stored["chance_measured"] == inline["chance_measured"] and stored["seed"] == 0
    assert stored["eval_batch"] == params.train.eval_batch and "images.npy" in stored["benchmark_md5"]
    assert chance_stage(params, paths, 0) == stored   # deterministic

    # the file applies: copied, not measured, and eval.json keeps its bytes
    with monkeypatch.context() as m:
        m.setattr(evaluate, "untrained_chance", _not_measured)
        evaluate_stage(params, paths, "ideal", plots=False)
    assert (out / "eval.json").read_bytes() == measured_here

    # made for another model spec: evaluate measures it itself, to the same bytes
    paths.chance(0).write_text(json.dumps(stored | {"model_spec_sha256": "0" * 64}))
    evaluate_stage(params, paths, "ideal", plots=False)
    assert "made for another model spec" in capsys.readouterr().out
    assert (out / "eval.json").read_bytes() == measured_here

    # another checkpoint than the run's last (an external one) never reads it, even when broken
    paths.chance(0).write_text("{")
    snap = paths.model("ideal", 0) / "weights_step000003.pt"
    r = evaluate_stage(params, paths, checkpoint=snap, out=tmp_path / "external", plots=False)
    assert r["chance_measured"]["seed"] == 0


@pytest.mark.parametrize("damage", ["junk", "other_seed", "no_numbers"])
def test_a_bad_chance_file_is_one_line_and_exit_2(tiny_study, tmp_path, capsys, damage):
    params, paths, params_file = copy_study(tiny_study, tmp_path / "study")
    chance_stage(params, paths, 0)
    f = paths.chance(0)
    stored = json.loads(f.read_text())
    bad = {"junk": "not json",
           "other_seed": json.dumps(stored | {"seed": 1}),
           "no_numbers": json.dumps(stored | {"chance_measured": {"seed": 0}})}[damage]
    f.write_text(bad)
    before = {p: p.read_bytes() for p in paths.root.rglob("*") if p.is_file()}
    capsys.readouterr()
    code = main(["evaluate", "--variant", "ideal", "--params", str(params_file), "--data", str(paths.root)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(f) in err and "`bindlab chance --seed 0`" in err
    assert {p: p.read_bytes() for p in paths.root.rglob("*") if p.is_file()} == before   # nothing written
