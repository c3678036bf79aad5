"""Validation suites: the checks each target's data must pass, derived from what params.yaml declares.

The suites are built in code from the declaration (`Variant` in bindlab/params.py): declared density 2
-> mean attributes per mentioned object within 2 +- `validation.density_tolerance`; declared
completeness 1 -> every caption mentions every object; declared saliency bias b -> the most salient
object is mentioned in a fraction b + (1 - b) * mean(m/n) of the captions; and so on. Rates get a
tolerance of max(`fraction_tolerance`, z * standard error), the standard error following from the
declaration and the observed object counts, so a small set does not fail by chance.
The same is done for the scene tables and the benchmark.

A suite is plain data (tables and checks named by their GX expectation class), so building one needs
neither files nor Great Expectations: bindlab/expectations.py runs it, bindlab/validate.py reads the
inputs and writes the verdicts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from bindlab.params import Params, Variant
from bindlab.stats import allowed_words, bag_of_words, batch_summary, words_outside

BENCHMARK_PARTS = ("scenes", "images", "items", "probes", "counterfactual", "replace",
                   "replace_counterfactual")  # what benchmark_suite checks


@dataclass
class Check:
    """One expectation, kept as plain data until GX is imported: GX class name + kwargs + why."""
    table: str
    kind: str  # GX expectation class name, e.g. "ExpectColumnMeanToBeBetween"
    kwargs: dict
    why: str = ""


@dataclass
class Suite:
    """Tables (polars) and the checks on them, for one validation target."""
    name: str
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def add(self, table: str, kind: str, why: str = "", **kwargs) -> None:
        self.checks.append(Check(table, kind, kwargs, why))

    # shorthands for the common ones
    def between(self, table: str, column: str, lo, hi, why: str = "", **kw) -> None:
        self.add(table, "ExpectColumnValuesToBeBetween", why, column=column, min_value=lo, max_value=hi, **kw)

    def always(self, table: str, column: str, why: str = "") -> None:
        """A 0/1 flag column that must be 1 on every row."""
        self.between(table, column, 1, 1, why)

    def mean(self, table: str, column: str, lo: float, hi: float, why: str = "") -> None:
        self.add(table, "ExpectColumnMeanToBeBetween", why, column=column, min_value=round(lo, 6),
                 max_value=round(hi, 6))

    def not_null(self, table: str, *columns: str) -> None:
        for c in columns:
            self.add(table, "ExpectColumnValuesToNotBeNull", "", column=c)


def rate_bounds(expected: np.ndarray, variance: np.ndarray, tolerance: float, z: float,
                clip: bool = True) -> tuple[float, float]:
    """Bounds on the mean of independent per-row values with these expectations and variances
    (clipped to 0..1 for rates)."""
    n = max(len(expected), 1)
    mu = float(np.mean(expected)) if len(expected) else 0.0
    se = math.sqrt(float(np.sum(variance))) / n
    tol = max(tolerance, z * se)
    return (max(mu - tol, 0.0), min(mu + tol, 1.0)) if clip else (mu - tol, mu + tol)



# --- suites ------------------------------------------------------------------------------------------

def caption_suite(params: Params, v: Variant, name: str, cstats: pl.DataFrame, mentions: pl.DataFrame,
                  n_scenes: int, n_images: int, scenes: pl.DataFrame | None = None) -> Suite:
    """The checks a variant's captions must pass, derived from its declared properties; `scenes`, the
    variant's scene table, where it declares what its training batches must ask (`minimal_pairs`)."""
    cfg = params.validation
    s = Suite(name, {"captions": cstats, "mentions": mentions.drop("phrase", strict=False)})
    n_types = len(params.vocab.attribute_types)
    c = "captions"

    # generic data quality
    s.add(c, "ExpectTableRowCountToEqual", "one caption per scene of the scene set", value=n_scenes)
    s.not_null(c, "scene_id", "n_words")
    s.add(c, "ExpectColumnValuesToBeUnique", "one caption per image", column="scene_id")
    s.between(c, "scene_id", 0, n_images - 1, "every caption's image exists in the rendered data")
    s.not_null(c, "n_objects")  # null: the caption's scene is not in the scene table
    s.between(c, "oov_words", 0, 0, "vocabulary closed: no word outside the vocabulary and templates")
    s.always(c, "text_matches_record", "the text is exactly the one rebuilt from objects/attrs and the scene")
    s.always(c, "record_consistent", "objects and attrs have one entry per mentioned object")
    s.always(c, "objects_unique", "no object mentioned twice")
    s.always(c, "objects_exist", "every mentioned object exists in the scene")
    s.always(c, "attrs_known", "attrs name only attribute types, each once")
    s.between(c, "n_mentioned", 1, None, "at least one object mentioned")

    n_obj = cstats["n_objects"].fill_null(0).to_numpy().astype(np.float64)
    m = cstats["n_mentioned"].to_numpy().astype(np.float64)
    counts = sorted(int(k) for k in cstats["n_objects"].drop_nulls().unique())

    # completeness / objects mentioned
    if v.objects_mentioned is not None:
        k = v.objects_mentioned
        for n in counts:
            s.between(c, "n_mentioned", min(k, n), min(k, n), f"declared objects_mentioned {k}: exactly "
                      f"min({k}, n) objects", where=("n_objects", n))
    elif v.completeness == 1.0:
        s.between(c, "completeness", 1.0, 1.0, "declared completeness 1: every caption mentions every object")
    else:
        cpl = v.completeness
        for n in counts:
            lo, hi = max(1, math.floor(cpl * n)), max(1, math.ceil(cpl * n))
            s.between(c, "n_mentioned", lo, hi, f"declared completeness {cpl}: {cpl} x {n} objects, "
                      f"rounded stochastically, at least 1", where=("n_objects", n))
        target = cpl * n_obj
        frac = np.where(np.floor(target) >= 1, target - np.floor(target), 0.0)
        lo, hi = rate_bounds(np.maximum(target, 1) / np.maximum(n_obj, 1), frac * (1 - frac) / np.maximum(n_obj, 1) ** 2,
                             cfg.fraction_tolerance, cfg.z)
        s.mean(c, "completeness", lo, hi, f"declared completeness {cpl}: mean max(c*n, 1)/n")

    # which attributes: captions.attribute_choice (random: any subset; a priority: its first n)
    s.add("mentions", "ExpectColumnValuesToBeInSet", f"attribute choice {params.captions.attribute_choice}",
          column="attrs_as_declared", value_set=[True])
    # density: attributes per mentioned object
    d = v.density
    lo_d, hi_d = math.floor(d), min(math.ceil(d), n_types)
    s.between("mentions", "n_attrs", lo_d, hi_d, f"declared density {d}: floor/ceil of it per object")
    f = d - math.floor(d)
    tol = max(cfg.density_tolerance, cfg.z * math.sqrt(f * (1 - f) / max(len(mentions), 1)))
    s.mean("mentions", "n_attrs", d - tol, d + tol, f"declared density {d}: mean attributes per mentioned object")

    # saliency bias: P(most salient mentioned) = b + (1 - b) m/n; P(the m most salient) = b + (1 - b)/C(n, m)
    b = v.saliency_bias
    if b == 1.0:
        s.always(c, "top_mentioned", "declared saliency bias 1: the most salient object is always mentioned")
        s.always(c, "salient_prefix", "declared saliency bias 1: the mentioned objects are the most salient ones")
    else:
        ok = n_obj > 0
        p_top = b + (1 - b) * m[ok] / n_obj[ok]
        lo, hi = rate_bounds(p_top, p_top * (1 - p_top), cfg.fraction_tolerance, cfg.z)
        s.mean(c, "top_mentioned", lo, hi, f"declared saliency bias {b}: b + (1-b) * mean(m/n)")
        comb = np.array([math.comb(int(n), int(k)) if 0 <= k <= n else 1 for n, k in zip(n_obj[ok], m[ok])])
        p_pre = b + (1 - b) / comb
        lo, hi = rate_bounds(p_pre, p_pre * (1 - p_pre), cfg.fraction_tolerance, cfg.z)
        s.mean(c, "salient_prefix", lo, hi, f"declared saliency bias {b}: b + (1-b) * mean(1/C(n,m))")

    # order
    if v.order == "saliency":
        s.always(c, "in_saliency_order", "declared order saliency: most salient first")
    elif v.order == "left_to_right":
        s.always(c, "in_left_to_right_order", "declared order left_to_right: increasing x")
    else:
        p = 1 / np.array([math.factorial(int(k)) for k in m])
        lo, hi = rate_bounds(p, p * (1 - p), cfg.fraction_tolerance, cfg.z)
        s.mean(c, "in_saliency_order", lo, hi, "declared order random: saliency order by chance, mean(1/m!)")

    # hard negatives
    h = v.hard_negatives
    s.between(c, "n_hard_negatives", 0, h, f"declared hard_negatives {h}: at most {h} per caption")
    s.add(c, "ExpectColumnPairValuesToBeEqual", "one swap type per negative",
          column_A="n_hard_negatives", column_B="n_hard_negative_swaps")
    s.always(c, "negatives_differ", "a hard negative never equals its true caption")
    s.always(c, "negatives_same_words", "a hard negative has the true caption's bag of words")
    if v.minimal_pairs is not None:
        batch_checks(s, params, v, scenes)
    return s


