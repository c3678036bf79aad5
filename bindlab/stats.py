"""Caption statistics, from the recorded mentions (`objects`, `attrs`) joined with the scene table.

Nothing is parsed back out of the text: which objects and attributes a caption mentions comes from
its record. The text is only counted (words, words outside the vocabulary) and compared with the
text rebuilt from the record. Everything is vectorised with polars (100k captions in about a second).

`bindlab stats --variant V` writes `data/stats/V/`: `captions.parquet` (one row per caption),
`mentions.parquet` (one row per mentioned object), `summary.json` (DVC metrics: means and
distributions, the same keys for every variant) and `summary.parquet` (the same, one row).

`summary.json` also says what the variant's training batches ask of the model (`batches`): a contrastive
loss needs an attribute type only where an image has a batch-mate that differs from it in that type's
values alone (a minimal pair); where colour and shape single out an image in its batch, nothing else is
needed. Both are measured on the batches the training sampler draws (bindlab/sampler.py) for the
study's first seed, over the first BATCHES steps.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

from bindlab import sampler
from bindlab.contracts import captions_of, scenes_of
from bindlab.io import together, write_json, write_parquet
from bindlab.params import Params, Variant
from bindlab.paths import DataPaths
from bindlab.wording import SEPARATOR, function_words


def allowed_words(params: Params) -> list[str]:
    return sorted(params.vocab.words | function_words(params))


def words_outside(text: pl.Expr, allowed: list[str]) -> pl.Expr:
    """How many whitespace-separated words of `text` are not in `allowed`."""
    return text.str.split(" ").list.eval(pl.element().is_in(allowed).not_()).list.sum().cast(pl.Int64)


def bag_of_words(text: pl.Expr) -> pl.Expr:
    """The text's words, sorted, joined: equal for two texts with the same bag of words."""
    return text.str.split(" ").list.sort().list.join(" ")


def mention_stats(params: Params, captions: pl.DataFrame, scenes: pl.DataFrame) -> pl.DataFrame:
    """One row per mentioned object: its caption row, position in the caption, scene facts, attributes named."""
    types = params.vocab.attribute_types
    obj_cols = scenes.select("scene_id", pl.col("obj").cast(pl.Int64), "shape", *types,
                             pl.col("saliency_rank").cast(pl.Int64), "x")
    # Records whose `objects` and `attrs` differ in length cannot be paired; they get no mention rows
    # (and fail `record_consistent` in the caption statistics).
    paired = captions.with_row_index("row").filter(pl.col("objects").list.len() == pl.col("attrs").list.len())
    m = (paired.select("row", "scene_id", "objects", "attrs")
         .explode(["objects", "attrs"])
         .filter(pl.col("objects").is_not_null())
         .with_columns(pl.int_range(pl.len()).over("row").alias("position"),
                       pl.col("objects").cast(pl.Int64).alias("obj"))
         .drop("objects")
         .join(obj_cols, on=["scene_id", "obj"], how="left", maintain_order="left"))
    attrs = pl.col("attrs").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    phrase = pl.lit("a ") + pl.concat_str(
        [*[pl.when(attrs.list.contains(pl.lit(t))).then(pl.col(t)) for t in types], pl.col("shape")],
        separator=" ", ignore_nulls=True)
    choice = params.captions.attribute_choice
    if choice == "random":
        as_declared = pl.lit(True)
    else:  # a priority: the named types are the first n of it
        rank = {t: i for i, t in enumerate(choice)}
        worst = attrs.list.eval(pl.element().replace_strict(rank, default=len(types), return_dtype=pl.Int64)).list.max()
        as_declared = (attrs.list.len() == 0) | (worst < attrs.list.len())
    return m.with_columns(
        n_attrs=attrs.list.len().cast(pl.Int64),
        attrs_as_declared=as_declared,
        attrs_known=attrs.list.eval(pl.element().is_in(types)).list.all()
        & (attrs.list.n_unique() == attrs.list.len()),
        exists=pl.col("shape").is_not_null(),
        phrase=pl.when(pl.col("shape").is_not_null()).then(phrase),
    ).select("row", "scene_id", "position", "obj", "n_attrs", "attrs_known", "attrs_as_declared", "exists",
             "saliency_rank", "x",
             "phrase")


