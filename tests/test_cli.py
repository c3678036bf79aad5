"""CLI smoke: each data subcommand on a tiny params file in a temporary folder, then re-run for bytes."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from bindlab.cli import build_parser, main


def _digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_data_stages_run_and_are_deterministic(tiny_params_file, tmp_path):
    data = tmp_path / "data"
    common = ["--params", str(tiny_params_file), "--data", str(data)]
    for run in (1, 2):
        assert main(["sample", "--scenes", "train", *common]) == 0
        assert main(["render", "--scenes", "train", "--workers", str(run), *common]) == 0
        assert main(["captions", "--variant", "natural", *common]) == 0
        assert main(["benchmark", *common]) == 0
        digests = _digest(data)
        if run == 1:
            first = digests
    assert first == digests  # same params -> same bytes, whatever the worker count
    for f in ["scenes/train.parquet", "images/train.npy", "images/train_contact.png",
              "captions/natural/captions.parquet", "benchmark/items.parquet", "benchmark/counterfactual.npy"]:
        assert f in digests


def test_missing_upstream_output_is_a_clear_error(tiny_params_file, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["captions", "--variant", "natural", "--params", str(tiny_params_file), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "scenes/train.parquet is missing" in err and "bindlab sample" in err
    assert not (data / "captions").exists()


def test_unknown_variant_and_scene_set(tiny_params_file, tmp_path, capsys):
    common = ["--params", str(tiny_params_file), "--data", str(tmp_path / "data")]
    assert main(["captions", "--variant", "nope", *common]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err
    assert main(["sample", "--scenes", "nope", *common]) == 2
    assert "unknown scene set 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_every_subcommand_has_help(command):
    out = subprocess.run([sys.executable, "-m", "bindlab.cli", command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: bindlab" in out.stdout