def batch_checks(s: Suite, params: Params, v: Variant, scenes: pl.DataFrame | None) -> None:
    """Declared minimal_pairs x: in the training batches, every attribute type and the shape has a
    minimal pair for at least a share x of the images (the loss needs each type that often). The table
    `batches` is one row: the measured share per type."""
    if scenes is None:
        raise ValueError("caption_suite: a variant declaring minimal_pairs needs its scene table")
    b = batch_summary(params, v, scenes)
    s.tables["batches"] = pl.DataFrame([b["minimal_pair"]])
    x = v.minimal_pairs
    for t in b["minimal_pair"]:
        s.add("batches", "ExpectColumnMinToBeBetween", f"declared minimal_pairs {x:g}: at least {x:g} of the images "
              f"of the first {b['batches']} training batches (batch {b['batch_size']}, seed {b['seed']}) have a "
              f"batch-mate differing from them in {t} alone", column=t, min_value=x, max_value=1.0)


def _balance(params: Params, scenes: pl.DataFrame) -> pl.DataFrame:
    """One row per (column, value) of the vocabulary: how far its count is from an even share, beyond
    the +-1 that dealing whole objects cannot avoid, as a fraction of the even share (0 = balanced)."""
    rows = []
    for col, values in [("shape", params.vocab.shapes), *params.vocab.attributes.items()]:
        counts = dict(scenes[col].value_counts().iter_rows())
        even = len(scenes) / len(values)
        for val in values:
            excess = max(abs(counts.get(val, 0) - even) - 1, 0)
            rows.append({"column": col, "value": val, "count": counts.get(val, 0),
                         "deviation": excess / even if even else 0.0})
    return pl.DataFrame(rows, schema={"column": pl.String, "value": pl.String, "count": pl.Int64,
                                      "deviation": pl.Float64})