def caption_stats(params: Params, captions: pl.DataFrame, scenes: pl.DataFrame,
                  mentions: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per caption (same order as `captions`); every flag is 0/1 so that its mean is a rate."""
    mentions = mention_stats(params, captions, scenes) if mentions is None else mentions
    per_scene = scenes.group_by("scene_id").agg(
        pl.len().cast(pl.Int64).alias("n_objects"),
        pl.col("obj").filter(pl.col("saliency_rank") == 0).first().cast(pl.Int64).alias("_top"))
    per_caption = mentions.group_by("row").agg(
        pl.col("n_attrs"),
        pl.col("saliency_rank").alias("mentioned_ranks"),
        pl.col("n_attrs").mean().alias("attrs_per_object"),
        pl.col("attrs_known").all().alias("_attrs_known"),
        pl.col("exists").all().alias("_exists"),
        pl.col("saliency_rank").max().alias("_max_rank"),
        (pl.col("saliency_rank").diff().drop_nulls() > 0).all().alias("_rank_sorted"),
        (pl.col("x").diff().drop_nulls() >= 0).all().alias("_x_sorted"),
        pl.col("phrase").str.join(SEPARATOR).alias("_objects_text"),
        pl.col("phrase").null_count().alias("_bad_phrases"),
    )
    templates = params.captions.templates
    rebuilt = pl.lit(None, dtype=pl.String)
    for i, t in enumerate(templates):
        prefix, suffix = t.split("{objects}")
        rebuilt = pl.when(pl.col("template") == i).then(pl.lit(prefix) + pl.col("_objects_text") + pl.lit(suffix)
                                                        ).otherwise(rebuilt)
    allowed = allowed_words(params)
    negs = pl.col("hard_negatives").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    n_mentioned = pl.col("objects").list.len().cast(pl.Int64)
    flag = lambda e: e.fill_null(False).cast(pl.Int8)  # noqa: E731  (null = the check could not hold)

    table = (captions.with_row_index("row")
             .join(per_scene, on="scene_id", how="left", maintain_order="left")
             .join(per_caption, on="row", how="left", maintain_order="left"))
    neg_ok = _negative_checks(table)
    table = table.join(neg_ok, on="row", how="left", maintain_order="left")
    return table.select(
        "scene_id",
        "n_objects",
        n_mentioned.alias("n_mentioned"),
        (n_mentioned / pl.col("n_objects")).alias("completeness"),
        "attrs_per_object",
        pl.col("n_attrs").alias("attrs_by_object"),
        "mentioned_ranks",
        flag(pl.col("objects").list.contains(pl.col("_top"))).alias("top_mentioned"),
        # the mentioned objects are the m most salient ones
        flag((pl.col("_max_rank") == n_mentioned - 1) & pl.col("objects").is_not_null()).alias("salient_prefix"),
        flag(pl.col("_rank_sorted")).alias("in_saliency_order"),
        flag(pl.col("_x_sorted")).alias("in_left_to_right_order"),
        pl.col("caption").str.split(" ").list.len().cast(pl.Int64).alias("n_words"),
        words_outside(pl.col("caption"), allowed).alias("oov_words"),
        flag(pl.col("caption") == rebuilt).alias("text_matches_record"),
        flag(pl.col("objects").list.len() == pl.col("attrs").list.len()).alias("record_consistent"),
        flag(pl.col("objects").list.n_unique() == n_mentioned).alias("objects_unique"),
        flag(pl.col("_exists") & (pl.col("_bad_phrases") == 0)).alias("objects_exist"),
        flag(pl.col("_attrs_known")).alias("attrs_known"),
        negs.list.len().cast(pl.Int64).alias("n_hard_negatives"),
        pl.col("hard_negative_swaps").list.len().fill_null(0).cast(pl.Int64).alias("n_hard_negative_swaps"),
        flag(pl.col("_negatives_differ")).alias("negatives_differ"),
        flag(pl.col("_negatives_same_words")).alias("negatives_same_words"),
    )


def _negative_checks(table: pl.DataFrame) -> pl.DataFrame:
    """Per caption: no hard negative equals it; every one has exactly its bag of words."""
    negs = (table.select("row", "caption", pl.col("hard_negatives").fill_null(pl.lit([], dtype=pl.List(pl.String))))
            .explode("hard_negatives").filter(pl.col("hard_negatives").is_not_null()))
    checked = negs.group_by("row").agg(
        (pl.col("hard_negatives") != pl.col("caption")).all().alias("_negatives_differ"),
        (bag_of_words(pl.col("hard_negatives")) == bag_of_words(pl.col("caption"))).all()
        .alias("_negatives_same_words"))
    # captions without negatives pass both checks vacuously
    return table.select("row").join(checked, on="row", how="left").with_columns(
        pl.col("_negatives_differ", "_negatives_same_words").fill_null(True))


# --- per-variant summary -------------------------------------------------------------------------

def _distribution(values: pl.Series) -> dict[str, float]:
    """value -> fraction, keys as strings (JSON), in value order."""
    values = values.drop_nulls()
    if len(values) == 0:
        return {}
    counts = values.value_counts().sort(values.name)
    total = counts["count"].sum()
    return {_key(v): round(c / total, 6) for v, c in counts.iter_rows()}


def _key(v) -> str:
    return str(int(v)) if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer()) else f"{v:.3f}"


def summarize(cstats: pl.DataFrame, mentions: pl.DataFrame) -> dict:
    """Means and distributions of one variant's captions; the same keys for every variant."""
    def mean(col: str, frame: pl.DataFrame = cstats) -> float | None:
        v = frame[col].mean()
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)

    return {
        "captions": len(cstats),
        "mentions": len(mentions),
        "means": {
            "objects_in_image": mean("n_objects"),
            "objects_mentioned": mean("n_mentioned"),
            "completeness": mean("completeness"),
            "attrs_per_mentioned_object": mean("n_attrs", mentions),
            "top_mentioned": mean("top_mentioned"),
            "salient_prefix": mean("salient_prefix"),
            "mentioned_saliency_rank": mean("saliency_rank", mentions),
            "in_saliency_order": mean("in_saliency_order"),
            "in_left_to_right_order": mean("in_left_to_right_order"),
            "caption_words": mean("n_words"),
            "oov_words": mean("oov_words"),
            "hard_negatives": mean("n_hard_negatives"),
        },
        "distributions": {
            "objects_in_image": _distribution(cstats["n_objects"]),
            "objects_mentioned": _distribution(cstats["n_mentioned"]),
            "completeness": _distribution(cstats["completeness"]),
            "attrs_per_mentioned_object": _distribution(mentions["n_attrs"]),
            "mentioned_saliency_rank": _distribution(mentions["saliency_rank"]),
            "caption_words": _distribution(cstats["n_words"]),
            "hard_negatives": _distribution(cstats["n_hard_negatives"]),
        },
    }


