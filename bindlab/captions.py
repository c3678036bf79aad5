"""Captions from scene graphs, shaped by a variant's data-property knobs.

The choice of what a caption mentions is vectorised with numpy over all objects; the text is built
by polars string expressions; so 100k captions take well under a second. Each row records what it
mentions (`objects`, `attrs`), and `describe`/`caption_text` (bindlab/wording.py) rebuild the text from
that record.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from bindlab.contracts import scenes_of
from bindlab.errors import StageError
from bindlab.io import write_parquet
from bindlab.params import Params, Variant
from bindlab.paths import DataPaths
from bindlab.scenes import rng_for
from bindlab.wording import SEPARATOR, caption_text, describe, objects_of, swap_is_false


# --- hard negatives, one caption at a time ---------------------------------------------------

def hard_negatives(objs: list[dict], mentioned: list[int], attrs: list[list[str]], template: str,
                   count: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Up to `count` captions with one attribute type's values swapped between two mentioned objects."""
    candidates = []
    for a in range(len(mentioned)):
        for b in range(a + 1, len(mentioned)):
            oa, ob = objs[mentioned[a]], objs[mentioned[b]]
            da = {t: oa[t] for t in attrs[a]} | {"shape": oa["shape"]}
            db = {t: ob[t] for t in attrs[b]} | {"shape": ob["shape"]}
            for t in sorted(set(da) & set(db)):
                if da[t] == db[t]:
                    continue
                sa, sb = da | {t: db[t]}, db | {t: da[t]}
                if swap_is_false(objs, sa, sb):
                    candidates.append((a, b, t, sa, sb))
    if not candidates:
        return [], []
    picks = rng.permutation(len(candidates))[:count]
    texts, swaps = [], []
    for p in sorted(picks.tolist()):
        a, b, t, sa, sb = candidates[p]
        phrases = []
        for i, idx in enumerate(mentioned):
            d = sa if i == a else sb if i == b else {k: objs[idx][k] for k in attrs[i]} | {"shape": objs[idx]["shape"]}
            phrases.append(describe(d, attrs[i]))
        texts.append(caption_text(phrases, template))
        swaps.append(t)
    return texts, swaps


# --- the vectorised caption table ---------------------------------------------------------------

def _mentioned_counts(rng, v: Variant, n_objects: np.ndarray) -> np.ndarray:
    if v.objects_mentioned is not None:
        return np.minimum(v.objects_mentioned, n_objects)
    expected = v.completeness * n_objects
    m = np.floor(expected) + (rng.random(len(n_objects)) < expected - np.floor(expected))
    return np.clip(m, 1, n_objects).astype(np.int64)


