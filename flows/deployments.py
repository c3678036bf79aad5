"""Serve the study's deployments against the server at PREFECT_API_URL (flows/serve.py starts both).

Runs execute in this process's working directory (the project root), so a run with the default
parameters uses the project's params.yaml and data/ and is committed to DVC. Each deployment runs at
most one run at a time; a second one is enqueued (the UI shows it "AwaitingConcurrencySlot"), and runs
of different deployments wait for each other on the project's run slot (flows/study.py).
"""
from __future__ import annotations

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig

from flows.experiment import experiment
from flows.study import study, variant

ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy="ENQUEUE")


def deployments():
    common = {"tags": ["bindlab"], "concurrency_limit": ONE_AT_A_TIME}
    return [study.to_deployment(name="study", description="The whole study, or chosen variants, fanned out.",
                                **common),
            variant.to_deployment(name="variant", description="One variant: data, validation, training, "
                                  "evaluation, audit, report.", **common),
            experiment.to_deployment(name="experiment", description="What if: a new variant from a base "
                                     "variant and changed knobs, run as a DVC experiment (`dvc exp show`).",
                                     **common)]


if __name__ == "__main__":
    serve(*deployments())
