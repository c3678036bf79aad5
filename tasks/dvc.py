"""DVC stages as Prefect tasks, for the flows (generic: nothing here knows the study).

`run_stage` is the one Prefect task: it runs a stage's own `cmd` (from tasks/pipeline.py `pipeline`)
in the project, as `dvc repro` would. The flow then records what finished with `dvc commit -f
STAGE...`: DVC hashes the stages' deps, params and outs into dvc.lock and the cache exactly as `dvc
repro` would have, so `dvc status` afterwards reports those stages up to date. (The flow does not
call `dvc repro` per stage: DVC holds its repository lock for a whole repro, which would serialise
the fan-out.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from prefect import task

from bindlab.errors import StageError
from tasks.pipeline import dvc, stage_env


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


LOCKED = ("DVC's repository lock ({lock}) is held by another DVC process (a `dvc repro` or `dvc exp run` "
          "in a terminal?); nothing was run: wait for it to finish, then start this run again")


@contextmanager
def repo_lock(root: Path):
    """Hold DVC's own repository lock (the one `dvc repro` holds) while the flow's stages run, so a
    terminal `dvc repro` meanwhile fails at once with DVC's message, and a flow started while one runs
    fails at once (StageError) before anything is written. Not held around the flow's own `dvc status`
    and `dvc commit` calls, which take it themselves."""
    from dvc.lock import LockError, make_lock
    lockfile = root / ".dvc" / "tmp" / "lock"
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    lock = make_lock(str(lockfile), tmp_dir=str(lockfile.parent))
    try:
        lock.lock()   # DVC's own retries: about 3 s
    except LockError:
        raise StageError(LOCKED.format(lock=lockfile.relative_to(root))) from None
    try:
        yield
    finally:
        lock.unlock()


def check_unlocked(root: Path) -> None:
    """Fail at once (StageError, one line) when another DVC process holds the repository lock."""
    with repo_lock(root):
        pass


def _lines(stream):
    """Lines of a subprocess's output; a progress bar's carriage-return redraws count as lines too."""
    for raw in stream:
        for part in raw.replace("\r", "\n").split("\n"):
            if part.strip():
                yield part.rstrip()


@task(task_run_name="{name}")
def run_stage(name: str, cmd: str, root: str, resume_on_retry: bool = False) -> str:
    """Run one DVC stage's own command in the project; its output lines go to the task's run log as
    they come (training progress, data stages' counts); fail with the end of that output.

    resume_on_retry: a retry drops `--fresh` from the command, so a stage that checkpoints (training)
    resumes from its last checkpoint instead of starting over."""
    from prefect import get_run_logger
    from prefect.runtime import task_run
    log = get_run_logger()
    if resume_on_retry and (task_run.run_count or 1) > 1:
        cmd = " ".join(w for w in cmd.split(" ") if w != "--fresh")
    code, tail = _stream(cmd, root, log, shell=True)
    if code != 0:
        raise StageError(f"stage {name} failed ({code}): {cmd}\n{tail}")
    return name


def _stream(cmd, root, log, shell: bool = False) -> tuple[int, str]:
    """Run cmd in the project, each output line to `log` as it comes; -> (exit status, output tail)."""
    from collections import deque
    tail = deque(maxlen=30)
    proc = subprocess.Popen(cmd, shell=shell, cwd=root, env=stage_env() | {"PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in _lines(proc.stdout):
        tail.append(line)
        log.info(line)
    return proc.wait(), "\n".join(tail)[-3000:]


def exp_run(root: Path, name: str, overrides: dict, targets: list[str], log) -> None:
    """`dvc exp run -n NAME -S KEY=VALUE... TARGET...` in the workspace (DVC writes params.yaml, dvc.lock
    and the outputs there, and records the experiment for `dvc exp show`); its output goes to `log`."""
    args = [sys.executable, "-m", "dvc", "exp", "run", "-n", name]
    for key, value in overrides.items():
        args += ["-S", f"{key}={hydra(value)}"]
    code, tail = _stream(args + targets, root, log)
    if code != 0:
        raise StageError(f"dvc exp run {name} failed ({code}):\n{tail}")


def hydra(value) -> str:
    """A value in the override syntax of `dvc exp run -S` (Hydra): {k:v,...}, null, plain scalars."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra(v)}" for k, v in value.items()) + "}"
    return str(value)
