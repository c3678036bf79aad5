"""What the training batches ask of the model: the sampler that draws them (shared by training and the
statistics), and the minimal-pair and singling-out shares on hand-made batches where the answer is known."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from bindlab import sampler
from bindlab.stats import batch_needs, scene_keys

TYPES = ["size", "aspect", "shade", "color", "texture", "outline"]
PLAIN = {"size": "small", "aspect": "regular", "shade": "vivid", "color": "red", "texture": "plain",
         "outline": "unbordered"}


def _scenes(scenes: list[list[dict]]) -> pl.DataFrame:
    """A scene table from lists of objects (shape + any attribute not at its plain value); position varies
    with the object's place, and never counts."""
    rows = [{"scene_id": sid, "obj": i, "shape": o.get("shape", "circle"), **{t: o.get(t, PLAIN[t]) for t in TYPES},
             "x": 0.1 * i + 0.01 * sid}
            for sid, objects in enumerate(scenes) for i, o in enumerate(objects)]
    return pl.DataFrame(rows).with_columns(pl.col("obj").cast(pl.Int8), pl.col("x").cast(pl.Float32))


def _old_batch_indices(n: int, seed: int, step: int, batch_size: int) -> np.ndarray:
    """The sampler as training drew it before it moved to bindlab/sampler.py, verbatim."""
    start = step * batch_size
    pos = np.arange(start, start + batch_size)
    epochs = pos // n
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        sel = epochs == e
        out[sel] = perm[pos[sel] % n]
    return np.sort(out)


@pytest.mark.parametrize("n, batch_size", [(300, 30), (300, 128), (97, 64), (50, 50)])
def test_the_sampler_draws_the_batches_training_drew_before(n, batch_size):
    for seed in (0, 1, 7):
        for step in (0, 1, 2, 3, 5, 11):   # the steps straddle epoch boundaries for every size above
            assert np.array_equal(sampler.batch_indices(n, seed, step, batch_size),
                                  _old_batch_indices(n, seed, step, batch_size))
    both = sampler.batches(n, 3, 12, batch_size)
    assert both.shape == (12, batch_size) and both.dtype == np.int64
    assert all(np.array_equal(both[s], _old_batch_indices(n, 3, s, batch_size)) for s in range(12))


def test_the_sampler_is_deterministic_by_seed_and_covers_each_epoch():
    a, b = sampler.batches(300, 0, 10, 30), sampler.batches(300, 0, 10, 30)
    assert np.array_equal(a, b)
    assert np.array_equal(np.sort(a.reshape(-1)), np.arange(300))   # 10 x 30 = one epoch: every image once
    assert not np.array_equal(a, sampler.batches(300, 1, 10, 30))
    assert (np.diff(a, axis=1) >= 0).all()   # sorted within the batch: memory-mapped reads go forward


def test_training_delegates_to_the_sampler():
    torch = pytest.importorskip("torch")  # noqa: F841  (train.py imports it)
    from bindlab.train import TrainData
    data = TrainData.__new__(TrainData)  # only the sampler: no images or captions needed
    data.n = 300
    assert np.array_equal(data.batch_indices(4, 9, 64), _old_batch_indices(300, 4, 9, 64))


def test_scene_keys_compare_objects_as_a_multiset_without_position():
    scenes = _scenes([
        [{"shape": "circle"}, {"shape": "square", "color": "blue"}],
        [{"shape": "square", "color": "blue"}, {"shape": "circle"}],            # same objects, other order
        [{"shape": "circle"}, {"shape": "square", "color": "blue"}, {"shape": "circle"}],  # one more circle
        [{"shape": "circle", "color": "blue"}, {"shape": "square"}],            # the colours swapped
    ])
    keys = scene_keys(scenes, ["shape", *TYPES], 4)
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3
    shapes = scene_keys(scenes, ["shape"], 4)
    assert shapes[0] == shapes[1] == shapes[3] != shapes[2]   # without colour the swap is the same scene


def test_a_type_needed_by_construction_and_types_never_needed():
    # scenes 0/1: a minimal pair in texture (one object's texture replaced); scene 2 differs from 0 in
    # size and outline together (no single type separates them); scene 3: a duplicate of scene 0 (two
    # copies of one scene are not a pair); scene 4: alone by its shape
    scenes = _scenes([
        [{"shape": "circle"}, {"shape": "square", "color": "blue"}],
        [{"shape": "circle", "texture": "striped"}, {"shape": "square", "color": "blue"}],
        [{"shape": "circle", "size": "large", "outline": "bordered"}, {"shape": "square", "color": "blue"}],
        [{"shape": "square", "color": "blue"}, {"shape": "circle"}],
        [{"shape": "star"}],
    ])
    got = batch_needs(scenes, TYPES, np.array([[0, 1, 2, 3, 4]]), 5)
    pairs = got["minimal_pair"]
    assert pairs["texture"] == pytest.approx(3 / 5)   # 0 and 3 have 1 as a mate, 1 has 0 and 3
    assert {t: x for t, x in pairs.items() if t != "texture"} == {t: 0.0 for t in [*TYPES, "shape"] if t != "texture"}
    # colour + shape: scenes 0-3 share {red circle, blue square}; only 4 is singled out
    assert got["singled_out_by_color_shape"] == pytest.approx(1 / 5)
    # the same scenes in separate batches: no batch-mate, nothing needed, everything singled out
    apart = batch_needs(scenes, TYPES, np.array([[0, 4], [1, 4], [2, 4]]), 5)
    assert set(apart["minimal_pair"].values()) == {0.0} and apart["singled_out_by_color_shape"] == 1.0