def make_captions(params: Params, scenes: pl.DataFrame, v: Variant, stream: str) -> pl.DataFrame:
    rng = rng_for(params, "captions:" + stream)
    vocab = params.vocab
    types = vocab.attribute_types
    scenes = scenes.sort(["scene_id", "obj"])
    scene_of = scenes["scene_id"].to_numpy()
    n_scenes = int(scene_of.max()) + 1
    n_objects = np.bincount(scene_of, minlength=n_scenes)
    if (n_objects == 0).any():
        raise StageError(f"scene table has scenes without objects (e.g. scene {int(np.argmin(n_objects))})")
    starts = np.concatenate([[0], np.cumsum(n_objects)[:-1]])
    within = np.arange(len(scene_of)) - starts[scene_of]

    # Which objects: the m most salient with probability saliency_bias, else a uniform random subset.
    m = _mentioned_counts(rng, v, n_objects)
    biased = rng.random(n_scenes) < v.saliency_bias
    key = np.where(biased[scene_of], scenes["saliency_rank"].to_numpy().astype(np.float64),
                   rng.random(len(scene_of)))
    pos = np.empty(len(scene_of), dtype=np.int64)
    pos[np.lexsort((key, scene_of))] = within
    chosen = pos < m[scene_of]

    # In what order they are mentioned.
    if v.order == "random":
        order_key = rng.random(len(scene_of))
    elif v.order == "saliency":
        order_key = scenes["saliency_rank"].to_numpy().astype(np.float64)
    else:
        order_key = scenes["x"].to_numpy().astype(np.float64)

    # How many and which attributes per mentioned object: floor/ceil of density, mean exactly density.
    base = int(np.floor(v.density))
    n_attrs = np.minimum(base + (rng.random(len(scene_of)) < v.density - base), len(types))
    # Which: a uniformly random subset per object, or the first n_attrs of the declared priority.
    # (The random draw happens either way, so the other choices' random streams do not depend on it.)
    attr_rank = np.argsort(np.argsort(rng.random((len(scene_of), len(types))), axis=1), axis=1)
    choice = params.captions.attribute_choice
    if choice != "random":
        attr_rank = np.broadcast_to(np.array([choice.index(t) for t in types]), attr_rank.shape)
    named = attr_rank < n_attrs[:, None]  # (objects, attribute types)

    templates = params.captions.templates
    template = rng.integers(0, len(templates), n_scenes)

    objs = scenes.select("scene_id", "obj", "shape", *types).with_columns(
        pl.Series("_chosen", chosen), pl.Series("_order", order_key),
        *[pl.Series(f"_has_{t}", named[:, i]) for i, t in enumerate(types)],
    ).filter(pl.col("_chosen"))
    body = pl.concat_str([*[pl.when(pl.col(f"_has_{t}")).then(pl.col(t)) for t in types], pl.col("shape")],
                         separator=" ", ignore_nulls=True)
    objs = objs.with_columns(
        phrase=pl.lit("a ") + body,
        attrs=pl.concat_list([pl.when(pl.col(f"_has_{t}")).then(pl.lit(t)) for t in types]).list.drop_nulls(),
    ).sort(["scene_id", "_order"])
    table = objs.group_by("scene_id", maintain_order=True).agg(
        pl.col("phrase").str.join(SEPARATOR).alias("_objects_text"),
        pl.col("obj").alias("objects"),
        pl.col("attrs"),
    ).with_columns(template=pl.Series(template.astype(np.int8)))

    text = pl.col("_objects_text")
    caption = pl.lit(None, dtype=pl.String)
    for i, t in enumerate(templates):
        prefix, suffix = t.split("{objects}")
        caption = pl.when(pl.col("template") == i).then(pl.lit(prefix) + text + pl.lit(suffix)).otherwise(caption)
    table = table.with_columns(caption=caption).select("scene_id", "caption", "template", "objects", "attrs")

    if not v.hard_negatives:  # empty lists as a literal: building 100k of them in Python is half the time
        empty = pl.lit([], dtype=pl.List(pl.String))
        return table.with_columns(hard_negatives=empty, hard_negative_swaps=empty)
    negs, swaps = [[] for _ in range(n_scenes)], [[] for _ in range(n_scenes)]
    by_scene = objects_of(scenes)
    neg_rng = rng_for(params, stream + "/hard_negatives")
    for i, row in enumerate(table.iter_rows(named=True)):
        negs[i], swaps[i] = hard_negatives(by_scene[row["scene_id"]], row["objects"], row["attrs"],
                                           templates[row["template"]], v.hard_negatives, neg_rng)
    return table.with_columns(
        pl.Series("hard_negatives", negs, dtype=pl.List(pl.String)),
        pl.Series("hard_negative_swaps", swaps, dtype=pl.List(pl.String)),
    )


def expected_completeness(params: Params, v: Variant) -> float:
    """Mean fraction of objects mentioned implied by the declaration and the scene set's object counts."""
    objects = params.scene_sets[v.scenes].objects
    if v.objects_mentioned is not None:
        return sum(p * min(v.objects_mentioned, n) / n for n, p in objects.items())
    return sum(p * max(v.completeness * n, 1) / n for n, p in objects.items())


def captions_stage(params: Params, paths: DataPaths, variant: str) -> pl.DataFrame:
    v = params.variant(variant)
    scenes = scenes_of(params, paths, v.scenes)
    table = make_captions(params, scenes, v, stream=f"captions/{variant}")
    write_parquet(table, paths.captions(variant))
    print(f"{len(table)} captions for variant {variant!r} -> {paths.captions(variant)}")
    print("  e.g.", table["caption"][0])
    return table
