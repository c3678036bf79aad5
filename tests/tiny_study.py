"""A tiny study on disk made by the real stages (sample, render, captions, benchmark), for the
statistics, validation and audit tests. The tests declare the variants they need here, so they do not
depend on the study's current list in params.yaml."""
from __future__ import annotations

from pathlib import Path

from conftest import tiny_params_dict, write_params

VARIANTS = {
    "ideal": {"scenes": "train"},
    "density_2": {"scenes": "train", "density": 2},
    "one_object": {"scenes": "train", "objects_mentioned": 1},
    "completeness_50": {"scenes": "train", "completeness": 0.5},
    "saliency_100": {"scenes": "train", "objects_mentioned": 1, "saliency_bias": 1.0},
    "natural": {"scenes": "train", "density": 1, "completeness": 0.5, "saliency_bias": 1.0},
    "hardneg": {"scenes": "train", "density": 2, "hard_negatives": 2, "order": "left_to_right"},
}


def build(folder: Path, make: list[str], n: int = 300, bench: int = 40, benchmark: bool = False):
    """-> (params, paths, params file): variants `VARIANTS`, scene set `train` sampled and rendered,
    captions of the variants in `make`, and the benchmark if asked."""
    from bindlab.captions import captions_stage
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    from bindlab.render import render_stage
    from bindlab.scenes import sample_stage

    raw = tiny_params_dict(n, bench)
    raw["variants"] = VARIANTS
    params_file = write_params(folder, raw)
    params = load_params(params_file)
    paths = DataPaths(folder / "data")
    for scene_set in sorted({params.variant(v).scenes for v in make}):
        sample_stage(params, paths, scene_set)
        render_stage(params, paths, scene_set, workers=1)
    for v in make:
        captions_stage(params, paths, v)
    if benchmark:
        from bindlab.benchmark import benchmark_stage
        benchmark_stage(params, paths, workers=1)
    return params, paths, params_file
