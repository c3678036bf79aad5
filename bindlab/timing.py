"""Wall-clock figures of a training run, kept out of the hashed outputs.

Checkpoints, train.tsv and eval.json hold only what the seed determines, so the same params give the
same bytes. Seconds, samples/s and the data-wait fraction go to `data/runs/metrics/V/seedS/timing.json`
(`DataPaths.timing`), an undeclared file that readers (report, benchmarks.binding, flow artifacts) use when
it is present:

    {"train": {"seconds": total, "log": [[step, samples_per_s, data_wait_frac, elapsed_s], ...],
               "checkpoints": {"STEP": training seconds at that checkpoint}},
     "eval": {"seconds": s, "images_per_s": r}}
"""
from __future__ import annotations

import json
from pathlib import Path

from bindlab.io import write_json

LOG_COLUMNS = ["step", "samples_per_s", "data_wait_frac", "elapsed_s"]


def read(path: str | Path) -> dict:
    """The timing record, or {} when there is none (e.g. outputs restored from a DVC cache)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def update(path: str | Path, part: str, value: dict) -> None:
    """Replace one part ("train" or "eval") of the record, atomically."""
    write_json(path, read(path) | {part: value})


def train_seconds(path: str | Path, step: int | None = None) -> float | None:
    """Training seconds of the run (at checkpoint `step` if given); None when not recorded."""
    train = read(path).get("train", {})
    if step is None:
        return train.get("seconds")
    return train.get("checkpoints", {}).get(str(step))
