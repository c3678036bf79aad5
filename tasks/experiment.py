"""`make study PROFILE=P`: the study under a params profile, run as a DVC experiment (no Prefect).

`python -m tasks.experiment --experiment P` runs `dvc exp run -S profile=P` on P's targets, then the
report; `python -m tasks.experiment --targets P` prints those targets. Exit status 2 with one line
on bad input (an unknown profile, a DVC lock held by another process).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bindlab.errors import StageError
from bindlab.params import ParamsError, load_params
from tasks.pipeline import pipeline, select, stage_env


def dvc_targets(root: Path, profile: str) -> list[str]:
    """The stages `dvc exp run -S profile=PROFILE` is given as targets: those of the profile's
    run_variants (every seed) and every shared stage that needs nothing else (the scene sets they
    train on, the benchmark, the chance level of each seed, and their validation: DVC would skip
    `validate_*`, upstream of no variant stage); none (every stage) without run_variants. The report and the cross-variant pages
    are not targets: they depend on every variant's outputs."""
    params = load_params(root / "params.yaml", profile=profile)
    if not params.run_variants:
        return []
    stages = pipeline(root)
    chosen = select(stages, set(params.variants), set(params.run_variants), set(params.study.seeds))
    closed: set[str] = set()
    while grown := {n for n in chosen if n not in closed and stages[n].upstream <= closed}:
        closed |= grown
    # DVC addresses a stage as `path/dvc.yaml:name` from another folder: the targets are names in root
    return [n.rpartition(":")[2] for n in chosen if n in closed]


def run_experiment(root: Path, profile: str) -> int:
    """`make study PROFILE=P`: `dvc exp run -S profile=P` on P's targets, then its report (data/report;
    the README's results stay the default study's). params.yaml is put back as it was afterwards, so a
    following `make study` is the default study again; the run stays listed in `dvc exp show`."""
    targets = dvc_targets(root, profile)
    params_file = root / "params.yaml"
    before = params_file.read_bytes()
    try:
        for cmd in ([sys.executable, "-m", "dvc", "exp", "run", "-S", f"profile={profile}", *targets],
                    [sys.executable, "-m", "bindlab.cli", "report"]):
            rc = subprocess.run(cmd, cwd=root, env=stage_env()).returncode
            if rc:
                return rc
    finally:
        if params_file.read_bytes() != before:
            params_file.write_bytes(before)
            print(f"params.yaml: put back as it was before this run (profile={profile} was for this run only)")
    return 0


if __name__ == "__main__":
    # the Makefile: `make study PROFILE=P` runs `--experiment P`; `--targets P` prints P's DVC targets
    if sys.argv[1:2] not in (["--targets"], ["--experiment"]) or len(sys.argv) != 3:
        print("usage: python -m tasks.experiment --experiment PROFILE | --targets PROFILE", file=sys.stderr)
        sys.exit(2)
    try:
        if sys.argv[1] == "--targets":
            print(" ".join(dvc_targets(Path.cwd(), sys.argv[2])))
        else:
            sys.exit(run_experiment(Path.cwd(), sys.argv[2]))
    except (ParamsError, StageError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
