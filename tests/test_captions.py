"""Each caption knob hits its declared statistic on 10k captions; records rebuild the text exactly."""
from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest

from bindlab.captions import make_captions
from bindlab.scenes import sample_scenes
from bindlab.wording import caption_text, describe, function_words, matches, objects_of

N = 10_000


@pytest.fixture(scope="module")
def scenes():
    from bindlab.params import load_params
    from tiny import REPO
    return sample_scenes(load_params(REPO / "params.yaml"), N, {2: 0.34, 3: 0.33, 4: 0.33}, "test")


@pytest.fixture(scope="module")
def params():
    from bindlab.params import load_params
    from tiny import REPO
    return load_params(REPO / "params.yaml")


def _captions(params, scenes, **knobs):
    return make_captions(params, scenes, params.base.model_copy(update=knobs), "test")


def _stats(caps: pl.DataFrame, scenes: pl.DataFrame) -> pl.DataFrame:
    n = scenes.group_by("scene_id").agg(pl.len().alias("n"), pl.col("obj").filter(pl.col("saliency_rank") == 0).first().alias("top"))
    return caps.join(n, on="scene_id").with_columns(
        m=pl.col("objects").list.len(),
        attrs_per_obj=pl.col("attrs").list.eval(pl.element().list.len()),
        top_mentioned=pl.col("objects").list.contains(pl.col("top")),
    )


@pytest.mark.parametrize("density", [0, 1, 2, 3, 1.5])
def test_density_is_the_mean_attributes_per_mentioned_object(params, scenes, density):
    s = _stats(_captions(params, scenes, density=density), scenes)
    per_object = s["attrs_per_obj"].explode()
    assert density - 0.05 <= per_object.mean() <= density + 0.05
    assert per_object.min() >= np.floor(density) and per_object.max() <= np.ceil(density)


@pytest.mark.parametrize("completeness", [1.0, 0.5, 0.25])
def test_completeness_is_the_fraction_of_objects_mentioned(params, scenes, completeness):
    s = _stats(_captions(params, scenes, completeness=completeness), scenes)
    fraction = (s["m"] / s["n"])
    assert (s["m"] >= 1).all()
    # stochastic rounding of completeness * n keeps the mean exact, except that at least one
    # object is always mentioned
    target = completeness * s["n"].to_numpy()
    expected = np.where(np.floor(target) == 0, 1.0, target).mean()
    assert abs(s["m"].mean() - expected) < 0.03
    if completeness == 1.0:
        assert (fraction == 1.0).all()
    if completeness == 0.5:
        assert 0.48 <= fraction.mean() <= 0.52


def test_objects_mentioned_is_exact(params, scenes):
    s = _stats(_captions(params, scenes, objects_mentioned=1), scenes)
    assert (s["m"] == 1).all()


@pytest.mark.parametrize("bias", [0.0, 0.5, 1.0])
def test_saliency_bias_sets_how_often_the_most_salient_object_is_mentioned(params, scenes, bias):
    s = _stats(_captions(params, scenes, objects_mentioned=1, saliency_bias=bias), scenes)
    expected = bias + (1 - bias) * (1 / s["n"]).mean()
    assert abs(s["top_mentioned"].mean() - expected) < 0.02
    if bias == 1.0:
        assert s["top_mentioned"].all()


def test_order_by_saliency_and_left_to_right(params, scenes):
    ranks = {(r["scene_id"], r["obj"]): (r["saliency_rank"], r["x"]) for r in scenes.iter_rows(named=True)}
    for order, key in [("saliency", 0), ("left_to_right", 1)]:
        caps = _captions(params, scenes.filter(pl.col("scene_id") < 500), order=order)
        for row in caps.iter_rows(named=True):
            values = [ranks[row["scene_id"], o][key] for o in row["objects"]]
            assert values == sorted(values)


