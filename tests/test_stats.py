"""Caption statistics: exact on a hand-built scene and caption table, consistent with the caption
knobs on real captions, and written deterministically by `bindlab stats`."""
from __future__ import annotations

import json

import polars as pl
import pytest

from bindlab.stats import caption_stats, mention_stats, summarize

TYPES = ["size", "color", "texture"]


def _scenes() -> pl.DataFrame:
    # scene 0: three objects, obj 2 the most salient; scene 1: two objects, obj 0 the most salient
    rows = [
        (0, 0, "circle", "small", "red", "plain", 0.2, 2),
        (0, 1, "square", "medium", "blue", "striped", 0.8, 1),
        (0, 2, "star", "large", "green", "dotted", 0.5, 0),
        (1, 0, "heart", "large", "pink", "plain", 0.7, 0),
        (1, 1, "cross", "small", "cyan", "checkered", 0.1, 1),
    ]
    cols = ["scene_id", "obj", "shape", *TYPES, "x", "saliency_rank"]
    # the other attribute types, at one value each (these tests name only the three above)
    return pl.DataFrame(rows, schema=cols, orient="row").with_columns(
        pl.col("obj").cast(pl.Int8), pl.col("saliency_rank").cast(pl.Int8), pl.col("x").cast(pl.Float32),
        aspect=pl.lit("regular"), shade=pl.lit("vivid"), outline=pl.lit("unbordered"))


def _captions(rows: list[dict]) -> pl.DataFrame:
    schema = {"scene_id": pl.Int64, "caption": pl.String, "template": pl.Int8, "objects": pl.List(pl.Int8),
              "attrs": pl.List(pl.List(pl.String)), "hard_negatives": pl.List(pl.String),
              "hard_negative_swaps": pl.List(pl.String)}
    return pl.DataFrame([{"hard_negatives": [], "hard_negative_swaps": [], **r} for r in rows], schema=schema)


def test_exact_statistics_of_a_hand_built_table(tiny_params):
    scenes = _scenes()
    caps = _captions([
        # mentions obj 0 (size, color) then obj 1 (noun only); not the most salient; template 1
        {"scene_id": 0, "caption": "a picture of a small red circle and a square", "template": 1,
         "objects": [0, 1], "attrs": [["size", "color"], []]},
        # the most salient object of scene 1, all attributes, plus a word outside the vocabulary
        {"scene_id": 1, "caption": "a large pink plain heart teapot", "template": 0,
         "objects": [0], "attrs": [["size", "color", "texture"]],
         "hard_negatives": ["a large pink plain heart teapot"], "hard_negative_swaps": ["color"]},
    ])
    mentions = mention_stats(tiny_params, caps, scenes)
    assert mentions["n_attrs"].to_list() == [2, 0, 3]
    assert mentions["saliency_rank"].to_list() == [2, 1, 0]
    s = caption_stats(tiny_params, caps, scenes, mentions).to_dicts()
    a, b = s
    assert (a["n_objects"], a["n_mentioned"], a["completeness"]) == (3, 2, 2 / 3)
    assert a["attrs_by_object"] == [2, 0] and a["attrs_per_object"] == 1.0
    assert a["mentioned_ranks"] == [2, 1]
    assert (a["top_mentioned"], a["salient_prefix"], a["in_saliency_order"], a["in_left_to_right_order"]) == (0, 0, 0, 1)
    assert (a["n_words"], a["oov_words"], a["text_matches_record"]) == (10, 0, 1)
    assert (b["n_objects"], b["n_mentioned"], b["completeness"]) == (2, 1, 0.5)
    assert (b["top_mentioned"], b["salient_prefix"]) == (1, 1)
    assert (b["oov_words"], b["text_matches_record"]) == (1, 0)  # "teapot": outside, and not in the record
    assert (b["n_hard_negatives"], b["negatives_differ"], b["negatives_same_words"]) == (1, 0, 1)

    summary = summarize(pl.DataFrame(s), mentions)
    assert summary["means"]["attrs_per_mentioned_object"] == pytest.approx(5 / 3, abs=1e-6)  # per object, not caption
    assert summary["distributions"]["attrs_per_mentioned_object"] == {"0": pytest.approx(1 / 3, abs=1e-6),
                                                                      "2": pytest.approx(1 / 3, abs=1e-6),
                                                                      "3": pytest.approx(1 / 3, abs=1e-6)}


