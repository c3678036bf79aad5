"""DVC as the one declaration of the pipeline, for Prefect flows (generic: nothing here knows the study).

`pipeline(root)` reads the expanded stages of dvc.yaml through DVC's Python API (name, cmd, deps, outs)
and the edges between them (a stage depends on another when one of its deps is, is inside, or holds
one of the other's outs). `run_stage` is the one Prefect task: it runs a stage's own `cmd` in the
project, as `dvc repro` would. The flow then records what finished with `dvc commit -f STAGE...`: DVC
hashes the stages' deps, params and outs into dvc.lock and the cache exactly as `dvc repro` would
have, so `dvc status` afterwards reports those stages up to date. (The flow does not call `dvc repro`
per stage: DVC holds its repository lock for a whole repro, which would serialise the fan-out.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task

from bindlab.errors import StageError


@dataclass(frozen=True)
class Stage:
    name: str                      # DVC's address, e.g. `train@ideal-0`
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    upstream: frozenset[str] = field(default_factory=frozenset)

    @property
    def group(self) -> str:
        """The stage's name in dvc.yaml before foreach/matrix expansion (`train`)."""
        return self.name.split("@", 1)[0]

    @property
    def key(self) -> str | None:
        """The foreach/matrix key (`ideal-0`), None for a plain stage."""
        return self.name.split("@", 1)[1] if "@" in self.name else None


def _env() -> dict:
    # stage commands run the executables beside this interpreter (the venv's bindlab, dvc, python)
    bin_dir = str(Path(sys.executable).parent)
    return os.environ | {"DVC_NO_ANALYTICS": "1", "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def pipeline(root: Path) -> dict[str, Stage]:
    """Every stage of the project's dvc.yaml, expanded (foreach/matrix), in DVC's order, with its upstream."""
    from dvc.repo import Repo
    with Repo(str(root)) as repo:
        raw = [(s.addressing, s.cmd, tuple(d.def_path for d in s.deps), tuple(o.def_path for o in s.outs))
               for s in repo.index.stages if getattr(s, "cmd", None)]
    producers = [(name, outs) for name, _, _, outs in raw]
    stages = {}
    for name, cmd, deps, outs in raw:
        up = {p for p, p_outs in producers if p != name
              for d in deps for o in p_outs if _overlaps(d, o)}
        stages[name] = Stage(name, cmd if isinstance(cmd, str) else " && ".join(cmd), deps, outs, frozenset(up))
    return stages


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


@task(task_run_name="{name}")
def run_stage(name: str, cmd: str, root: str, resume_on_retry: bool = False) -> str:
    """Run one DVC stage's own command in the project; fail with the end of its output.

    resume_on_retry: a retry drops `--fresh` from the command, so a stage that checkpoints (training)
    resumes from its last checkpoint instead of starting over."""
    from prefect.runtime import task_run
    if resume_on_retry and (task_run.run_count or 1) > 1:
        cmd = " ".join(w for w in cmd.split(" ") if w != "--fresh")
    r = subprocess.run(cmd, shell=True, cwd=root, env=_env(), capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stdout[-1500:] + r.stderr[-1500:]).strip()
        raise StageError(f"stage {name} failed ({r.returncode}): {cmd}\n{tail}")
    return name
