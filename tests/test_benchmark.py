"""The binding benchmark: negatives are the same words bound wrongly, always false; counterfactual
images differ exactly where the swap says; probes are false one-object captions made of the image's words;
replace items change one object's value to one absent from the image, on a stream of their own."""
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
        "replace": pl.read_parquet(b / "replace.parquet"), "rcf": np.load(b / "replace_counterfactual.npy"),
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


def _box(o: dict, r: float, s: int) -> tuple[slice, slice]:
    """The pixels a radius-r object at o's centre may touch (plus the anti-aliasing margin)."""
    y0, y1 = int((o["y"] - r) * s) - 2, int((o["y"] + r) * s) + 3
    x0, x1 = int((o["x"] - r) * s) - 2, int((o["x"] + r) * s) + 3
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


def test_replace_items_change_one_object_to_an_absent_value_and_are_false(bench):
    from bindlab.benchmark import replaced_scene
    params, b = bench
    objs = objects_of(b["scenes"])
    replace, keys = b["replace"], {*params.vocab.attribute_types, "shape"}
    assert replace["item_id"].to_list() == list(range(len(replace))) and len(b["rcf"]) == len(replace)
    assert set(replace["type"].unique()) == keys  # every type replaced somewhere
    assert replace.group_by("scene_id", "type").len()["len"].max() == 1
    assert replace["obj"].n_unique() > 1
    swap_caption = dict(b["items"].group_by("scene_id").agg(pl.col("caption").first()).iter_rows())
    for row in replace.iter_rows(named=True):
        scene = objs[row["scene_id"]]
        assert row["n_objects"] == len(scene) and 0 <= row["obj"] < len(scene)
        assert all(o[row["type"]] != row["value"] for o in scene)  # absent from every object
        assert row["caption"] == swap_caption.get(row["scene_id"], row["caption"])
        phrases = _phrases(row["caption"], params)
        assert row["type"] in phrases[0]  # a named type (or the shape)
        old, new = row["caption"].split(), row["negative"].split()
        changed = [i for i, (x, y) in enumerate(zip(old, new)) if x != y]
        assert len(old) == len(new) and len(changed) == 1 and new[changed[0]] == row["value"]
        assert old[changed[0]] == scene[row["obj"]][row["type"]]
        assert all(any(matches(o, d) for o in scene) for d in phrases)  # the true caption is true...
        assert not all(any(matches(o, d) for o in scene) for d in _phrases(row["negative"], params))  # the negative not
        cf = replaced_scene(params, scene, row["obj"], row["type"], row["value"])
        assert not all(any(matches(o, d) for o in cf) for d in phrases), row  # ...nor of the counterfactual
    flagged = set(b["scenes"].filter(pl.col("unseen"))["scene_id"].to_list())
    assert replace.filter(pl.col("scene_id").is_in(list(flagged)))["unseen"].all()


def test_replace_counterfactual_images_differ_only_inside_the_changed_object(bench):
    from bindlab.benchmark import replaced_scene
    params, b = bench
    s = params.render.image_size
    objs = objects_of(b["scenes"])
    for row in b["replace"].head(200).iter_rows(named=True):
        diff = np.abs(b["images"][row["scene_id"]].astype(int) - b["rcf"][row["item_id"]].astype(int)).sum(-1) > 0
        assert diff.any(), row
        o = objs[row["scene_id"]][row["obj"]]
        new = replaced_scene(params, objs[row["scene_id"]], row["obj"], row["type"], row["value"])[row["obj"]]
        if row["type"] == "size":  # the radius follows the size as scenes.py maps it
            sizes = params.vocab.attributes["size"]
            assert (new["radius"] > o["radius"]) == (sizes.index(row["value"]) > sizes.index(o["size"]))
        allowed = np.zeros((s, s), dtype=bool)
        allowed[_box(o, max(o["radius"], new["radius"]), s)] = True
        assert not (diff & ~allowed).any(), row


def test_replace_items_of_constructed_scenes(tiny_params):
    """Scene 0's three sizes are all present: no size item; its colors red, red, green: the new color
    is another; every other type has one value for all three objects, so each gets an item. Scene 1's
    objects 0 and 1 are identical: replacing either leaves its old phrase true of the other, so every
    item changes object 2."""
    from bindlab import look
    from bindlab.benchmark import build_items, build_replace
    from bindlab.scenes import sample_scenes
    params = tiny_params
    types = list(params.vocab.attribute_types)
    assert params.benchmark.density is None
    scenes = sample_scenes(params, 2, {3: 1.0}, "constructed", holdout=False, swappable=True)
    sizes = params.vocab.attributes["size"]
    rows = scenes.sort("scene_id", "obj").to_dicts()
    for r, size, color in zip(rows[:3], sizes, ["red", "red", "green"]):
        r.update({t: params.vocab.attributes[t][0] for t in types}, size=size, color=color)
    for key in [*types, "shape"]:
        rows[4][key] = rows[3][key]
    rows[5]["shape"] = next(s for s in params.vocab.shapes if s != rows[3]["shape"])
    for r in rows:
        r["radius"] = float(look.size_radii(len(sizes))[sizes.index(r["size"])])
    scenes = pl.DataFrame(rows, schema=scenes.schema)

    def build(seed: int) -> pl.DataFrame:
        named: dict = {}
        build_items(params, scenes, np.random.default_rng(0), named)
        assert named == {0: types, 1: types}
        replace, cf = build_replace(params, scenes, named, np.random.default_rng(seed))
        assert cf.height == 3 * replace.height and cf["scene_id"].unique().sort().to_list() == replace["item_id"].to_list()
        return replace

    replace = build(1)
    first = replace.filter(pl.col("scene_id") == 0)
    assert sorted(first["type"]) == sorted({*types, "shape"} - {"size"})
    assert first.filter(pl.col("type") == "color")["value"].item() not in ("red", "green")
    second = replace.filter(pl.col("scene_id") == 1)
    assert len(second) > 0 and second["obj"].to_list() == [2] * len(second)
    assert replace.equals(build(1))  # deterministic by seed
    assert not replace.equals(build(2))


def test_replace_has_its_own_stream_and_leaves_the_swap_items_and_probes_as_they_were(bench):
    """items and probes are exactly what the items stream alone gives (nothing else draws from it), and
    the replace items what their own stream gives."""
    from bindlab.benchmark import build_items, build_probes, build_replace
    from bindlab.scenes import BENCHMARK_STREAM, rng_for
    params, b = bench
    rng = rng_for(params, BENCHMARK_STREAM + "/items")
    named: dict = {}
    items, _ = build_items(params, b["scenes"], rng, named)
    assert items.equals(b["items"])
    assert build_probes(params, b["scenes"], rng).equals(b["probes"])
    replace, _ = build_replace(params, b["scenes"], named, rng_for(params, BENCHMARK_STREAM + "/replace"))
    assert replace.equals(b["replace"])