def summary_row(variant: str, summary: dict) -> pl.DataFrame:
    """The summary as one flat row (means, then distributions as `dist.STAT.VALUE`): concat across variants."""
    row = {"variant": variant, "captions": summary["captions"], "mentions": summary["mentions"]}
    row |= {k: v for k, v in summary["means"].items()}
    for stat, dist in summary["distributions"].items():
        row |= {f"dist.{stat}.{k}": v for k, v in dist.items()}
    if "batches" in summary:
        b = summary["batches"]
        row |= {f"minimal_pair.{t}": share for t, share in b["minimal_pair"].items()}
        row |= {"singled_out_by_color_shape": b["singled_out_by_color_shape"]}
    return pl.DataFrame([row])


# --- what the training batches ask of the model ------------------------------------------------------

# Steps whose batches the statistic covers (fewer when the variant trains fewer): 200 batches of 128
# measure a share to about +-0.003 and take a fraction of a second on 40k scenes.
BATCHES = 200
SINGLING_OUT = ("shape", "color")   # the cheap types: what the loss is solved from when they suffice


def _objects(scenes: pl.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(scene id, place in the scene, {column: value code}) per object; codes are dense ranks (0 =
    missing), so any value compares, known to the vocabulary or not."""
    frame = scenes.sort("scene_id", "obj").select(
        "scene_id", pl.int_range(pl.len()).over("scene_id").alias("_pos"),
        *[pl.col(c).rank("dense").fill_null(0).cast(pl.Int64).alias(c) for c in columns])
    return frame["scene_id"].to_numpy(), frame["_pos"].to_numpy(), {c: frame[c].to_numpy() for c in columns}


def _keys(objects: tuple, columns: list[str], n: int) -> np.ndarray:
    sid, pos, values = objects
    code = np.zeros(len(sid), dtype=np.int64)
    for c in columns:
        code = code * (int(values[c].max(initial=0)) + 1) + values[c]
    table = np.zeros((n, int(pos.max(initial=0)) + 1), dtype=np.int64)   # 0 pads scenes with fewer objects
    table[sid, pos] = code + 1
    table.sort(axis=1)
    # the sorted row, folded one place at a time into a dense id (stays far inside int64)
    key = np.zeros(n, dtype=np.int64)
    for j in range(table.shape[1]):
        place = np.unique(table[:, j], return_inverse=True)[1].reshape(-1)
        key = np.unique(key * (int(place.max(initial=0)) + 1) + place, return_inverse=True)[1].reshape(-1)
    return key


def scene_keys(scenes: pl.DataFrame, columns: list[str], n: int) -> np.ndarray:
    """Per scene 0..n-1: an integer naming the multiset of its objects' tuples of `columns` (equal
    integers <=> equal multisets; exact, no hashing). Position is never a column: it tells no object
    from another in a caption."""
    return _keys(_objects(scenes, columns), columns, n)


def _mates(keys: np.ndarray) -> np.ndarray:
    """(batches, size) keys -> for each image, how many images of its batch (itself included) share its key."""
    rows = np.arange(keys.shape[0], dtype=np.int64)[:, None] * (int(keys.max(initial=0)) + 1)
    _, inverse, counts = np.unique((rows + keys).reshape(-1), return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)].reshape(keys.shape)


def batch_needs(scenes: pl.DataFrame, types: list[str], idx: np.ndarray, n: int) -> dict:
    """On batches `idx` ((batches, size) scene ids of a scene table of n scenes): per attribute type
    and the shape, the share of images with a minimal pair in their batch (a batch-mate whose scene
    equals theirs once that type is ignored, but not with it); and the share that shape and colour
    alone single out (no batch-mate has the same multiset of (shape, colour) pairs)."""
    columns = ["shape", *types]
    objects = _objects(scenes, columns)
    same = _mates(_keys(objects, columns, n)[idx])
    pairs = {}
    for t in [*types, "shape"]:
        # every batch-mate equal in full is equal without t too: the excess differs in t alone
        pairs[t] = round(float(np.mean(_mates(_keys(objects, [c for c in columns if c != t], n)[idx]) > same)), 6)
    single = _mates(_keys(objects, list(SINGLING_OUT), n)[idx]) == 1
    return {"minimal_pair": pairs, "singled_out_by_color_shape": round(float(np.mean(single)), 6)}


def training_batches(params: Params, v: Variant) -> np.ndarray:
    """The variant's first min(steps, BATCHES) training batches of the study's first seed."""
    return sampler.batches(params.scene_sets[v.scenes].n, params.study.seeds[0], min(v.steps, BATCHES),
                           v.batch_size)


def batch_summary(params: Params, v: Variant, scenes: pl.DataFrame) -> dict:
    """`summary.json`'s `batches`: what the variant's training batches ask of the model, and on which batches."""
    idx = training_batches(params, v)
    return {"seed": params.study.seeds[0], "batch_size": v.batch_size, "batches": idx.shape[0], "images": idx.size,
            **batch_needs(scenes, params.vocab.attribute_types, idx, params.scene_sets[v.scenes].n)}


def variant_stats(params: Params, paths: DataPaths, variant: str,
                  scenes: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(caption statistics, mention statistics) of a variant, from its caption and scene tables."""
    v = params.variant(variant)
    captions = captions_of(params, paths, variant)
    scenes = scenes_of(params, paths, v.scenes) if scenes is None else scenes
    mentions = mention_stats(params, captions, scenes)
    return caption_stats(params, captions, scenes, mentions), mentions


def stats_stage(params: Params, paths: DataPaths, variant: str) -> dict:
    v = params.variant(variant)
    scenes = scenes_of(params, paths, v.scenes)
    cstats, mentions = variant_stats(params, paths, variant, scenes)
    summary = summarize(cstats, mentions) | {"batches": batch_summary(params, v, scenes)}
    out = paths.stats(variant)
    with together():
        write_parquet(cstats, out / "captions.parquet")
        write_parquet(mentions.drop("phrase"), out / "mentions.parquet")
        write_parquet(summary_row(variant, summary), out / "summary.parquet")
        write_json(out / "summary.json", summary)
    means, b = summary["means"], summary["batches"]
    print(f"stats of {variant!r}: {summary['captions']} captions, {means['objects_mentioned']:.3f} of "
          f"{means['objects_in_image']:.3f} objects mentioned, {means['attrs_per_mentioned_object']:.3f} "
          f"attributes per mentioned object, most salient mentioned {means['top_mentioned']:.3f}; in its first "
          f"{b['batches']} batches colour and shape single out {b['singled_out_by_color_shape']:.3f} of the images, "
          f"minimal pairs: {', '.join(f'{t} {x:.3f}' for t, x in b['minimal_pair'].items())} -> {out}")
    return summary
