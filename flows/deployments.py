"""Serve the study's deployments against the server at PREFECT_API_URL (flows/serve.py starts both).

Runs execute in this process's working directory (the project root), so a run with the default
parameters uses the project's params.yaml and data/ and is committed to DVC.
"""
from __future__ import annotations

from prefect import serve

from flows.study import study, variant


def deployments():
    return [study.to_deployment(name="study", description="The whole study, or chosen variants, fanned out.",
                                tags=["bindlab"]),
            variant.to_deployment(name="variant", description="One variant: data, validation, training, "
                                  "evaluation, audit, report.", tags=["bindlab"])]


if __name__ == "__main__":
    serve(*deployments())
