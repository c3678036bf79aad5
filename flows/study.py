"""The study as Prefect flows: `study` (all or selected variants, fanned out across a task runner) and
`variant` (one variant). The task graph is DVC's: one Prefect task per stage of dvc.yaml as DVC expands
it (named by the stage, e.g. `train@ideal-0`, from tasks/pipeline.py), running that stage's own `cmd`
(tasks/dvc.py), after the stages it depends on. A stage added to dvc.yaml is run with no edit here.
The profile runner of `make study PROFILE=P` is DVC alone, without Prefect: tasks/experiment.py.

DVC stays consistent: stages that `dvc status` reports up to date are skipped (unless something
upstream of them runs), and every stage that finished is recorded with `dvc commit` at the end, even
when another stage failed. Runs use the project's params.yaml and data/ (the flow runs in the project
folder, the current directory); for tests, make a tiny DVC project (tests/tiny.py, `project`).

Runs never collide: every run of these flows (and of the `experiment` flow) holds the project's one
Prefect run slot (a global concurrency limit of 1, `project_slot`) while it works, so a second run
waits, logging why; the deployments also have a concurrency limit of 1 with the ENQUEUE strategy
(flows/deployments.py), which the UI shows as "AwaitingConcurrencySlot". While stages run the flow
holds DVC's repository lock (tasks/dvc.py `repo_lock`), so a terminal `dvc repro` cannot write beside
it, and a run started while a terminal `dvc repro` holds it fails at once, before anything is written.

Task runners: `processes` (default), `threads`, or `dask` (prefect-dask: a LocalCluster with `workers`
processes, or an existing cluster at `dask_address`). Each task runs its stage as a subprocess.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from bindlab import timing
from bindlab.contracts import read_eval
from bindlab.metrics import HEADLINE
from bindlab.params import ParamsError, load_params
from bindlab.paths import DataPaths
from tasks import dvc as dvc_sync
from tasks.pipeline import Stage, pipeline, select

Runner = Literal["processes", "threads", "dask"]
# dvc.yaml stage -> retries (transient failures)
RETRY = {"render": 1, "benchmark": 1, "train": 1, "chance": 1, "evaluate": 1}


SLOT = "bindlab-project"   # the global concurrency limit every writing run holds (limit 1)


@contextmanager
def project_slot():
    """Hold the project's run slot (Prefect global concurrency limit SLOT, created with limit 1 when
    missing) for the body; a second run waits here, saying so in its log."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists
    log = get_run_logger()
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(SLOT, 1)
        except ObjectAlreadyExists:
            pass   # two runs starting at once both created it: one won, it exists
    log.info(f"waiting for the project's run slot ({SLOT}): one study, variant or experiment run writes at a time")
    with concurrency(SLOT, occupy=1, strict=True):
        log.info("holding the project's run slot")
        try:
            yield
        finally:
            log.info("released the project's run slot")


def files_url(path: Path, root: Path) -> str:
    """A link to `path` (under the project's data/): http on the files server beside the UI
    (BINDLAB_FILES_URL, set by flows/serve.py: browsers do not open file:// links from an http page),
    else a file:// URI."""
    base = os.environ.get("BINDLAB_FILES_URL")
    if base:
        return base.rstrip("/") + "/" + path.resolve().relative_to((root / "data").resolve()).as_posix()
    return path.resolve().as_uri()


def make_runner(runner: Runner, workers: int, dask_address: str | None = None):
    if runner == "dask" or dask_address:
        from prefect_dask import DaskTaskRunner
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    if runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect.task_runners import ProcessPoolTaskRunner
    return ProcessPoolTaskRunner(max_workers=workers)


@flow(name="study-fanout")
def _fanout(root: str, stages: dict[str, Stage], names: list[str], stale: list[str] | None) -> dict[str, str]:
    """Submit each stage that is stale or has an upstream stage submitted; -> {stage: final state name}."""
    futures = {}
    for name in names:
        s = stages[name]
        upstream = [futures[u] for u in s.upstream if u in futures]
        if stale is not None and name not in stale and not upstream:
            continue
        retries = RETRY.get(s.group, 0)
        task = dvc_sync.run_stage.with_options(retries=retries) if retries else dvc_sync.run_stage
        futures[name] = task.submit(name, s.cmd, root, resume_on_retry=retries > 0, wait_for=upstream)
    states = {}
    for name, future in futures.items():
        future.wait()
        states[name] = future.state.name
    return states