def _min_gaps(scenes: pl.DataFrame) -> pl.DataFrame:
    """Per scene: objects, and the smallest gap between two bounding circles (negative = overlap)."""
    o = scenes.select("scene_id", "obj", "x", "y", "radius")
    pairs = o.join(o, on="scene_id", suffix="_b").filter(pl.col("obj") < pl.col("obj_b"))
    gap = ((pl.col("x") - pl.col("x_b")) ** 2 + (pl.col("y") - pl.col("y_b")) ** 2).sqrt() \
        - pl.col("radius") - pl.col("radius_b")
    gaps = pairs.group_by("scene_id").agg(gap.min().alias("min_gap"))
    return (scenes.group_by("scene_id").agg(pl.len().cast(pl.Int64).alias("objects"),
                                            pl.col("n_objects").first().cast(pl.Int64))
            .join(gaps, on="scene_id", how="left").with_columns(pl.col("min_gap").fill_null(1.0))
            .sort("scene_id"))


def scene_suite(params: Params, name: str, scenes: pl.DataFrame, objects: dict[int, float], n: int,
                n_images: int, training: bool, suite: Suite | None = None) -> Suite:
    """Checks of a scene table: closed vocabulary, geometry, balance, objects per image, images exist."""
    cfg = params.validation
    s = suite or Suite(name)
    s.tables |= {"scenes": scenes, "scene_objects": _min_gaps(scenes), "balance": _balance(params, scenes)}
    t = "scenes"
    s.not_null(t, *scenes.columns)
    s.add(t, "ExpectCompoundColumnsToBeUnique", "one row per (scene_id, obj)", column_list=["scene_id", "obj"])
    s.add(t, "ExpectColumnValuesToBeInSet", "vocabulary closed", column="shape", value_set=params.vocab.shapes)
    for attr, values in params.vocab.attributes.items():
        s.add(t, "ExpectColumnValuesToBeInSet", "vocabulary closed", column=attr, value_set=values)
    s.add(t, "ExpectColumnPairValuesAToBeGreaterThanB", "saliency rank below the object count",
          column_A="n_objects", column_B="saliency_rank")
    s.between(t, "saliency_rank", 0, None)
    for c in ("x0", "y0"):
        s.between(t, c, 0.0, None, "inside the image")
    for c in ("x1", "y1"):
        s.between(t, c, None, 1.0, "inside the image")
    if training:
        s.add(t, "ExpectColumnValuesToBeInSet", "held-out combinations never in a training set",
              column="unseen", value_set=[False])

    g = "scene_objects"
    s.add(g, "ExpectTableRowCountToEqual", "scenes as declared", value=n)
    s.between(g, "scene_id", 0, n_images - 1, "every scene has its rendered image")
    s.add(g, "ExpectTableRowCountToEqual", "the image array holds exactly the scenes", value=n_images)
    s.add(g, "ExpectColumnPairValuesToBeEqual", "n_objects is the object count", column_A="objects",
          column_B="n_objects")
    s.add(g, "ExpectColumnValuesToBeInSet", "declared object counts", column="objects",
          value_set=sorted(int(k) for k, p in objects.items() if p > 0))
    counts = np.array(sorted(objects), dtype=np.float64)
    probs = np.array([objects[k] for k in sorted(objects)])
    mu = float(counts @ probs)
    var = float(((counts - mu) ** 2) @ probs)
    lo, hi = rate_bounds(np.full(n, mu), np.full(n, var), cfg.fraction_tolerance, cfg.z, clip=False)
    s.mean(g, "objects", lo, hi, f"declared objects per image {dict(objects)}: mean {mu:.3f}")
    s.between(g, "min_gap", 0.0, None, "objects never overlap (bounding circles disjoint)")

    bt = cfg.balance_tolerance
    s.between("balance", "deviation", 0.0, bt, f"every attribute value and shape within {bt:.0%} of an even share")
    return s


