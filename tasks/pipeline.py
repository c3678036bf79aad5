"""DVC's pipeline as data, without Prefect: what the flows (flows/) and the experiment runner
(tasks/experiment.py) both need.

`pipeline(root)` reads the expanded stages of dvc.yaml through DVC's Python API (name, cmd, deps, outs)
and the edges between them (a stage depends on another when one of its deps is, is inside, or holds
one of the other's outs). `select` picks the stages a run of some variants needs, from dvc.yaml's
stage keys (`audit@V`, `train@V-S`). `dvc(root, ...)` runs the DVC command line with the stages'
environment (`stage_env`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


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


def stage_env() -> dict:
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
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=stage_env(),
                          capture_output=True, text=True)


def variant_of(s: Stage, variants: set[str]) -> str | None:
    """The variant a stage belongs to (`audit@V`, `train@V-S`), None for shared and plain stages."""
    if s.key in variants:
        return s.key
    v, _, seed = (s.key or "").rpartition("-")
    return v if v in variants and seed.isdigit() else None


def of_run(s: Stage, variants: set[str], chosen: set[str], seeds: set[int]) -> bool:
    """The stage belongs to one of the `chosen` variants and, when it is per seed, to one of `seeds`."""
    v = variant_of(s, variants)
    return v in chosen and (s.key == v or int(s.key.rpartition("-")[2]) in seeds)


def select(stages: dict[str, Stage], variants: set[str], chosen: set[str],
           seeds: set[int]) -> list[str]:
    """The stages a run of the `chosen` variants needs, in DVC's order: the stages of those variants
    (and seeds), what they depend on, the stages sharing a key with those (e.g. `validate_scenes@SET`
    beside `render@SET`), and every plain stage (the benchmark, the cross-variant pages, the report).
    Stages of other variants are left out."""
    picked = {n for n, s in stages.items() if of_run(s, variants, chosen, seeds)}
    todo = list(picked)
    while todo:
        for up in stages[todo.pop()].upstream:
            if up not in picked and variant_of(stages[up], variants) is None:
                picked.add(up)
                todo.append(up)
    keys = {stages[n].key for n in picked}
    return [n for n, s in stages.items()
            if n in picked or (variant_of(s, variants) is None and (s.key is None or s.key in keys))]
