"""A tiny study for the training/evaluation tests: 300 scenes, a 60-scene benchmark, a tiny model."""
from __future__ import annotations

import copy
from pathlib import Path

from conftest import tiny_params_dict, write_params

TINY_MODEL = {"embed_dim": 32, "tokenizer": "words",
              "vision": {"image_size": 64, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16,
                         "block_type": "custom"},
              "text": {"context_length": 48, "width": 32, "heads": 2, "layers": 1, "block_type": "custom"}}


def tiny_raw(steps: int = 6, batch: int = 32) -> dict:
    raw = tiny_params_dict(n=300, bench=60)
    # 2-3 objects while the benchmark has 2-4: bench binding's "trained-on counts" line is exercised
    raw["scene_sets"] = {"train": {**raw["scene_sets"]["train"], "objects": {2: 0.5, 3: 0.5}}}
    raw["variants"] = {"ideal": {}, "one_object": {"objects_mentioned": 1}, "hn2": {"hard_negatives": 2}}
    raw["study"] = dict(raw["study"], ideal_long="ideal")   # finding 7 on `ideal`: no longer run here
    raw["base"].update(steps=steps, batch_size=batch)
    raw["model"] = {"name": "tiny", "configs": {"tiny": copy.deepcopy(TINY_MODEL)}}
    raw["train"] = {"lr": 0.002, "min_lr_ratio": 0.1, "warmup": 2, "weight_decay": 0.1, "threads": 1,
                    "checkpoint_every": 3, "log_every": 1, "eval_batch": 128}
    return raw


def build_tiny_data(folder: Path, raw: dict):
    """Runs the real data stages into folder/data; returns (params, paths)."""
    from bindlab.benchmark import benchmark_stage
    from bindlab.captions import captions_stage
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    from bindlab.render import render_stage
    from bindlab.scenes import sample_stage
    params = load_params(write_params(folder, raw))
    paths = DataPaths(folder / "data")
    sample_stage(params, paths, "train")
    render_stage(params, paths, "train", workers=1)
    for v in raw["variants"]:
        captions_stage(params, paths, v)
    benchmark_stage(params, paths, workers=1)
    return params, paths