def test_text_is_rebuilt_exactly_from_the_recorded_mentions(params, scenes):
    caps = _captions(params, scenes.filter(pl.col("scene_id") < 2000), density=1.5, completeness=0.7)
    objs = objects_of(scenes.filter(pl.col("scene_id") < 2000))
    vocab_words = params.vocab.words | function_words(params)
    for row in caps.iter_rows(named=True):
        phrases = [describe(objs[row["scene_id"]][o], a) for o, a in zip(row["objects"], row["attrs"])]
        assert caption_text(phrases, params.captions.templates[row["template"]]) == row["caption"]
        assert set(row["caption"].split()) <= vocab_words


def test_hard_negatives_swap_binding_and_are_false(params, scenes):
    sub = scenes.filter(pl.col("scene_id") < 1500)
    caps = _captions(params, sub, hard_negatives=2, density=2)
    objs = objects_of(sub)
    types = params.vocab.attribute_types
    assert caps["hard_negatives"].list.len().mean() > 1.5
    for row in caps.iter_rows(named=True):
        assert len(row["hard_negatives"]) == len(row["hard_negative_swaps"]) <= 2
        for neg in row["hard_negatives"]:
            assert neg != row["caption"]
            assert Counter(neg.split()) == Counter(row["caption"].split())  # same bag of words
            # false of the image: some phrase of the negative fits no object
            phrases = neg.removeprefix("a picture of ").removesuffix(" on a black background").split(" and ")
            fits = []
            for phrase, attrs in zip(phrases, row["attrs"]):
                words = phrase.split()[1:]
                desc = dict(zip([*attrs, "shape"], words))
                assert set(desc) <= set(types) | {"shape"}
                fits.append(any(matches(o, desc) for o in objs[row["scene_id"]]))
            assert not all(fits)


def test_same_params_same_bytes(params, scenes, tmp_path):
    from bindlab.io import write_parquet
    a = _captions(params, scenes, density=1.5, completeness=0.5, hard_negatives=1)
    b = _captions(params, scenes, density=1.5, completeness=0.5, hard_negatives=1)
    write_parquet(a, tmp_path / "a.parquet")
    write_parquet(b, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@pytest.mark.parametrize("density", [4, 5, 6, 4.5])
def test_density_spans_every_attribute_type(params, scenes, density):
    """Above the old three types: the fraction still mixes the two neighbours, mean exact."""
    s = _stats(_captions(params, scenes, density=density), scenes)
    per_object = s["attrs_per_obj"].explode()
    assert len(params.vocab.attribute_types) == 6
    assert density - 0.05 <= per_object.mean() <= density + 0.05
    assert per_object.min() >= np.floor(density) and per_object.max() <= np.ceil(density)


def test_attribute_choice_random_or_declared_priority(params, scenes):
    types = params.vocab.attribute_types
    named = Counter(t for attrs in _captions(params, scenes, density=2)["attrs"].to_list() for a in attrs for t in a)
    share = np.array([named[t] for t in types]) / sum(named.values())
    assert np.abs(share - 1 / len(types)).max() < 0.02  # random: every type named about equally often
    priority = ["color", "outline", "size", "texture", "shade", "aspect"]
    prio = params.model_copy(update={"captions": params.captions.model_copy(update={"attribute_choice": priority})})
    caps = _captions(prio, scenes, density=2.5)
    for attrs in caps["attrs"].head(500).to_list():
        for a in attrs:
            assert set(a) == set(priority[:len(a)]) and len(a) in (2, 3)


def test_longest_caption_fits_the_text_context(params):
    """Four objects, every attribute, the longest template: the words tokenizer keeps every word."""
    from bindlab.model import WordTokenizer
    from bindlab.params import MAX_OBJECTS, longest_caption_words
    objs = [{t: v[-1] for t, v in params.vocab.attributes.items()} | {"shape": params.vocab.shapes[i]}
            for i in range(MAX_OBJECTS)]
    longest = max((caption_text([describe(o, params.vocab.attribute_types) for o in objs], t)
                   for t in params.captions.templates), key=lambda c: len(c.split()))
    assert len(longest.split()) == longest_caption_words(params)
    for name, cfg in params.model.configs.items():
        tok = WordTokenizer.for_params(params, cfg.text.context_length)
        ids = tok([longest])[0]
        assert ids[len(longest.split()) + 1] == tok.eot_id, name  # every word, then the end: no truncation
