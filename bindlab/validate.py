"""Validation with Great Expectations: each variant's captions must have the properties it declares.

The suites are built in code from the declaration (`Variant` in bindlab/params.py): declared density 2
-> mean attributes per mentioned object within 2 +- `validation.density_tolerance`; declared
completeness 1 -> every caption mentions every object; declared saliency bias b -> the most salient
object is mentioned in a fraction b + (1 - b) * mean(m/n) of the captions; and so on. Rates get a
tolerance of max(`fraction_tolerance`, z * standard error), the standard error following from the
declaration and the observed object counts, so a small set does not fail by chance.
The same is done for the scene tables and the benchmark.

GX validates pandas frames of statistics computed with polars (bindlab/stats.py); it is imported
inside `run_suites` only (about 3.5 s). Each target writes, under `data/validation/TARGET/`:
`results.json` (every expectation: table, column, expected, observed, pass; the Data Docs page of
each table) and, only when everything passed, `passed.json`, the marker training requires
(`require_passed`). The folder is built aside and moved into place, so a stale marker never survives
a failed run. GX's own output carries run times, so it goes to the run record
`data/runs/validation/TARGET/` (`DataPaths.record`, not hashed by DVC): `gx_results.json` and
`docs/` (Data Docs). GX runs under a fixed run id, so the page paths are the same on every run.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from bindlab import datadocs
from bindlab.errors import StageError
from bindlab.io import atomic_dir, write_json
from bindlab.params import Params, Variant
from bindlab.paths import DataPaths

RESERVED = ("scenes", "benchmark")  # folder names under data/validation/ that are not variants


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
                  n_scenes: int, n_images: int) -> Suite:
    """The checks a variant's captions must pass, derived from its declared properties."""
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
    return s


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


def benchmark_suite(params: Params, paths: DataPaths) -> Suite:
    """The benchmark's scenes, swap items and probes."""
    from bindlab.stats import allowed_words, bag_of_words, words_outside

    from bindlab.contracts import read_benchmark

    spec = params.benchmark
    bench = read_benchmark(paths.benchmark, spec.n, ("scenes", "images", "items", "probes", "counterfactual"))
    scenes, n_images, n_cf = bench["scenes"], len(bench["images"]), len(bench["counterfactual"])
    s = scene_suite(params, "benchmark", scenes, spec.objects, spec.n, n_images, training=False)

    allowed = allowed_words(params)
    k = spec.density or len(params.vocab.attribute_types)
    template_words = len(params.captions.templates[0].replace("{objects}", " ").split())
    n_obj = pl.col("n_objects").cast(pl.Int64)
    items = bench["items"].with_columns(
        # every object phrase names benchmark.density attribute types: 'a', k values, the shape
        (pl.col("caption").str.split(" ").list.len() == template_words + n_obj * (k + 2) + n_obj - 1)
        .cast(pl.Int8).alias("declared_density"),
        (pl.col("caption") != pl.col("negative")).cast(pl.Int8).alias("negative_differs"),
        (bag_of_words(pl.col("caption")) == bag_of_words(pl.col("negative"))).cast(pl.Int8).alias("same_words"),
        (words_outside(pl.col("caption"), allowed) + words_outside(pl.col("negative"), allowed)).alias("oov_words"))
    probes = bench["probes"].with_columns(
        (pl.col("true_caption") != pl.col("false_caption")).cast(pl.Int8).alias("false_differs"),
        (words_outside(pl.col("true_caption"), allowed) + words_outside(pl.col("false_caption"), allowed))
        .alias("oov_words"))
    s.tables |= {"items": items, "probes": probes}
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
    s.not_null("probes", *probes.columns)
    s.add("probes", "ExpectColumnValuesToBeUnique", "", column="probe_id")
    s.between("probes", "scene_id", 0, n_images - 1, "every probe's image exists")
    s.between("probes", "k", 1, len(params.vocab.attribute_types), "1 .. attribute types")
    s.always("probes", "false_differs", "the false probe differs from the true one")
    s.between("probes", "oov_words", 0, 0, "vocabulary closed")
    return s


# --- running GX --------------------------------------------------------------------------------------

def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else round(float(x), 6)
    if isinstance(x, np.bool_):
        return bool(x)
    if x is None or isinstance(x, (int, str, bool)):
        return x
    return str(x)


