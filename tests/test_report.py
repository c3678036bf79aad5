"""The findings report over hand-written metrics files (the metrics contract), in a temporary folder."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bindlab import timing
from bindlab.paths import DataPaths
from conftest import tiny_params_dict, write_params

# The binding level (i2t_strict) each variant of params.yaml gets in these tests: density and
# completeness help, saliency bias hurts, batch size and hard negatives leave degraded data degraded.
LEVEL = {"ideal": 0.93, "density_0": 0.25, "density_1": 0.40, "density_2": 0.70, "objects_2": 0.95,
         "objects_3": 0.85, "objects_4": 0.60, "one_object": 0.35, "completeness_50": 0.55,
         "saliency_50": 0.30, "saliency_100": 0.20, "batch_64": 0.92, "batch_512": 0.94,
         "density_1_batch_64": 0.38, "density_1_batch_512": 0.43, "density_1_hardneg": 0.45, "natural": 0.22}


def eval_json(variant: str, seed: int, level: float) -> dict:
    m = {k: level for k in ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe",
                            "r1_i2t", "r5_i2t", "r1_t2i", "r5_t2i")}
    return {"variant": variant, "seed": seed, "steps": 400, "batch_size": 256,
            **m, "chance": {"i2t_strict": 0.2, "i2t_pairwise": 0.5},
            "by_swap": {"color": m}, "by_n_objects": {"2": m}, "seen": m, "unseen": m,
            "probe_by_k": {"1": level}}


def write_metrics(data: Path, seeds=(0,), levels=LEVEL, jitter=0.01, skip=()) -> None:
    for v, level in levels.items():
        for i, s in enumerate(seeds):
            if (v, s) in skip:
                continue
            f = data / "metrics" / v / f"seed{s}" / "eval.json"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(eval_json(v, s, level + jitter * i)))
            timing.update(DataPaths(data).timing(f.parent), "train", {"seconds": 60.0})


def setup(tmp_path: Path, seeds=(0,), **kw):
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    raw = tiny_params_dict()
    raw["study"]["seeds"] = list(seeds)
    params_file = write_params(tmp_path, raw)
    write_metrics(tmp_path / "data", seeds=seeds, **kw)
    return load_params(params_file), DataPaths(tmp_path / "data"), params_file


def by_number(findings: dict) -> dict[int, dict]:
    return {f["number"]: f for f in findings["findings"]}


def test_every_finding_reproduced_from_numbers(tmp_path):
    from bindlab.report import report_stage
    params, paths, _ = setup(tmp_path, seeds=(0, 1))
    report_stage(params, paths)
    details = json.loads((paths.report / "details.json").read_text())
    f = by_number(details)
    assert [f[i]["verdict"] for i in range(1, 8)] == ["reproduced"] * 7
    # density: ideal (3) 0.93 vs density_0 0.25 (+0.01 for seed 1): effect 0.68
    assert f[1]["effect"] == pytest.approx(0.68, abs=1e-9)
    assert [p["variant"] for p in f[1]["lines"][0]] == ["density_0", "density_1", "density_2", "ideal"]
    # objects: ideal (2.99 objects) joins objects_2..4; range 0.95 - 0.60
    assert [p["x"] for p in f[2]["lines"][0]] == [2.0, 2.99, 3.0, 4.0]
    assert f[2]["effect"] == pytest.approx(0.35, abs=1e-9)
    # saliency line: one_object (bias 0) -> saliency_100
    assert [p["variant"] for p in f[4]["lines"][0]] == ["one_object", "saliency_50", "saliency_100"]
    assert f[4]["effect"] == pytest.approx(0.15, abs=1e-9)
    # batch: a line on ideal data and one on degraded (density 1) data
    assert sorted(len(line) for line in f[5]["lines"]) == [3, 3]
    assert f[6]["lines"][0][-1]["variant"] == "density_1_hardneg"
    assert f[7]["effect"] == pytest.approx(0.93 + 0.005 - 0.2, abs=1e-9)
    metrics = json.loads((paths.report / "findings.json").read_text())
    assert metrics["1_attribute_density"] == {"effect": f[1]["effect"], "verdict": "reproduced"}
    page = (paths.report / "index.html").read_text()
    assert page.count("<img src=\"data:image/png;base64,") == 7  # self-contained: plots embedded
    assert 'href="../audit/density_0/index.html"' in page
    assert "<script" not in page and "http" not in page
    summary = (paths.report / "summary.md").read_text()
    assert "| 5 | Batch size | **reproduced** |" in summary


def test_verdicts_follow_the_numbers(tmp_path):
    """Flat density, batch size that fixes degraded data, weak ideal data: the verdicts say so."""
    from bindlab.report import report_stage
    levels = dict(LEVEL, density_0=0.91, density_1=0.92, density_2=0.93, density_1_batch_512=0.95,
                  ideal=0.6, objects_2=0.6, objects_3=0.6, objects_4=0.6, batch_64=0.6, batch_512=0.6)
    params, paths, _ = setup(tmp_path, levels=levels)
    f = by_number(report_stage(params, paths))
    assert f[1]["verdict"] == "not reproduced"      # density makes no difference here
    assert f[2]["verdict"] == "not reproduced"      # object count makes no difference
    assert f[5]["verdict"] == "not reproduced"      # a larger batch reached reliable binding
    assert f[7]["verdict"] == "not reproduced"      # other variants beat the ideal data by > 0.05


def test_same_metrics_same_bytes_and_missing_runs(tmp_path):
    from bindlab.report import report_stage
    params, paths, _ = setup(tmp_path, skip={("natural", 0), ("saliency_50", 0)})
    first = report_stage(params, paths)
    page = (paths.report / "index.html").read_bytes()
    report_stage(params, paths)
    assert (paths.report / "index.html").read_bytes() == page
    assert first["missing_runs"] == ["saliency_50/seed0", "natural/seed0"]
    assert [p["variant"] for p in by_number(first)[4]["lines"][0]] == ["one_object", "saliency_100"]


def test_without_comparisons_inconclusive(tmp_path):
    from bindlab.report import report_stage
    params, paths, _ = setup(tmp_path, levels={"ideal": 0.5, "natural": 0.3})
    f = by_number(report_stage(params, paths))
    assert f[1]["verdict"] == "inconclusive" and "no two evaluated variants" in f[1]["why"]
    assert f[5]["verdict"] == "inconclusive"
    assert f[7]["verdict"] == "inconclusive"        # best, but not 'almost perfect'


def test_readme_section_replaced(tmp_path):
    from bindlab.report import report_stage
    params, paths, _ = setup(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Results\n<!-- results:start -->\nOLD RESULTS\n<!-- results:end -->\n\nafter\n")
    report_stage(params, paths, readme=readme)
    text = readme.read_text()
    assert "OLD RESULTS" not in text and text.endswith("after\n")
    assert re.search(r"<!-- results:start -->\nFindings of the last study.*\| 7 \| Ideal data \| \*\*reproduced",
                     text, re.S)
    # training minutes come from the runs' timing records: in the README, not in the hashed report files
    assert f"{len(params.variants) * 60 / 60:.1f} min of training in all" in text
    assert "min of training" not in (paths.report / "summary.md").read_text()
    assert "train_seconds" not in (paths.report / "details.json").read_text()


def test_cli_errors_are_one_line(tmp_path):
    """No metrics at all, or a broken eval.json: exit 2, one line naming the file, nothing written."""
    raw = tiny_params_dict()
    params_file = write_params(tmp_path, raw)
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "bindlab.cli", "report", "--params", str(params_file), "--data", str(data)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "no eval.json under" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = data / "metrics" / "ideal" / "seed0" / "eval.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and str(bad) in r.stderr
    assert not (data / "report").exists()
