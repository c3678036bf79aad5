"""The speed benchmarks (benchmarks/) run end to end on a tiny study and print their figures."""
from __future__ import annotations

import hashlib
import re

import pytest
import torch
from benchmarks import binding, captions, evaluate, kernels, render, train, validate
from bindlab.evaluate import evaluate_stage
from bindlab.train import train_stage
from tiny import copy_study, tiny_raw, write_params


@pytest.fixture(scope="module")
def trained(tiny_study, tmp_path_factory):
    """A copy of the session's tiny study (ideal trained) with one_object trained too, both evaluated."""
    folder = tmp_path_factory.mktemp("benchmarks")
    params, paths, _ = copy_study(tiny_study, folder)
    train_stage(params, paths, "one_object", progress=False, require_validation=False)
    for v in ("ideal", "one_object"):
        evaluate_stage(params, paths, v, plots=False)
    return folder, params, paths


def test_data_benchmarks_print_their_figures(tiny_params_file, capsys):
    pf = str(tiny_params_file)
    assert render.main(["--params", pf, "-n", "200"]) == 0
    assert captions.main(["--params", pf, "-n", "300"]) == 0
    assert validate.main(["--params", pf, "-n", "300"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"render \+ write \.npy +1 worker +[\d,]+ images/s +2 workers +[\d,]+ images/s "
                     r"+speed-up \d+\.\d\dx", out)
    assert "identical bytes for 1 and 2 workers: True" in out
    assert re.search(r"ideal +[\d,]+ captions/s", out) and "+2 hard negatives" in out
    assert re.search(r"import great_expectations +\d+\.\d\d s", out)
    assert re.search(r"GX validation \+ Data Docs +\d+\.\d\d s +\(\d+ expectations, all passed\)", out)
    assert re.search(r"total +\d+\.\d\d s", out)


def test_training_benchmarks_print_their_figures(trained, capsys):
    folder, params, paths = trained
    pf, data = str(folder / "params.yaml"), str(paths.root)
    assert train.main(["--params", pf, "--data", data, "-n", "1", "--quick"]) == 0
    assert evaluate.main(["--params", pf, "--data", data]) == 0
    assert binding.main(["--params", pf, "--data", data]) == 0
    out = capsys.readouterr().out
    assert "reference: plain fp32 eager step" in out and "project (tiny as in params.yaml)" in out
    assert "data wait" in out
    assert re.search(r"project \(tiny.*\d+\.\d+ +\d+\.\d\dx", out)
    assert "image tower" in out and "full benchmark" in out
    assert re.search(r"\(reference\), \d+\.\d s with each distinct text once, padding cut \(project's\): "
                     r"\d+\.\d\dx", out)
    assert out.count("(target >= 0.93)") >= 1 and out.count("(target <= 0.35)") >= 1
    assert "on the object counts it was trained on (2, 3)" in out
    assert "     3 " in out and "     6 " in out   # the curve over the snapshots of steps 3 and 6


def test_a_missing_run_ends_the_binding_benchmark_with_one_line(tmp_path, capsys):
    pf = write_params(tmp_path, tiny_raw())
    assert binding.main(["--params", str(pf), "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m benchmarks.binding: error:") and "missing" in err[0]


def test_missing_data_ends_the_training_benchmark_with_one_line(tmp_path, capfd):
    pf = write_params(tmp_path, tiny_raw())
    assert train.main(["--params", str(pf), "--data", str(tmp_path / "data"), "--quick"]) == 2
    err = capfd.readouterr().err.strip().splitlines()   # the candidates' processes print nothing
    assert len(err) == 1 and err[0].startswith("python -m benchmarks.train: error:") and "missing" in err[0]


def test_the_kernel_fingerprint_is_the_training_of_the_study(trained, capsys):
    """The pinned row's md5 is that of the weights `bindlab train` wrote for the same steps, so comparing
    the row across machines compares the study's training bytes."""
    folder, params, paths = trained
    steps = params.variant("ideal").steps
    assert kernels.main(["--params", str(folder / "params.yaml"), "--data", str(paths.root), "-n", str(steps)]) == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^  (\S.*?) +[A-Z0-9]+ +([0-9a-f]{32}) +\d+ +\d\.\d\dx$", out, re.M))
    assert set(rows) == set(kernels.CONFIGS), out
    h = hashlib.md5()
    for name, t in torch.load(paths.model("ideal", params.seed) / "last.pt", weights_only=False)["model"].items():
        h.update(name.encode())
        h.update(t.contiguous().numpy().tobytes())
    assert rows["pinned (the study's)"] == h.hexdigest()