def _num(x) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _expected(kind: str, kw: dict) -> str:
    if "min_value" in kw or "max_value" in kw:
        lo, hi = kw.get("min_value"), kw.get("max_value")
        text = f"{'-inf' if lo is None else _num(lo)} .. {'inf' if hi is None else _num(hi)}"
    elif "value_set" in kw:
        text = "in " + ", ".join(map(str, kw["value_set"]))
    elif "value" in kw:
        text = f"= {kw['value']}"
    elif kind == "ExpectColumnPairValuesAToBeGreaterThanB":
        text = f"{kw['column_A']} > {kw['column_B']}"
    elif kind == "ExpectColumnPairValuesToBeEqual":
        text = f"{kw['column_A']} == {kw['column_B']}"
    elif kind == "ExpectColumnValuesToNotBeNull":
        text = "no nulls"
    elif kind in ("ExpectColumnValuesToBeUnique", "ExpectCompoundColumnsToBeUnique"):
        text = "unique"
    else:
        text = kind
    if kw.get("row_condition"):
        text += f" where {kw['row_condition']}"
    return text


def _observed(result: dict) -> str:
    if "observed_value" in result:
        v = result["observed_value"]
        return f"{v:.6g}" if isinstance(v, float) else str(v)
    if "unexpected_count" in result:
        examples = ", ".join(map(str, (result.get("partial_unexpected_list") or [])[:5]))
        return (f"{result['unexpected_count']} of {result.get('element_count')} rows "
                f"({result.get('unexpected_percent') or 0:.2f}%) outside" + (f", e.g. {examples}" if examples else ""))
    return "-"


GX_RUN_TIME = "2000-01-01T00:00:00+00:00"  # a fixed run time: GX puts it in the Data Docs page paths


def run_suites(suite: Suite, docs: Path) -> tuple[list[dict], dict, dict]:
    """Run every table's checks with GX; Data Docs under `docs`.
    -> (rows for results.json, GX results, table -> its Data Docs page relative to `docs`)."""
    import datetime
    import logging

    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.row_conditions import Column

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.add_data_docs_site(site_name="local", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(docs).resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    source = ctx.data_sources.add_pandas(suite.name)
    definitions, frames = [], {}
    for table, frame in suite.tables.items():
        checks = [c for c in suite.checks if c.table == table]
        if not checks:
            continue
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        gx_suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite.name}.{table}"))
        for c in checks:
            kw = dict(c.kwargs)
            if "where" in kw:  # (column, value): the check applies to the rows where column == value
                col, value = kw.pop("where")
                kw["row_condition"] = Column(col) == value
            gx_suite.add_expectation(getattr(gx.expectations, c.kind)(**kw, notes=c.why or None,
                                                                      meta={"kind": c.kind}))
        definitions.append(ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite.name}.{table}", data=batch, suite=gx_suite)))
        frames[table] = frame.to_pandas()  # GX runs on pandas; polars stops at this boundary
    rows, raw, pages = [], {}, {}
    run_id = RunIdentifier(run_name=suite.name, run_time=datetime.datetime.fromisoformat(GX_RUN_TIME))
    for vd in definitions:
        table = vd.name.split(".", 1)[1]
        cp = ctx.checkpoints.add(gx.Checkpoint(
            name=vd.name, validation_definitions=[vd], result_format={"result_format": "SUMMARY"},
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["local"])]))
        result = cp.run(batch_parameters={"dataframe": frames[table]}, run_id=run_id)
        new = sorted(set((Path(docs) / "validations").rglob("*.html")) - set(pages.values()))
        if new:
            pages[table] = new[0]
        for vr in result.run_results.values():
            raw[table] = vr.to_json_dict()
            for r in vr.results:
                cfg = r.expectation_config
                kw = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
                rc = kw.get("row_condition")
                if isinstance(rc, dict) and "column" in rc:
                    kw["row_condition"] = f"{rc['column']['name']} {rc['operator']} {rc['parameter']}"
                rows.append(_jsonable({
                    "table": table, "expectation": cfg.type,
                    "column": kw.get("column") or ", ".join(kw.get("column_list") or [])
                    or f"{kw.get('column_A', '')}, {kw.get('column_B', '')}".strip(", ") or "(table)",
                    "expected": _expected((cfg.meta or {}).get("kind", cfg.type), kw),
                    "observed": "error: " + str(r.exception_info.get("exception_message"))
                    if (r.exception_info or {}).get("raised_exception") else _observed(r.result),
                    "success": bool(r.success), "why": cfg.notes or "",
                }))
    return rows, _jsonable(raw), {t: p.relative_to(docs).as_posix() for t, p in pages.items()}


# --- stages -------------------------------------------------------------------------------------------

