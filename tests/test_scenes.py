"""Scene graphs: no overlaps, balanced values, held-out combinations, saliency, determinism."""
from __future__ import annotations

import numpy as np
import polars as pl

from bindlab.params import parse_combo
from bindlab.scenes import GAP, sample_scenes


def _pairs(scenes: pl.DataFrame) -> pl.DataFrame:
    return scenes.join(scenes, on="scene_id", suffix="_b").filter(pl.col("obj") < pl.col("obj_b"))


def test_objects_never_overlap_and_stay_inside(tiny_params):
    scenes = sample_scenes(tiny_params, 5000, {2: 0.3, 3: 0.3, 4: 0.4}, "test")
    pairs = _pairs(scenes)
    dist = np.hypot(pairs["x"] - pairs["x_b"], pairs["y"] - pairs["y_b"])
    assert (dist >= pairs["radius"] + pairs["radius_b"] + GAP - 1e-6).all()
    assert (scenes["x0"] >= -1e-6).all() and (scenes["x1"] <= 1 + 1e-6).all()
    assert (scenes["y0"] >= -1e-6).all() and (scenes["y1"] <= 1 + 1e-6).all()


def test_counts_follow_the_distribution_and_values_are_balanced(tiny_params):
    scenes = sample_scenes(tiny_params, 6000, {2: 0.5, 4: 0.5}, "test", holdout=False)
    per_scene = scenes.group_by("scene_id").agg(pl.len())["len"]
    assert set(per_scene.unique()) == {2, 4}
    assert abs((per_scene == 2).mean() - 0.5) < 0.03
    for column in ["shape", *tiny_params.vocab.attribute_types]:
        counts = scenes[column].value_counts()["count"]
        assert counts.max() - counts.min() <= 1, column  # dealt from a balanced deck


def test_holdout_combinations_never_occur_in_training_scenes(tiny_params):
    scenes = sample_scenes(tiny_params, 5000, {2: 0.5, 3: 0.5}, "test", holdout=True)
    assert tiny_params.holdout
    for i, combo in enumerate(tiny_params.holdout):
        attr, value, shape = parse_combo(combo, tiny_params.vocab, f"holdout.{i}")
        assert scenes.filter((pl.col(attr) == value) & (pl.col("shape") == shape)).is_empty()
    assert not scenes["unseen"].any()
    # shapes stay balanced: held-out objects swap shapes rather than being redrawn
    counts = scenes["shape"].value_counts()["count"]
    assert counts.max() - counts.min() <= 1
    free = sample_scenes(tiny_params, 5000, {2: 0.5, 3: 0.5}, "test", holdout=False)
    assert free["unseen"].any()


def test_saliency_rank_is_size_first_then_centre(tiny_params):
    scenes = sample_scenes(tiny_params, 2000, {3: 1.0}, "test")
    sizes = {s: i for i, s in enumerate(tiny_params.vocab.attributes["size"])}
    scenes = scenes.with_columns(
        size_idx=pl.col("size").replace_strict(sizes),
        centre=((pl.col("x") - 0.5) ** 2 + (pl.col("y") - 0.5) ** 2).sqrt(),
    )
    for group in scenes.partition_by("scene_id")[:300]:
        expected = group.sort(["size_idx", "centre", "obj"], descending=[True, False, False])["obj"].to_list()
        assert group.sort("saliency_rank")["obj"].to_list() == expected
        assert sorted(group["saliency_rank"].to_list()) == list(range(len(group)))


def test_same_seed_same_scenes_other_seed_other_scenes(tiny_params):
    a = sample_scenes(tiny_params, 1000, {2: 0.5, 3: 0.5}, "test")
    b = sample_scenes(tiny_params, 1000, {2: 0.5, 3: 0.5}, "test")
    c = sample_scenes(tiny_params.model_copy(update={"seed": 7}), 1000, {2: 0.5, 3: 0.5}, "test")
    assert a.equals(b)
    assert not a.equals(c)
