"""The study as Prefect flows: `study` (all or selected variants, fanned out across a task runner) and
`variant` (one variant). They submit the tasks of tasks/stages.py (the bindlab stage functions the
DVC stages run) in the DAG of dvc.yaml, and keep DVC consistent (tasks/dvc.py): stages that
`dvc status` reports up to date are skipped (unless something upstream of them runs), and every stage
that ran is recorded with `dvc commit` at the end, even when another stage failed.

Task runners: `processes` (default; CPU-bound stages in worker processes), `threads`, or `dask`
(prefect-dask: a LocalCluster with `workers` processes, or an existing cluster at `dask_address`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks import dvc as dvc_sync
from tasks import stages

Runner = Literal["processes", "threads", "dask"]


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


class _Plan:
    """Submits a stage when it is stale or something upstream of it was submitted; else skips it."""

    def __init__(self, stale: set[str] | None):
        self.stale = stale
        self.futures: dict[str, object] = {}

    def submit(self, name: str, task, *args, after: list[str] = (), **kwargs) -> None:
        upstream = [self.futures[a] for a in after if a in self.futures]
        if self.stale is not None and name not in self.stale and not upstream:
            return
        self.futures[name] = task.submit(*args, wait_for=upstream, **kwargs)


@flow(name="study-fanout")
def _fanout(params_file: str, data: str, variants: list[str], seeds: list[int],
            stale: list[str] | None, threads: int | None) -> dict[str, str]:
    """The DAG of dvc.yaml for the chosen variants; returns {stage: final state name}.

    Rendering runs in-process (1 worker): forking a render pool from a process that runs Prefect's
    (and Dask's) threads can deadlock on a lock held at fork time; rendering is seconds either way."""
    from bindlab.params import load_params
    params = load_params(params_file)
    plan = _Plan(None if stale is None else set(stale))
    sets = sorted({params.variant(v).scenes for v in variants})
    a = (params_file, data)
    for s in sets:
        plan.submit(f"sample@{s}", stages.sample, *a, s)
        plan.submit(f"render@{s}", stages.render, *a, s, 1, after=[f"sample@{s}"])
        plan.submit(f"validate_scenes@{s}", stages.validate_scenes, *a, s, after=[f"render@{s}"])
    plan.submit("benchmark", stages.benchmark, *a, 1)
    plan.submit("validate_benchmark", stages.validate_benchmark, *a, after=["benchmark"])
    for v in variants:
        s = params.variant(v).scenes
        plan.submit(f"captions@{v}", stages.captions, *a, v, after=[f"sample@{s}"])
        plan.submit(f"stats@{v}", stages.stats, *a, v, after=[f"captions@{v}", f"sample@{s}"])
        plan.submit(f"validate@{v}", stages.validate, *a, v, after=[f"captions@{v}", f"render@{s}"])
        plan.submit(f"audit@{v}", stages.audit, *a, v, after=[f"stats@{v}", f"validate@{v}"])
        for seed in seeds:
            plan.submit(f"train@{v}-{seed}", stages.train, *a, v, seed, threads,
                        after=[f"captions@{v}", f"validate@{v}"])
            plan.submit(f"evaluate@{v}-{seed}", stages.evaluate, *a, v, seed, threads,
                        after=[f"train@{v}-{seed}", "benchmark"])
    per_variant = [f"{k}@{v}" for v in variants for k in ("stats", "validate")]
    plan.submit("audit_overview", stages.audit_overview, *a, after=per_variant)
    plan.submit("report", stages.report, *a,
                after=[f"evaluate@{v}-{seed}" for v in variants for seed in seeds])
    states = {}
    for name, future in plan.futures.items():
        future.wait()
        states[name] = future.state.name
    return states


def _artifacts(params_file: str, data: str, variants: list[str], seeds: list[int]) -> None:
    """A metrics table per variant, and links to the report and audit pages."""
    import json
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    params, paths = load_params(params_file), DataPaths(data)
    from bindlab import timing
    keys = ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe", "r1_i2t", "r5_i2t")
    for v in variants:
        rows = []
        for seed in seeds:
            f = paths.metrics(v, seed) / "eval.json"
            if f.exists():
                r = json.loads(f.read_text())
                rows.append({"seed": seed, **{k: r.get(k) for k in keys},
                             "train_seconds": timing.train_seconds(paths.timing(f.parent))})
        if rows:
            create_table_artifact(key=f"metrics-{v.replace('_', '-')}", table=rows,
                                  description=f"binding metrics of {v} (study.metric {params.study.metric})")
    report = (paths.report / "index.html").resolve()
    lines = ["# bindlab study", ""]
    if report.exists():
        summary = (paths.report / "summary.md").read_text()
        lines += [f"[findings report]({report.as_uri()})", "", summary, ""]
    overview = (paths.root / "audit" / "index.html").resolve()
    if overview.exists():
        lines.append(f"[audit overview]({overview.as_uri()})")
    for v in variants:
        page = (paths.audit(v) / "index.html").resolve()
        if page.exists():
            lines.append(f"- [{v} audit]({page.as_uri()})")
    create_markdown_artifact(key="study-report", markdown="\n".join(lines), description="report and audit pages")


@flow(name="study", log_prints=True)
def study(variants: list[str] | None = None, seeds: list[int] | None = None,
          params_file: str = "params.yaml", data: str = "data",
          runner: Runner = "processes", workers: int = 2, dask_address: str | None = None,
          threads: int | None = None, only_stale: bool = True, dvc_commit: bool = True) -> dict[str, str]:
    """Run the study (all variants, or the ones named) with the bindlab stages.

    variants: names from params.yaml (empty: all). seeds: default study.seeds. runner/workers: how
    variants fan out (processes, threads, or dask; dask_address = an existing Dask scheduler).
    threads: torch threads per training run (default: cores / workers). only_stale: skip stages DVC
    reports up to date. dvc_commit: record the stages that ran in dvc.lock (when the run uses the
    project's params.yaml and data/)."""
    from bindlab.params import ParamsError, load_params
    log = get_run_logger()
    params = load_params(params_file)
    variants = list(variants or params.variants)
    for v in variants:
        params.variant(v)  # an unknown name fails here, before anything runs
    seeds = list(seeds if seeds is not None else params.study.seeds)
    root = dvc_sync.project_root(params_file, data)
    if root is not None and not set(seeds) <= set(params.study.seeds):
        raise ParamsError(f"seeds {seeds}: dvc.yaml runs study.seeds {params.study.seeds}; set study.seeds "
                          f"in params.yaml (the DVC stages of other seeds do not exist)")
    stale = sorted(dvc_sync.stale_stages(root)) if (root is not None and only_stale) else None
    threads = threads or max(1, (os.cpu_count() or 2) // max(1, workers))
    log.info(f"study: {len(variants)} variants x seeds {seeds}; runner {runner} ({workers} workers); "
             f"DVC project: {root or 'none (not the project params/data)'}; "
             f"{'stale stages: ' + str(len(stale)) if stale is not None else 'running every stage'}")
    task_runner = make_runner(runner, workers, dask_address)
    states = _fanout.with_options(task_runner=task_runner)(
        params_file, data, variants, seeds, stale, threads)
    done = [s for s, st in states.items() if st == "Completed"]
    if root is not None and dvc_commit:
        dvc_sync.commit(root, done)  # also when other stages failed: what finished stays finished
        log.info(f"dvc commit: {len(done)} stages recorded in dvc.lock")
    _artifacts(params_file, data, variants, seeds)
    failed = sorted(s for s, st in states.items() if st != "Completed")
    if failed:
        raise RuntimeError(f"{len(failed)} stages did not complete: {', '.join(failed[:10])}")
    return states


@flow(name="variant", log_prints=True)
def variant(variant: str, seeds: list[int] | None = None, params_file: str = "params.yaml",
            data: str = "data", threads: int | None = None, only_stale: bool = True) -> dict[str, str]:
    """One variant: its data stages (and the shared ones it needs), training and evaluation per seed,
    the audit pages and the report."""
    return study(variants=[variant], seeds=seeds, params_file=params_file, data=data, runner="threads",
                 workers=1, threads=threads, only_stale=only_stale)


if __name__ == "__main__":
    import sys
    study(variants=sys.argv[1:] or None)
