"""The binding benchmark: negatives are the same words bound wrongly, always false; counterfactual
images differ exactly where the swap says; probes are false one-object captions made of the image's words."""
from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest

from bindlab.benchmark import benchmark_stage
from bindlab.paths import DataPaths
from bindlab.wording import matches, objects_of


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from bindlab.params import load_params
    from tiny import tiny_params_dict, write_params
    folder = tmp_path_factory.mktemp("bench")
    raw = tiny_params_dict(bench=150)
    raw["benchmark"]["density"] = 3  # a fixed density below all types (null: the full description)
    params = load_params(write_params(folder, raw))
    paths = DataPaths(folder / "data")
    benchmark_stage(params, paths, workers=2)
    b = paths.benchmark
    return params, {
        "scenes": pl.read_parquet(b / "scenes.parquet"), "items": pl.read_parquet(b / "items.parquet"),
        "probes": pl.read_parquet(b / "probes.parquet"), "images": np.load(b / "images.npy"),
        "cf": np.load(b / "counterfactual.npy"), "folder": b,
    }


def _phrases(caption: str, params) -> list[dict]:
    """Each object phrase as {type or 'shape': value} (every vocabulary word belongs to one type)."""
    kind = {w: t for t, values in params.vocab.attributes.items() for w in values} | {s: "shape" for s in params.vocab.shapes}
    return [{kind[w]: w for w in p.split()[1:]} for p in caption.split(" and ")]


def test_every_image_has_two_or_more_objects_and_one_negative_per_differing_type(bench):
    params, b = bench
    assert b["scenes"].group_by("scene_id").len()["len"].min() >= 2
    assert set(b["items"]["swap"].unique()) == {*params.vocab.attribute_types, "shape"}
    per_image = b["items"].group_by("scene_id", "swap").len()
    assert per_image["len"].max() == 1
    assert len(b["items"]) > 3 * params.benchmark.n  # most images have a negative for most types
    assert (b["folder"] / "contact.png").stat().st_size > 10_000


def test_negatives_are_same_words_wrong_binding_and_false(bench):
    params, b = bench
    objs = objects_of(b["scenes"])
    for row in b["items"].iter_rows(named=True):
        assert row["negative"] != row["caption"]
        assert Counter(row["negative"].split()) == Counter(row["caption"].split())
        scene = objs[row["scene_id"]]
        assert all(any(matches(o, d) for o in scene) for d in _phrases(row["caption"], params))  # true caption is true
        assert not all(any(matches(o, d) for o in scene) for d in _phrases(row["negative"], params))  # negative is false


def test_counterfactual_images_differ_only_inside_the_swapped_objects(bench):
    params, b = bench
    s = params.render.image_size
    sc = b["scenes"]
    for row in b["items"].head(200).iter_rows(named=True):
        diff = np.abs(b["images"][row["scene_id"]].astype(int) - b["cf"][row["item_id"]].astype(int)).sum(-1) > 0
        assert diff.any(), row
        allowed = np.zeros((s, s), dtype=bool)
        for obj in (row["obj_a"], row["obj_b"]):
            o = sc.filter((pl.col("scene_id") == row["scene_id"]) & (pl.col("obj") == obj)).row(0, named=True)
            # the larger of the two radii bounds both the true and the swapped object
            r = max(o["radius"], *sc.filter((pl.col("scene_id") == row["scene_id"]) & pl.col("obj").is_in([row["obj_a"], row["obj_b"]]))["radius"])
            y0, y1 = int((o["y"] - r) * s) - 2, int((o["y"] + r) * s) + 3
            x0, x1 = int((o["x"] - r) * s) - 2, int((o["x"] + r) * s) + 3
            allowed[max(y0, 0):y1, max(x0, 0):x1] = True
        assert not (diff & ~allowed).any(), row


def test_probes_are_false_and_use_only_words_of_the_image(bench):
    params, b = bench
    objs = objects_of(b["scenes"])
    assert set(b["probes"]["k"].unique()) == set(range(1, len(params.vocab.attribute_types) + 1))
    for row in b["probes"].iter_rows(named=True):
        scene = objs[row["scene_id"]]
        true_words, false_words = row["true_caption"].split(), row["false_caption"].split()
        assert len(true_words) == len(false_words) == row["k"] + 2  # "a", k attributes, the shape
        image_words = {w for o in scene for w in o.values() if isinstance(w, str)}
        assert set(false_words[1:]) <= image_words
        types = row["attrs"]
        assert len(types) == row["k"] and row["swap"] in types
        desc_true = dict(zip([*types, "shape"], true_words[1:]))
        desc_false = dict(zip([*types, "shape"], false_words[1:]))
        assert matches(scene[row["obj"]], desc_true)
        assert not any(matches(o, desc_false) for o in scene)


def test_unseen_marks_held_out_combinations(bench):
    params, b = bench
    flagged = set(b["scenes"].filter(pl.col("unseen"))["scene_id"].to_list())
    items = b["items"]
    assert items.filter(pl.col("scene_id").is_in(list(flagged)))["unseen"].all()


def test_captions_name_the_declared_density_and_the_counterfactual_makes_them_false(bench):
    """benchmark.density attribute types per object phrase (the same set for every object of an image),
    the swapped type among them; the true caption is false of the counterfactual image's scene."""
    from bindlab.benchmark import swapped_scene
    params, b = bench
    k = params.benchmark.density
    assert k is not None and k < len(params.vocab.attribute_types)
    objs = objects_of(b["scenes"])
    named_sets = set()
    for row in b["items"].iter_rows(named=True):
        phrases = _phrases(row["caption"], params)
        types = {frozenset(p) - {"shape"} for p in phrases}
        assert len(types) == 1 and len(next(iter(types))) == k, row["caption"]
        named = next(iter(types))
        named_sets.add(named)
        assert row["swap"] in named | {"shape"}
        cf = swapped_scene(objs[row["scene_id"]], row["obj_a"], row["obj_b"], row["swap"])
        assert not all(any(matches(o, d) for o in cf) for d in phrases), row
    assert len(named_sets) > 5  # drawn per image, not one fixed set


def test_full_description_when_the_density_is_null(tmp_path):
    from bindlab.benchmark import build_items
    from bindlab.params import load_params
    from bindlab.scenes import sample_scenes
    from tiny import tiny_params_dict, write_params
    raw = tiny_params_dict(bench=40)
    raw["benchmark"]["density"] = None
    params = load_params(write_params(tmp_path, raw))
    scenes = sample_scenes(params, 40, {2: 0.5, 3: 0.5}, "bench-null", holdout=False, swappable=True)
    items, _ = build_items(params, scenes, np.random.default_rng(0))
    n_types = len(params.vocab.attribute_types)
    for row in items.iter_rows(named=True):
        assert all(len(p) == n_types + 1 for p in _phrases(row["caption"], params))
