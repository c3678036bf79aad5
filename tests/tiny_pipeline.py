"""A tiny study for the pipeline tests (DVC, Prefect): two variants of one 300-scene set, a 60-scene
benchmark, a tiny model trained a few steps; every variant names its scene set as dvc.yaml needs."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from tiny_clip import tiny_raw

REPO = Path(__file__).resolve().parents[1]


def raw(variants=("ideal", "one_object"), steps: int = 4) -> dict:
    r = tiny_raw(steps=steps, batch=32)
    knobs = {"ideal": {}, "one_object": {"objects_mentioned": 1}, "density_1": {"density": 1}}
    r["variants"] = {v: {"scenes": "train", **knobs[v]} for v in variants}
    r["study"] = dict(r["study"], seeds=[0], min_effect=0.05)
    r["profile"], r["profiles"] = "default", {"default": {}}
    return r


def write(folder: Path, r: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    return path


def project(folder: Path, r: dict) -> Path:
    """A git + DVC project in `folder`: the repository's code, dvc.yaml and DVC config, tiny params."""
    for name in ("bindlab", "tasks", "flows"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml", "Makefile", "README.md"):
        shutil.copy(REPO / name, folder / name)
    shutil.copytree(REPO / ".dvc", folder / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "site"))
    write(folder, r)
    run(folder, "git", "init", "-q")
    run(folder, "git", "add", "-A")
    run(folder, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny study")
    return folder


def env() -> dict:
    import os
    bin_dir = str(Path(sys.executable).parent)
    return os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "DVC_NO_ANALYTICS": "1"}


def run(folder: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=folder, env=env(), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def dvc(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(folder, sys.executable, "-m", "dvc", *args, check=check)