def _replace_facts(params: Params, scenes: pl.DataFrame, items: pl.DataFrame, replace: pl.DataFrame) -> pl.DataFrame:
    """The replace items with 0/1 facts from the scene table and the swap items: the new value is one of
    its type's and no object of the image has it; the negative (the counterfactual scene's caption)
    differs from the true caption in exactly one word, inside object `obj`'s phrase, where it replaces
    that object's value of `type` by `value`; the caption is the one of the image's swap items."""
    keys = [*params.vocab.attribute_types, "shape"]
    known = {(t, v) for t, values in [*params.vocab.attributes.items(), ("shape", params.vocab.shapes)] for v in values}
    objs = scenes.select("scene_id", pl.col("obj").cast(pl.Int64), *keys)
    values = {(r["scene_id"], r["obj"]): r for r in objs.iter_rows(named=True)}
    present = {(r["scene_id"], t, r[t]) for r in values.values() for t in keys}
    captions = dict(items.group_by("scene_id").agg(pl.col("caption").first()).iter_rows())
    prefix = len(params.captions.templates[0].split("{objects}")[0].split())
    rows = []
    for r in replace.iter_rows(named=True):
        old, new = r["caption"].split(), r["negative"].split()
        at = [i for i, (a, b) in enumerate(zip(old, new)) if a != b] if len(old) == len(new) else []
        scene_value = values.get((r["scene_id"], r["obj"]), {}).get(r["type"])
        one = len(at) == 1 and old[prefix:at[0]].count("and") == r["obj"] and old[at[0]] == scene_value \
            and new[at[0]] == r["value"]
        rows.append({"value_known": (r["type"], r["value"]) in known,
                     "value_absent": (r["scene_id"], r["type"], r["value"]) not in present,
                     "one_object_changed": one,
                     "caption_as_items": captions.get(r["scene_id"], r["caption"]) == r["caption"]})
    facts = pl.DataFrame(rows, schema={c: pl.Boolean for c in
                                       ("value_known", "value_absent", "one_object_changed", "caption_as_items")})
    return pl.concat([replace, facts.cast(pl.Int8)], how="horizontal")


