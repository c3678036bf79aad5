"""Keeping DVC consistent with runs started from Prefect.

The flows run the stage functions directly (in parallel across variants, which `dvc repro` cannot
do: it holds the repository lock for the whole run) and then record what they ran with
`dvc commit -f STAGE...`: DVC hashes the stages' deps, params and outs into dvc.lock and the cache,
exactly as `dvc repro` would have, so `dvc status` afterwards reports those stages up to date.
Before running, the flow asks `dvc status` which stages are stale and skips the rest.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bindlab.errors import StageError


def _env() -> dict:
    return os.environ | {"DVC_NO_ANALYTICS": "1"}


def project_root(params_file: str, data: str) -> Path | None:
    """The DVC project the run belongs to: the current folder when it holds dvc.yaml and the run
    uses its params.yaml and data/ (a run on another params file or data root is not DVC's)."""
    root = Path.cwd()
    if not (root / "dvc.yaml").exists():
        return None
    if Path(params_file).resolve() != root / "params.yaml" or Path(data).resolve() != root / "data":
        return None
    return root


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=_env(),
                          capture_output=True, text=True)


def stale_stages(root: Path) -> set[str]:
    """Names of the stages `dvc status` reports as changed (missing outputs included)."""
    r = dvc(root, "status", "--json")
    if r.returncode != 0:
        raise StageError(f"dvc status failed in {root}: {r.stderr.strip().splitlines()[-1:]}")
    return set(json.loads(r.stdout or "{}"))


def commit(root: Path, stages: list[str]) -> None:
    """Record the stages' current deps/params/outs in dvc.lock and the cache."""
    if not stages:
        return
    r = dvc(root, "commit", "--force", "--quiet", *stages)
    if r.returncode != 0:
        raise StageError(f"dvc commit of {len(stages)} stages failed in {root}: {r.stderr.strip()}")