def test_broken_records_are_flagged_not_crashed(tiny_params):
    caps = _captions([
        {"scene_id": 0, "caption": "a circle", "template": 0, "objects": [0, 0], "attrs": [[], []]},  # twice
        {"scene_id": 1, "caption": "a heart", "template": 0, "objects": [5], "attrs": [[]]},  # no such object
        {"scene_id": 1, "caption": "a heart", "template": 0, "objects": [0], "attrs": [[], []]},  # lengths differ
        {"scene_id": 7, "caption": "a heart", "template": 0, "objects": [0], "attrs": [["weight"]]},  # no scene
    ])
    s = caption_stats(tiny_params, caps, _scenes())
    assert s["objects_unique"].to_list() == [0, 1, 1, 1]
    assert s["objects_exist"].to_list() == [1, 0, 0, 0]
    assert s["record_consistent"].to_list() == [1, 1, 0, 1]
    assert s["attrs_known"].to_list() == [1, 1, 0, 0]
    assert s["n_objects"].to_list()[3] is None  # the caption's scene is not in the scene table


@pytest.mark.parametrize("knobs", [dict(density=1.5, completeness=0.5), dict(objects_mentioned=1, saliency_bias=0.5),
                                   dict(order="left_to_right", hard_negatives=2, density=2)])
def test_statistics_of_real_captions(tiny_params, knobs):
    from bindlab.captions import make_captions
    from bindlab.scenes import sample_scenes
    scenes = sample_scenes(tiny_params, 3000, {2: 0.5, 3: 0.3, 4: 0.2}, "test/stats")
    caps = make_captions(tiny_params, scenes, tiny_params.base.model_copy(update=knobs), "test/stats")
    s = caption_stats(tiny_params, caps, scenes)
    assert s["text_matches_record"].min() == 1 and s["oov_words"].sum() == 0 and s["objects_exist"].min() == 1
    m = summarize(s, mention_stats(tiny_params, caps, scenes))["means"]
    if "density" in knobs:
        assert m["attrs_per_mentioned_object"] == pytest.approx(knobs["density"], abs=0.05)
    if knobs.get("objects_mentioned") == 1:
        assert m["objects_mentioned"] == 1.0
        # P(most salient mentioned) = b + (1 - b) * E[m/n]
        assert m["top_mentioned"] == pytest.approx(0.5 + 0.5 * m["completeness"], abs=0.04)
    if knobs.get("order") == "left_to_right":
        assert m["in_left_to_right_order"] == 1.0
    if knobs.get("hard_negatives"):
        assert s["negatives_differ"].min() == 1 and s["negatives_same_words"].min() == 1
        assert m["hard_negatives"] > 1.5


def test_stats_stage_writes_comparable_deterministic_outputs(tiny_data, tmp_path):
    from tiny import copy_study
    from bindlab.stats import stats_stage
    params, paths, _ = copy_study(tiny_data, tmp_path)
    first = {}
    for v in ("natural", "one_object"):
        summary = stats_stage(params, paths, v)
        assert json.loads((paths.stats(v) / "summary.json").read_text()) == summary
        first[v] = {f.name: f.read_bytes() for f in paths.stats(v).iterdir()}
        assert set(first[v]) == {"captions.parquet", "mentions.parquet", "summary.json", "summary.parquet"}
    stats_stage(params, paths, "natural")
    assert {f.name: f.read_bytes() for f in paths.stats("natural").iterdir()} == first["natural"]  # same bytes
    a, b = (json.loads((paths.stats(v) / "summary.json").read_text()) for v in ("natural", "one_object"))
    assert a["means"].keys() == b["means"].keys() and a["distributions"].keys() == b["distributions"].keys()
    assert a["means"]["top_mentioned"] == 1.0 and a["means"]["attrs_per_mentioned_object"] == 1.0
    assert b["distributions"]["objects_mentioned"] == {"1": 1.0}
    rows = pl.concat([pl.read_parquet(paths.stats(v) / "summary.parquet") for v in ("natural", "one_object")],
                     how="diagonal")
    assert rows["variant"].to_list() == ["natural", "one_object"]


def test_attribute_priority_is_checked_per_mention(tiny_params):
    """With captions.attribute_choice a priority list, a mention must name the first n types of it."""
    prio = ["color", "size", "texture", "shade", "aspect", "outline"]
    params = tiny_params.model_copy(update={"captions": tiny_params.captions.model_copy(
        update={"attribute_choice": prio})})
    caps = _captions([
        {"scene_id": 0, "caption": "a small red circle and a square", "template": 0, "objects": [0, 1],
         "attrs": [["size", "color"], []]},                       # first two of the priority, then none
        {"scene_id": 1, "caption": "a large heart", "template": 0, "objects": [0], "attrs": [["size"]]},  # not first
    ])
    m = mention_stats(params, caps, _scenes())
    assert m["attrs_as_declared"].to_list() == [True, True, False]
    assert mention_stats(tiny_params, caps, _scenes())["attrs_as_declared"].all()  # random: any subset