def benchmark_suite(params: Params, bench: dict) -> Suite:
    """The benchmark's scenes, swap and replace items and probes; `bench`: the benchmark folder as
    contracts.read_benchmark reads it, with every part (BENCHMARK_PARTS)."""
    spec = params.benchmark
    scenes, n_images, n_cf = bench["scenes"], len(bench["images"]), len(bench["counterfactual"])
    keys = [*params.vocab.attribute_types, "shape"]
    s = scene_suite(params, "benchmark", scenes, spec.objects, spec.n, n_images, training=False)

    allowed = allowed_words(params)
    k = spec.density or len(params.vocab.attribute_types)
    template_words = len(params.captions.templates[0].replace("{objects}", " ").split())
    n_obj = pl.col("n_objects").cast(pl.Int64)
    common = (
        # every object phrase names benchmark.density attribute types: 'a', k values, the shape
        (pl.col("caption").str.split(" ").list.len() == template_words + n_obj * (k + 2) + n_obj - 1)
        .cast(pl.Int8).alias("declared_density"),
        (pl.col("caption") != pl.col("negative")).cast(pl.Int8).alias("negative_differs"),
        (words_outside(pl.col("caption"), allowed) + words_outside(pl.col("negative"), allowed)).alias("oov_words"))
    items = bench["items"].with_columns(
        *common,
        (bag_of_words(pl.col("caption")) == bag_of_words(pl.col("negative"))).cast(pl.Int8).alias("same_words"))
    replace = _replace_facts(params, scenes, bench["items"], bench["replace"]).with_columns(*common)
    probes = bench["probes"].with_columns(
        (pl.col("true_caption") != pl.col("false_caption")).cast(pl.Int8).alias("false_differs"),
        (words_outside(pl.col("true_caption"), allowed) + words_outside(pl.col("false_caption"), allowed))
        .alias("oov_words"))
    s.tables |= {"items": items, "replace": replace, "probes": probes}
    s.not_null("items", *items.columns)
    s.add("items", "ExpectColumnValuesToBeUnique", "", column="item_id")
    s.add("items", "ExpectTableRowCountToEqual", "one counterfactual image per item", value=n_cf)
    s.between("items", "scene_id", 0, n_images - 1, "every item's image exists")
    s.add("items", "ExpectColumnValuesToBeInSet", "swap an attribute type or the shape", column="swap",
          value_set=[*params.vocab.attribute_types, "shape"])
    s.add("items", "ExpectColumnDistinctValuesToContainSet", "every attribute type and the shape is swapped",
          column="swap", value_set=[*params.vocab.attribute_types, "shape"])
    s.always("items", "declared_density", f"every object phrase names benchmark.density = {k} attribute types")
    s.between("items", "n_objects", 2, None, "binding needs two objects")
    s.add("items", "ExpectColumnPairValuesAToBeGreaterThanB", "two different objects", column_A="obj_b",
          column_B="obj_a")
    s.add("items", "ExpectColumnPairValuesAToBeGreaterThanB", "swapped objects exist", column_A="n_objects",
          column_B="obj_b")
    s.always("items", "negative_differs", "a negative never equals its true caption")
    s.always("items", "same_words", "a negative has the true caption's bag of words")
    s.between("items", "oov_words", 0, 0, "vocabulary closed")
    r = "replace"
    s.not_null(r, *replace.columns)
    s.add(r, "ExpectColumnValuesToBeUnique", "", column="item_id")
    s.add(r, "ExpectTableRowCountToEqual", "one counterfactual image per replace item",
          value=len(bench["replace_counterfactual"]))
    s.between(r, "scene_id", 0, n_images - 1, "every replace item's image exists")
    s.add(r, "ExpectColumnValuesToBeInSet", "replace an attribute type or the shape", column="type", value_set=keys)
    s.add(r, "ExpectColumnDistinctValuesToContainSet", "every attribute type and the shape is replaced",
          column="type", value_set=keys)
    s.always(r, "value_known", "vocabulary closed: the new value is one of its type's values")
    s.always(r, "value_absent", "the new value is absent from the image: no object has it")
    s.always(r, "one_object_changed", "the negative changes exactly one word: object obj's value of type, to value")
    s.always(r, "caption_as_items", "the true caption is the one the image's swap items carry")
    s.always(r, "declared_density", f"every object phrase names benchmark.density = {k} attribute types")
    s.between(r, "obj", 0, None)
    s.add(r, "ExpectColumnPairValuesAToBeGreaterThanB", "the changed object exists", column_A="n_objects",
          column_B="obj")
    s.always(r, "negative_differs", "a negative never equals its true caption")
    s.between(r, "oov_words", 0, 0, "vocabulary closed")
    s.not_null("probes", *probes.columns)
    s.add("probes", "ExpectColumnValuesToBeUnique", "", column="probe_id")
    s.between("probes", "scene_id", 0, n_images - 1, "every probe's image exists")
    s.between("probes", "k", 1, len(params.vocab.attribute_types), "1 .. attribute types")
    s.always("probes", "false_differs", "the false probe differs from the true one")
    s.between("probes", "oov_words", 0, 0, "vocabulary closed")
    return s

