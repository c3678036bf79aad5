"""One Prefect task per pipeline stage, each calling the bindlab stage function that the DVC stage of
the same name runs through the CLI (no second implementation). Tasks take the params file and data
root as strings, so they pickle cheaply to process-pool and Dask workers; each returns the name of
its DVC stage (e.g. `captions@ideal`), which the flow commits to DVC afterwards (tasks/dvc.py).
Stages that can fail transiently (rendering, training, evaluation: out of memory, a killed worker)
retry once; training resumes from its last checkpoint on the retry.
"""
from __future__ import annotations

from prefect import task


def _ctx(params_file: str, data: str):
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    return load_params(params_file), DataPaths(data)


@task(task_run_name="sample@{scene_set}")
def sample(params_file: str, data: str, scene_set: str) -> str:
    from bindlab.scenes import sample_stage
    sample_stage(*_ctx(params_file, data), scene_set)
    return f"sample@{scene_set}"


@task(task_run_name="render@{scene_set}", retries=1)
def render(params_file: str, data: str, scene_set: str, workers: int | None = None) -> str:
    from bindlab.render import render_stage
    render_stage(*_ctx(params_file, data), scene_set, workers=workers)
    return f"render@{scene_set}"


@task(task_run_name="validate_scenes@{scene_set}")
def validate_scenes(params_file: str, data: str, scene_set: str) -> str:
    from bindlab.validate import validate_scenes as run
    run(*_ctx(params_file, data), scene_set)
    return f"validate_scenes@{scene_set}"


@task(retries=1)
def benchmark(params_file: str, data: str, workers: int | None = None) -> str:
    from bindlab.benchmark import benchmark_stage
    benchmark_stage(*_ctx(params_file, data), workers=workers)
    return "benchmark"


@task
def validate_benchmark(params_file: str, data: str) -> str:
    from bindlab.validate import validate_benchmark as run
    run(*_ctx(params_file, data))
    return "validate_benchmark"


@task(task_run_name="captions@{variant}")
def captions(params_file: str, data: str, variant: str) -> str:
    from bindlab.captions import captions_stage
    captions_stage(*_ctx(params_file, data), variant)
    return f"captions@{variant}"


@task(task_run_name="stats@{variant}")
def stats(params_file: str, data: str, variant: str) -> str:
    from bindlab.stats import stats_stage
    stats_stage(*_ctx(params_file, data), variant)
    return f"stats@{variant}"


@task(task_run_name="validate@{variant}")
def validate(params_file: str, data: str, variant: str) -> str:
    from bindlab.validate import validate_variant
    validate_variant(*_ctx(params_file, data), variant)
    return f"validate@{variant}"


@task(task_run_name="audit@{variant}")
def audit(params_file: str, data: str, variant: str) -> str:
    from bindlab.audit import audit_variant
    audit_variant(*_ctx(params_file, data), variant)
    return f"audit@{variant}"


@task
def audit_overview(params_file: str, data: str) -> str:
    from bindlab.audit import audit_overview as run
    run(*_ctx(params_file, data))
    return "audit_overview"


@task(task_run_name="train@{variant}-{seed}", retries=1)
def train(params_file: str, data: str, variant: str, seed: int, threads: int | None = None) -> str:
    from bindlab.train import train_stage
    from prefect.runtime import task_run
    # like the DVC stage (--fresh) on the first attempt; a retry resumes from the last checkpoint
    fresh = (task_run.run_count or 1) <= 1
    train_stage(*_ctx(params_file, data), variant, seed, fresh=fresh, threads=threads, progress=False)
    return f"train@{variant}-{seed}"


@task(task_run_name="evaluate@{variant}-{seed}", retries=1)
def evaluate(params_file: str, data: str, variant: str, seed: int, threads: int | None = None) -> str:
    from bindlab.evaluate import evaluate_stage
    evaluate_stage(*_ctx(params_file, data), variant, seed, threads=threads)
    return f"evaluate@{variant}-{seed}"


@task
def report(params_file: str, data: str) -> str:
    from bindlab.report import report_stage
    report_stage(*_ctx(params_file, data))
    return "report"