def _artifacts(root: Path, variants: list[str], seeds: list[int], metric: str) -> None:
    """A metrics table per variant, and links to the report and audit pages."""
    paths = DataPaths(root / "data")
    keys = (*HEADLINE, "r5_i2t")
    for v in variants:
        rows = []
        for seed in seeds:
            f = paths.metrics(v, seed) / "eval.json"
            if f.exists():
                r = read_eval(f, v, seed, metric)
                rows.append({"seed": seed, **{k: r.get(k) for k in keys},
                             "train_seconds": timing.train_seconds(paths.timing(f.parent))})
        if rows:
            create_table_artifact(key=f"metrics-{v.replace('_', '-')}", table=rows,
                                  description=f"binding metrics of {v} (study.metric {metric})")
    report = paths.report / "index.html"
    lines = ["# bindlab study", ""]
    if report.exists():
        # summary.md links into the page beside it (index.html#...): in the artifact, through the files server
        summary = (paths.report / "summary.md").read_text().replace("](index.html", f"]({files_url(report, root)}")
        lines += [f"[findings report]({files_url(report, root)})", "", summary, ""]
    overview = paths.root / "audit" / "index.html"
    if overview.exists():
        lines.append(f"[audit overview]({files_url(overview, root)})")
    for v in variants:
        page = paths.audit(v) / "index.html"
        if page.exists():
            lines.append(f"- [{v} audit]({files_url(page, root)})")
    create_markdown_artifact(key="study-report", markdown="\n".join(lines), description="report and audit pages")


@flow(name="study", log_prints=True)
def study(variants: list[str] | None = None, seeds: list[int] | None = None,
          runner: Runner = "processes", workers: int = 2, dask_address: str | None = None,
          only_stale: bool = True, dvc_commit: bool = True) -> dict[str, str]:
    """Run the study's DVC stages (all variants, or the ones named) in the project folder.

    variants: names from params.yaml (empty: all). seeds: a subset of study.seeds (default: all).
    runner/workers: how stages fan out (processes, threads, or dask; dask_address = an existing Dask
    scheduler). only_stale: skip stages DVC reports up to date. dvc_commit: record the stages that
    finished in dvc.lock."""
    with project_slot():
        return run_study(variants, seeds, runner, workers, dask_address, only_stale, dvc_commit)


def run_study(variants: list[str] | None, seeds: list[int] | None, runner: Runner, workers: int,
              dask_address: str | None, only_stale: bool, dvc_commit: bool) -> dict[str, str]:
    """The body of `study` (and `variant`), run while holding the project's slot."""
    log = get_run_logger()
    root = Path.cwd()
    if not (root / "dvc.yaml").exists():
        raise ParamsError(f"{root}: no dvc.yaml; run the flow in the project folder")
    params = load_params(root / "params.yaml")
    subset = variants or params.run_variants   # a profile's run_variants (e.g. quick) when none are named
    chosen = list(subset or params.variants)
    for v in chosen:
        params.variant(v)  # an unknown name fails here, before anything runs
    seeds = list(seeds if seeds is not None else params.study.seeds)
    if not set(seeds) <= set(params.study.seeds):
        raise ParamsError(f"seeds {seeds}: dvc.yaml runs study.seeds {params.study.seeds}; set study.seeds "
                          f"in params.yaml (the DVC stages of other seeds do not exist)")
    dvc_sync.check_unlocked(root)   # a terminal `dvc repro` running: fail now, before anything is written
    stages = pipeline(root)
    names = (list(stages) if subset is None and seeds == list(params.study.seeds)
             else select(stages, set(params.variants), set(chosen), set(seeds)))
    stale = sorted(dvc_sync.stale_stages(root)) if only_stale else None
    log.info(f"study: {len(chosen)} variants x seeds {seeds}: {len(names)} of {len(stages)} DVC stages; "
             f"runner {runner} ({workers} workers); "
             f"{'stale stages: ' + str(len(stale)) if stale is not None else 'running every stage'}")
    with dvc_sync.repo_lock(root):
        states = _fanout.with_options(task_runner=make_runner(runner, workers, dask_address))(
            str(root), stages, names, stale)
    done = [s for s, st in states.items() if st == "Completed"]
    if dvc_commit:
        dvc_sync.commit(root, done)  # also when other stages failed: what finished stays finished
        log.info(f"dvc commit: {len(done)} stages recorded in dvc.lock")
    _artifacts(root, chosen, seeds, params.study.metric)
    failed = sorted(s for s, st in states.items() if st != "Completed")
    if failed:
        raise RuntimeError(f"{len(failed)} stages did not complete: {', '.join(failed[:10])}")
    return states


@flow(name="variant", log_prints=True)
def variant(variant: str, seeds: list[int] | None = None, only_stale: bool = True) -> dict[str, str]:
    """One variant: its data stages (and the shared ones it needs), training and evaluation per seed,
    the audit pages and the report."""
    with project_slot():
        return run_study([variant], seeds, "threads", 1, None, only_stale, True)


if __name__ == "__main__":
    study(variants=sys.argv[1:] or None)