def test_colour_and_shape_single_out_and_a_shape_pair():
    scenes = _scenes([
        [{"shape": "circle", "color": "red"}, {"shape": "square", "color": "blue"}],
        [{"shape": "circle", "color": "blue"}, {"shape": "square", "color": "red"}],   # the colours swapped
        [{"shape": "circle", "color": "red"}, {"shape": "star", "color": "blue"}],     # one shape replaced
        [{"shape": "circle", "color": "red", "size": "large"}, {"shape": "star", "color": "blue"}],
    ])
    got = batch_needs(scenes, TYPES, np.array([[0, 1, 2, 3]]), 4)
    assert got["singled_out_by_color_shape"] == pytest.approx(2 / 4)   # 2 and 3 share their pairs
    # 0/2 differ in one object's shape; 2/3 in one object's size; 0/1 is a swap, which counts for both
    # types it swaps: without colour they are {circle, square}, without shape {red, blue}, both equal
    assert got["minimal_pair"]["shape"] == pytest.approx(3 / 4)
    assert got["minimal_pair"]["size"] == pytest.approx(2 / 4)
    assert got["minimal_pair"]["color"] == pytest.approx(2 / 4)
    assert got["minimal_pair"]["texture"] == 0.0


def test_the_stats_stage_writes_the_batch_statistic(tiny_data, tmp_path):
    from tiny import copy_study
    from bindlab.contracts import read_summary
    from bindlab.stats import BATCHES, stats_stage
    params, paths, _ = copy_study(tiny_data, tmp_path)
    summary = stats_stage(params, paths, "ideal")
    v = params.variant("ideal")
    b = summary["batches"]
    assert (b["seed"], b["batch_size"], b["batches"]) == (params.study.seeds[0], v.batch_size, min(v.steps, BATCHES))
    assert b["images"] == b["batches"] * v.batch_size
    assert set(b["minimal_pair"]) == {*params.vocab.attribute_types, "shape"}
    assert all(0 <= x <= 1 for x in b["minimal_pair"].values()) and 0 < b["singled_out_by_color_shape"] <= 1
    on_disk = json.loads((paths.stats("ideal") / "summary.json").read_text())
    assert on_disk["batches"] == b
    assert read_summary(paths.stats("ideal") / "summary.json", params.scene_sets[v.scenes].n, "x")["batches"] == b
    row = pl.read_parquet(paths.stats("ideal") / "summary.parquet")
    assert row["singled_out_by_color_shape"].item() == b["singled_out_by_color_shape"]
    assert row["minimal_pair.texture"].item() == b["minimal_pair"]["texture"]


def test_a_summary_without_its_batch_statistic_or_with_a_share_outside_0_1_is_refused(tmp_path):
    from bindlab.contracts import read_summary
    from bindlab.errors import StageError
    summary = {"captions": 2, "mentions": 2, "means": {k: 0.5 for k in (
        "objects_in_image", "objects_mentioned", "completeness", "attrs_per_mentioned_object", "top_mentioned",
        "salient_prefix", "mentioned_saliency_rank", "in_saliency_order", "in_left_to_right_order",
        "caption_words", "oov_words", "hard_negatives")},
        "distributions": {k: {} for k in ("objects_in_image", "objects_mentioned", "completeness",
                                          "attrs_per_mentioned_object", "mentioned_saliency_rank", "caption_words",
                                          "hard_negatives")},
        "batches": {"seed": 0, "batch_size": 2, "batches": 1, "images": 2, "singled_out_by_color_shape": 1.0,
                    "minimal_pair": {t: 0.0 for t in [*TYPES, "shape"]}}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    assert read_summary(path, 2, "bindlab stats --variant v")["batches"] == summary["batches"]
    summary["batches"]["minimal_pair"]["texture"] = 1.5
    path.write_text(json.dumps(summary))
    with pytest.raises(StageError, match=r"summary.json: batches.minimal_pair.texture is 1.5, not a share in 0..1; "
                                         r"regenerate it with `bindlab stats --variant v`"):
        read_summary(path, 2, "bindlab stats --variant v")
    del summary["batches"]
    path.write_text(json.dumps(summary))
    with pytest.raises(StageError, match=r"summary.json: lacks key 'batches'"):
        read_summary(path, 2, "bindlab stats --variant v")