def md5(path: Path) -> str:
    import hashlib
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _write_results(suite: Suite, out: Path, record: Path, validated: dict | None = None) -> dict:
    """Run the suite; build the result folder aside and move it over `out`; GX's run-dependent output
    (results with run times, Data Docs) likewise to `record`. -> results."""
    with atomic_dir(out) as tmp, atomic_dir(record) as gx_tmp:
        rows, raw, pages = run_suites(suite, gx_tmp / "docs")
        if not datadocs.make_offline(gx_tmp / "docs"):
            print("Data Docs keep their CDN links (the pages need a network): "
                  "run `python -m bindlab.datadocs install` to ship their scripts and styles", file=sys.stderr)
        failed = [r for r in rows if not r["success"]]
        results = {"target": suite.name, "success": not failed, "evaluated": len(rows), "failed": len(failed),
                   "docs": pages, "expectations": rows}
        write_json(tmp / "results.json", results)
        (gx_tmp / "gx_results.json").write_text(json.dumps(raw, indent=1, sort_keys=True, default=str) + "\n")
        if not failed:
            write_json(tmp / "passed.json", {"target": suite.name, "expectations": len(rows)}
                       | ({"validated": validated} if validated else {}))
    return results


def _run(suite: Suite, paths: DataPaths, out: Path, validated: dict | None = None) -> dict:
    results = _write_results(suite, out, paths.record(out), validated)
    _report(results, out, paths.record(out))
    return results


def _report(results: dict, out: Path, record: Path) -> None:
    """Print the verdict; raise (exit status 2) with every failed expectation when any failed."""
    if results["success"]:
        print(f"validation of {results['target']}: all {results['evaluated']} expectations passed -> {out}")
        return
    lines = [f"validation of {results['target']} FAILED: {results['failed']} of {results['evaluated']} "
             f"expectations (details {out / 'results.json'}, Data Docs {record / 'docs' / 'index.html'})"]
    for r in results["expectations"]:
        if not r["success"]:
            lines.append(f"  {r['table']}.{r['column']}: {r['expectation']} expected {r['expected']}, "
                         f"observed {r['observed']}" + (f" ({r['why']})" if r["why"] else ""))
    raise StageError("\n".join(lines))


def validate_variant(params: Params, paths: DataPaths, variant: str) -> dict:
    from bindlab.contracts import captions_of, images_of, scenes_of
    from bindlab.stats import caption_stats, mention_stats

    if variant in RESERVED:
        raise StageError(f"variant name {variant!r} is reserved under {paths.root / 'validation'}; rename it")
    v = params.variant(variant)
    captions = captions_of(params, paths, variant)
    scenes = scenes_of(params, paths, v.scenes)
    n_images = len(images_of(params, paths, v.scenes))
    mentions = mention_stats(params, captions, scenes)
    cstats = caption_stats(params, captions, scenes, mentions)
    suite = caption_suite(params, v, f"variant_{variant}", cstats, mentions,
                          n_scenes=scenes["scene_id"].n_unique(), n_images=n_images)
    # the verdict names the bytes it passed: training depends on passed.json alone, and reruns exactly
    # when the captions or the images it would read have changed
    validated = {f.relative_to(paths.root).as_posix(): md5(f) for f in (paths.captions(variant), paths.images(v.scenes))}
    return _run(suite, paths, paths.validation(variant), validated)


def validate_scenes(params: Params, paths: DataPaths, scene_set: str) -> dict:
    from bindlab.contracts import images_of, scenes_of
    if scene_set not in params.scene_sets:
        raise StageError(f"unknown scene set {scene_set!r}; params.yaml scene_sets defines: "
                         f"{', '.join(params.scene_sets)}")
    spec = params.scene_sets[scene_set]
    scenes = scenes_of(params, paths, scene_set)
    n_images = len(images_of(params, paths, scene_set))
    suite = scene_suite(params, f"scenes_{scene_set}", scenes, spec.objects, spec.n, n_images, training=True)
    return _run(suite, paths, paths.validation("scenes") / scene_set)


def validate_benchmark(params: Params, paths: DataPaths) -> dict:
    suite = benchmark_suite(params, paths)
    return _run(suite, paths, paths.validation("benchmark"))


def require_passed(paths: DataPaths, variant: str) -> Path:
    """For training: fail unless the variant's captions passed validation."""
    from bindlab.contracts import read_verdict
    marker = paths.validation(variant) / "passed.json"
    if not marker.exists():
        raise StageError(f"{marker} is missing: variant {variant!r} has not passed validation; "
                         f"run `bindlab validate --variant {variant}` and fix what it reports")
    read_verdict(marker, f"variant_{variant}", f"bindlab validate --variant {variant}")
    return marker
