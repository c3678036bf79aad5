"""`experiment`: a what-if from the UI's form. A new variant = a base variant with some knobs changed,
checked with the params schema (bindlab/params.py) before anything runs, then run as a DVC experiment:
`dvc exp run -S '++variants.NAME={...}' train@NAME-S evaluate@NAME-S audit@NAME`, so the variant is added
to params.yaml's `variants`, its params and metrics appear in `dvc exp show`, and the shared stages
(scenes, images, benchmark) come from DVC's cache. Artifacts: its metrics beside its base variant's
and the ideal variant's, and links to its audit page and evaluation plots.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Literal

import yaml
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import ValidationError

from bindlab.contracts import read_eval
from bindlab.metrics import HEADLINE
from bindlab.params import ParamsError, Params, _format_validation_error, apply_profile, load_params
from bindlab.paths import DataPaths
from flows.study import files_url, project_slot
from tasks import dvc as dvc_sync


def new_variant(root: Path, base: str, knobs: dict, name: str | None, seeds: list[int] | None):
    """-> (name, its overrides, seeds, the params as loaded): the knobs over the base variant,
    validated as params.yaml with that variant added would be. ParamsError (one line) otherwise."""
    params = load_params(root / "params.yaml")   # the file itself must be valid first
    raw = yaml.safe_load((root / "params.yaml").read_text())
    if base not in raw["variants"]:
        raise ParamsError(f"base: unknown variant {base!r}; params.yaml defines: {', '.join(raw['variants'])}")
    overrides = {**(raw["variants"][base] or {}), **{k: v for k, v in knobs.items() if v is not None}}
    if name is None:
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:6]
        name = f"whatif_{base}_{digest}"
    if name in raw["variants"] and (raw["variants"][name] or {}) != overrides:
        raise ParamsError(f"name: variant {name!r} already exists in params.yaml with other knobs; choose another name")
    trial = copy.deepcopy(raw)
    trial["variants"][name] = overrides
    try:
        checked = Params(**apply_profile(trial))
        checked.variant(name)
    except ValidationError as e:
        raise ParamsError(f"params: {_format_validation_error(e)}") from None
    except ValueError as e:
        raise ParamsError(str(e).splitlines()[0]) from None
    seeds = list(seeds if seeds is not None else params.study.seeds)
    if not seeds or not set(seeds) <= set(params.study.seeds):
        raise ParamsError(f"seeds: {seeds} must be a non-empty subset of study.seeds {params.study.seeds} "
                          f"(dvc.yaml trains those seeds only)")
    return name, overrides, seeds, checked


def _metrics(root: Path, variant: str, seeds: list[int], metric: str) -> list[dict]:
    """The headline metrics of the variant's runs that have an eval.json (read through its contract)."""
    rows = []
    for seed in seeds:
        f = DataPaths(root / "data").metrics(variant, seed) / "eval.json"
        if f.exists():
            r = read_eval(f, variant, seed, metric)
            rows.append({"variant": variant, "seed": seed, **{k: r.get(k) for k in HEADLINE}})
    return rows


@flow(name="experiment", log_prints=True)
def experiment(base: str = "ideal", name: str | None = None,
               density: float | None = None, completeness: float | None = None,
               objects_mentioned: int | None = None, saliency_bias: float | None = None,
               order: Literal["random", "saliency", "left_to_right"] | None = None,
               hard_negatives: int | None = None, scenes: str | None = None,
               batch_size: int | None = None, steps: int | None = None,
               seeds: list[int] | None = None) -> dict:
    """What if: a new variant from a base variant with some knobs changed, run as a DVC experiment.
    Empty fields keep the base variant's value.

    Args:
        base: the variant to start from (a name under `variants` in params.yaml, e.g. ideal, density_1, one_object).
        name: the new variant's name (letters, digits, underscores); empty: whatif_BASE_HASH of the knobs.
        density: attributes per mentioned object, 0 .. 6 (the attribute types size, aspect, shade, color, texture, outline); a fraction mixes neighbours.
        completeness: fraction of the image's objects a caption mentions, > 0 and <= 1.
        objects_mentioned: exact number of objects a caption mentions, >= 1 (overrides completeness).
        saliency_bias: probability that the mentioned objects are the most salient ones, 0 .. 1.
        order: order of the objects in a caption: random, saliency or left_to_right.
        hard_negatives: swapped-attribute negatives per caption used in training, 0 .. 8.
        scenes: the scene set (a name under `scene_sets` in params.yaml: train, objects_2, objects_3, objects_4).
        batch_size: training batch size, >= 2.
        steps: training steps, >= 1.
        seeds: training seeds, a subset of study.seeds (empty: all of them).
    """
    log = get_run_logger()
    root = Path.cwd()
    if not (root / "dvc.yaml").exists():
        raise ParamsError(f"{root}: no dvc.yaml; run the flow in the project folder")
    knobs = dict(density=density, completeness=completeness, objects_mentioned=objects_mentioned,
                 saliency_bias=saliency_bias, order=order, hard_negatives=hard_negatives, scenes=scenes,
                 batch_size=batch_size, steps=steps)
    name, overrides, seeds, params = new_variant(root, base, knobs, name, seeds)  # nothing written before this
    with project_slot():
        dvc_sync.check_unlocked(root)
        exp_name = f"{name.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
        targets = [f"train@{name}-{s}" for s in seeds] + [f"evaluate@{name}-{s}" for s in seeds] + [f"audit@{name}"]
        log.info(f"experiment {exp_name}: variant {name} = {overrides}; stages {', '.join(targets)}")
        dvc_sync.exp_run(root, exp_name, {f"++variants.{name}": overrides}, targets, log)
    _publish(root, name, base, params.study.ideal, seeds, exp_name, overrides, params.study.metric)
    return {"variant": name, "experiment": exp_name, "metrics": _metrics(root, name, seeds, params.study.metric)}


def _publish(root: Path, name: str, base: str, ideal: str, seeds: list[int], exp_name: str, overrides: dict,
             metric: str):
    paths = DataPaths(root / "data")
    rows = [r for v in dict.fromkeys([name, base, ideal]) for r in _metrics(root, v, seeds, metric)]
    key = f"whatif-{name.replace('_', '-')}"
    if rows:
        create_table_artifact(key=key, table=rows, description=f"{name} ({exp_name}) beside {base} and {ideal}")
    lines = [f"# what if: {name}", "", f"DVC experiment `{exp_name}` (see `dvc exp show`); knobs: `{overrides}`", ""]
    audit = paths.audit(name) / "index.html"
    if audit.exists():
        lines.append(f"- [{name} audit page]({files_url(audit, root)})")
    for seed in seeds:
        for plot in ("by_swap.png", "train_curve.png"):
            f = paths.metrics(name, seed) / plot
            if f.exists():
                lines.append(f"- [seed {seed}: {plot}]({files_url(f, root)})")
    create_markdown_artifact(key=f"{key}-links", markdown="\n".join(lines), description=f"what-if {name}: pages")
