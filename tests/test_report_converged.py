"""The default report shows the converged profile's verdicts for findings 1, 4 and 7 (results/converged/,
written by `experiments.converged --report`), and says so when that profile has not been run."""
from __future__ import annotations

import json
import shutil

import pytest
from bindlab.errors import StageError
from bindlab.report import load_converged, report_stage
from test_report import LEVEL, by_number, setup


def converged_folder(tmp_path):
    """A converged folder made of two real reports: one where the density sweep peaks in between (the
    'own format' report) and one of the default levels (the 'full' report)."""
    _, paths_full, _ = setup(tmp_path / "full_study")
    params, paths_own, _ = setup(tmp_path / "own_study", peak=True)
    folder = tmp_path / "converged"
    for name, paths in (("full", paths_full), ("own_format", paths_own)):
        report_stage(params, paths, converged=tmp_path / "none")
        (folder / name).mkdir(parents=True)
        shutil.copy(paths.report / "details.json", folder / name / "details.json")
    (folder / "run.json").write_text(json.dumps({"steps": 5000, "runs": ["ideal/seed0", "density_1/seed0"],
                                                 "planned": ["ideal/seed0", "density_1/seed0", "ideal/seed1"]}))
    return folder, paths_full, paths_own


def test_the_level_off_verdicts_stand_beside_the_shared_budgets(tmp_path):
    folder, paths_full, paths_own = converged_folder(tmp_path)
    full = by_number(json.loads((paths_full.report / "details.json").read_text()))
    own = by_number(json.loads((paths_own.report / "details.json").read_text()))
    assert full[1]["verdict"] != own[1]["verdict"]     # the two formats' rows are told apart
    conv = load_converged(folder)
    assert [(f["number"], f["format"]) for f in conv["findings"]] == [(1, "full"), (4, "full"), (7, "full"),
                                                                     (1, "own format")]
    assert [f["verdict"] for f in conv["findings"]] == [full[1]["verdict"], full[4]["verdict"], full[7]["verdict"],
                                                        own[1]["verdict"]]
    params, paths, _ = setup(tmp_path / "default", levels=dict(LEVEL, ideal=0.90))
    report_stage(params, paths, converged=folder)
    summary = (paths.report / "summary.md").read_text()
    assert ("Findings 1, 4 and 7 are judged at their level-off (profile `converged`, 5000 steps, 2 runs, "
            "planned runs not yet done: 1;") in summary
    # both budgets side by side; the own format's verdict beside the full descriptions' where it differs
    shared = by_number(json.loads((paths.report / "details.json").read_text()))
    assert (f"| 1. Too few or too many attributes hurt binding | **{shared[1]['verdict']}** | "
            f"**{full[1]['verdict']} (own format: {own[1]['verdict']})** |") in summary
    assert f"| 7. Ideal data gives almost perfect binding | **{shared[7]['verdict']}** | **{full[7]['verdict']}** |" in summary
    assert "| 2. Objects per image change how well binding is learned | **reproduced** | — |" in summary
    page = (paths.report / "index.html").read_text()
    assert "<th>scored on</th>" in page and f"<td>{own[1]['verdict']}</td>" in page
    assert "not yet run: ideal/seed1" in page   # the run list: in the page, not the summary
    assert f"At the level-off (own format): {own[1]['verdict']}</b>" in page


def test_without_a_converged_run_the_report_says_so(tmp_path):
    params, paths, _ = setup(tmp_path)
    report_stage(params, paths, converged=tmp_path / "results" / "converged")
    summary = (paths.report / "summary.md").read_text()
    assert "the `converged` profile, which judges findings 1, 4 and 7 there, has not been run" in summary
    row = next(x for x in summary.splitlines() if x.startswith("| 7. Ideal data"))
    assert row.split(" | ")[2] == "**not run**" and "| 2. Objects per image change how well binding is learned | **reproduced** | — |" in summary


def test_an_unreadable_converged_report_is_named(tmp_path):
    folder, _, _ = converged_folder(tmp_path)
    (folder / "own_format" / "details.json").write_text("{not json")
    with pytest.raises(StageError, match=r"own_format/details.json: unreadable .*experiments.converged --report"):
        load_converged(folder)
