"""Data contracts at stage boundaries: every artifact a stage reads is checked here, once per kind.

A file between stages can be damaged for ordinary reasons (a full disk, an interrupted copy, a
hand-edited parquet, `--data` pointing at another version's folder, a partial DVC checkout). Each
reader below checks what docs/contracts.md promises -- the file is readable, has the declared
columns and types (or array shape and dtype, or JSON keys), its row count and ids agree with params
and with the files read beside it -- and otherwise raises StageError with one line:

    PATH: what is wrong; regenerate it with `bindlab ...`

The CLI prints that line and exits 2. Stages call these readers before they write anything, so a
refused input leaves every output as it was. The schemas here are the single declaration of the
tables; the tables of docs/contracts.md describe them. Checkpoints are read next to the model that
their weights must fit (`read_checkpoint` in bindlab/model.py), with the key tables CHECKPOINT and
RESUME declared here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from polars.exceptions import PanicException

from bindlab.errors import StageError, require
from bindlab.params import ATTRIBUTE_TYPES
from bindlab.paths import DataPaths

I8, I64, U32, F32, F64, STR, BOOL = pl.Int8, pl.Int64, pl.UInt32, pl.Float32, pl.Float64, pl.String, pl.Boolean
LIST = pl.List

# --- schemas (docs/contracts.md) ----------------------------------------------------------------

SCENES = {"scene_id": I64, "obj": I8, "n_objects": I8, "shape": STR, **{t: STR for t in ATTRIBUTE_TYPES},
          "x": F32, "y": F32, "radius": F32, "x0": F32, "y0": F32, "x1": F32, "y1": F32, "area": F32,
          "saliency_rank": I8, "unseen": BOOL}
CAPTIONS = {"scene_id": I64, "caption": STR, "template": I8, "objects": LIST(I8), "attrs": LIST(LIST(STR)),
            "hard_negatives": LIST(STR), "hard_negative_swaps": LIST(STR)}
ITEMS = {"item_id": I64, "scene_id": I64, "n_objects": I8, "swap": STR, "obj_a": I8, "obj_b": I8,
         "caption": STR, "negative": STR, "unseen": BOOL}
REPLACE = {"item_id": I64, "scene_id": I64, "n_objects": I8, "type": STR, "obj": I8, "value": STR,
           "caption": STR, "negative": STR, "unseen": BOOL}
PROBES = {"probe_id": I64, "scene_id": I64, "n_objects": I8, "k": I8, "obj": I8, "attrs": LIST(STR), "swap": STR,
          "true_caption": STR, "false_caption": STR, "unseen": BOOL}
STATS_CAPTIONS = {
    "scene_id": I64, "n_objects": I64, "n_mentioned": I64, "completeness": F64, "attrs_per_object": F64,
    "attrs_by_object": LIST(I64), "mentioned_ranks": LIST(I64),
    **{flag: I8 for flag in ("top_mentioned", "salient_prefix", "in_saliency_order", "in_left_to_right_order")},
    "n_words": I64, "oov_words": I64,
    **{flag: I8 for flag in ("text_matches_record", "record_consistent", "objects_unique", "objects_exist",
                             "attrs_known")},
    "n_hard_negatives": I64, "n_hard_negative_swaps": I64, "negatives_differ": I8, "negatives_same_words": I8}
STATS_MENTIONS = {"row": U32, "scene_id": I64, "position": I64, "obj": I64, "n_attrs": I64, "attrs_known": BOOL,
                  "attrs_as_declared": BOOL,
                  "exists": BOOL, "saliency_rank": I64, "x": F32}

NUM = "number"  # a JSON number (int or float, not a bool)
SUMMARY_MEANS = ("objects_in_image", "objects_mentioned", "completeness", "attrs_per_mentioned_object",
                 "top_mentioned", "salient_prefix", "mentioned_saliency_rank", "in_saliency_order",
                 "in_left_to_right_order", "caption_words", "oov_words", "hard_negatives")
SUMMARY_DISTRIBUTIONS = ("objects_in_image", "objects_mentioned", "completeness", "attrs_per_mentioned_object",
                         "mentioned_saliency_rank", "caption_words", "hard_negatives")
# `batches`: what the training batches ask of the model (bindlab/stats.py batch_summary), per
# attribute type and the shape
SUMMARY_BATCHES = {"seed": int, "batch_size": int, "batches": int, "images": int, "minimal_pair": dict,
                   **{f"minimal_pair.{t}": NUM for t in (*ATTRIBUTE_TYPES, "shape")},
                   "singled_out_by_color_shape": NUM}
SUMMARY = {"captions": int, "mentions": int, "means": dict, "distributions": dict,
           **{f"means.{k}": (NUM, type(None)) for k in SUMMARY_MEANS},
           **{f"distributions.{k}": dict for k in SUMMARY_DISTRIBUTIONS},
           "batches": dict, **{f"batches.{k}": t for k, t in SUMMARY_BATCHES.items()}}
VERDICT = {"target": str, "expectations": int}  # passed.json
RESULTS = {"target": str, "success": bool, "evaluated": int, "failed": int, "expectations": list}
RESULT_ROW = {"table": str, "column": str, "expectation": str, "expected": str, "observed": str,
              "success": bool, "why": str}
EVAL = {"variant": str, "seed": int, "chance": dict}
EVAL_INTERVALS = {"ci": dict, "bootstrap": dict}   # bindlab/intervals.py: key -> [low, high], and how
CURVE = {"variant": str, "seed": int, "batch_size": int, "steps": int, "points": list}
CURVE_POINT = {"step": int, "samples": int, "loss": (NUM, type(None)), "i2t_pairwise": NUM, "i2t_strict": NUM,
               "i2t_pairwise_ci": (list, type(None)), "i2t_strict_ci": (list, type(None))}
# data/chance/seedS.json: eval.json's chance_measured and what it was computed for (evaluate.chance_basis)
CHANCE = {"seed": int, "model_spec_sha256": str, "eval_batch": int, "benchmark_md5": dict, "chance_measured": dict,
          "chance_measured.seed": int, "chance_measured.i2t_strict": NUM, "chance_measured.ci": dict}
PER_IMAGE = {"scene_id": I64}   # + `KEY:num`, `KEY:den` (f64) per metric key (bindlab/evaluate.py ledger)
CHECKPOINT = {"model": dict, "model_spec": dict, "run": dict, "step": int}
RESUME = {"optimizer": dict, "scheduler": dict, "log": list}  # what `train` needs beyond a weights file


# --- generic readers ----------------------------------------------------------------------------

def short_error(e: BaseException) -> str:
    """An exception in a few words: its type and the first line of its message, clipped."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def fail(path, problem: str, made_by: str):
    raise StageError(f"{path}: {problem}; regenerate it with `{made_by}`")


def read_table(path, schema: dict, made_by: str) -> pl.DataFrame:
    """A parquet file with at least the columns of `schema`, of exactly those types."""
    require(path, made_by)
    try:
        table = pl.read_parquet(path)
    except (Exception, PanicException) as e:  # junk reaches polars' Rust code, which may panic
        fail(path, f"not a readable parquet file ({short_error(e)})", made_by)
    missing = [c for c in schema if c not in table.columns]
    if missing:
        fail(path, f"lacks column(s) {', '.join(missing)}", made_by)
    wrong = [f"{c} is {table.schema[c]}, not {t}" for c, t in schema.items() if table.schema[c] != t]
    if wrong:
        fail(path, "wrong column type: " + "; ".join(wrong[:3]), made_by)
    return table


def check_ids(path, table: pl.DataFrame, column: str, n: int, made_by: str, *, every: bool, of: str) -> None:
    """`column` lies in 0..n-1 without nulls; with `every`, each of 0..n-1 occurs (once per row when
    the table has n rows)."""
    ids = table[column]
    if ids.null_count():
        fail(path, f"{column} has {ids.null_count()} empty values", made_by)
    lo, hi = (ids.min(), ids.max()) if len(ids) else (0, -1)
    if len(ids) and (lo < 0 or hi >= n):
        fail(path, f"{column} runs {lo}..{hi}, outside 0..{n - 1} ({of})", made_by)
    if every and ids.n_unique() != n:
        fail(path, f"{column} holds {ids.n_unique()} distinct values where {of} has {n}", made_by)


def read_npy(path, made_by: str, n: int | None = None, what: str = "images") -> np.ndarray:
    """A uint8 (n, H, W, 3) .npy, memory-mapped; header and file size checked before mapping (a
    truncated file would otherwise fail inside mmap, or later when a missing row is read)."""
    require(path, made_by)
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
            if header is None:
                raise ValueError(f".npy format version {version} not supported")
            shape, fortran, dtype = header(f)
            offset = f.tell()
    except Exception as e:  # noqa: BLE001 - anything unreadable in the header: say which file
        fail(path, f"not a .npy array ({short_error(e)})", made_by)
    if dtype != np.uint8 or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or fortran:
        fail(path, f"holds {dtype} {shape}{' (Fortran order)' if fortran else ''}, not uint8 (n, H, W, 3) {what}",
             made_by)
    size, expected = Path(path).stat().st_size, offset + int(np.prod(shape))
    if size != expected:
        fail(path, f"is {size} bytes where its header promises {expected} ({'truncated' if size < expected else 'trailing bytes'})",
             made_by)
    if n is not None and shape[0] != n:
        fail(path, f"holds {shape[0]} {what} where {n} are expected", made_by)
    if shape[0] == 0:
        fail(path, f"holds no {what}", made_by)
    return np.load(path, mmap_mode="r")


def _is(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    for t in types:
        if t == NUM and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if isinstance(t, type) and isinstance(value, t) and not (isinstance(value, bool) and t is int):
            return True
    return False


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t if isinstance(t, str) else t.__name__ for t in types)


def check_keys(path, obj: dict, keys: dict, made_by: str) -> None:
    """Every dotted key of `keys` exists in `obj` with a value of its type(s)."""
    for key, types in keys.items():
        value = obj
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                fail(path, f"lacks key {key!r}", made_by)
            value = value[part]
        if not _is(value, types):
            fail(path, f"{key} is {type(value).__name__} {str(value)[:40]!r}, not {_type_names(types)}", made_by)


def read_json(path, keys: dict, made_by: str) -> dict:
    require(path, made_by)
    try:
        obj = json.loads(Path(path).read_bytes())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both are
        fail(path, f"not valid JSON ({short_error(e)})", made_by)
    if not isinstance(obj, dict):
        fail(path, f"holds a JSON {type(obj).__name__}, not an object", made_by)
    check_keys(path, obj, keys, made_by)
    return obj


# --- one reader per artifact kind ----------------------------------------------------------------

def read_scenes(path, n: int, made_by: str) -> pl.DataFrame:
    """A scene table of n scenes (scene_id 0..n-1, each with its objects)."""
    table = read_table(path, SCENES, made_by)
    check_ids(path, table, "scene_id", n, made_by, every=True, of=f"the {n} scenes params declare")
    return table


def read_captions(path, n: int, made_by: str) -> pl.DataFrame:
    """A caption table: one row per scene 0..n-1."""
    table = read_table(path, CAPTIONS, made_by)
    if table.height != n:
        fail(path, f"has {table.height} captions for {n} scenes (one per scene)", made_by)
    check_ids(path, table, "scene_id", n, made_by, every=True, of=f"the {n} scenes of its scene set")
    return table


def read_stats(folder: Path, n: int, made_by: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(caption statistics, mention statistics, summary) of one variant, whose row counts agree."""
    summary = read_summary(folder / "summary.json", n, made_by)
    cstats = read_table(folder / "captions.parquet", STATS_CAPTIONS, made_by)
    if cstats.height != summary["captions"]:
        fail(folder / "captions.parquet", f"has {cstats.height} rows but summary.json counts "
                                          f"{summary['captions']} captions", made_by)
    check_ids(folder / "captions.parquet", cstats, "scene_id", n, made_by, every=True, of=f"{n} scenes")
    mentions = read_table(folder / "mentions.parquet", STATS_MENTIONS, made_by)
    if mentions.height != summary["mentions"]:
        fail(folder / "mentions.parquet", f"has {mentions.height} rows but summary.json counts "
                                          f"{summary['mentions']} mentions", made_by)
    check_ids(folder / "mentions.parquet", mentions, "row", n, made_by, every=False, of=f"{n} captions")
    return cstats, mentions, summary


def read_summary(path, n: int, made_by: str) -> dict:
    summary = read_json(path, SUMMARY, made_by)
    if summary["captions"] != n:
        fail(path, f"counts {summary['captions']} captions where the scene set has {n} scenes", made_by)
    b = summary["batches"]
    shares = {f"minimal_pair.{t}": x for t, x in b["minimal_pair"].items()} \
        | {"singled_out_by_color_shape": b["singled_out_by_color_shape"]}
    outside = [k for k, x in shares.items() if not (isinstance(x, (int, float)) and 0 <= x <= 1)]
    if outside:
        fail(path, f"batches.{outside[0]} is {shares[outside[0]]!r}, not a share in 0..1", made_by)
    return summary


def read_verdict(path, target: str, made_by: str) -> dict:
    """passed.json: the marker that `target` passed validation."""
    verdict = read_json(path, VERDICT, made_by)
    if verdict["target"] != target:
        fail(path, f"is the verdict of {verdict['target']!r}, not {target!r}", made_by)
    return verdict


def read_results(path, made_by: str) -> dict:
    """results.json of a validation target: every expectation, and counts that agree with them."""
    results = read_json(path, RESULTS, made_by)
    for row in results["expectations"]:
        if not isinstance(row, dict):
            fail(path, f"an expectation is a {type(row).__name__}, not an object", made_by)
        check_keys(path, row, RESULT_ROW, made_by)
    rows = results["expectations"]
    failed = sum(not r["success"] for r in rows)
    if results["evaluated"] != len(rows) or results["failed"] != failed or results["success"] != (failed == 0):
        fail(path, f"counts {results['evaluated']} expectations ({results['failed']} failed) but lists "
                   f"{len(rows)} ({failed} failed)", made_by)
    return results


def read_benchmark(folder: Path, n: int | None, parts=("items", "probes", "images", "counterfactual")) -> dict:
    """The benchmark folder's files in `parts` (also "scenes", "replace", "replace_counterfactual"),
    checked against each other: items 0..k-1 are the rows of counterfactual.npy, replace items
    0..m-1 those of replace_counterfactual.npy, every scene_id has its image."""
    made_by = "bindlab benchmark"
    b: dict = {}
    if "scenes" in parts and n is not None:
        b["scenes"] = read_scenes(folder / "scenes.parquet", n, made_by)
    if "images" in parts:
        b["images"] = read_npy(folder / "images.npy", made_by, n)
    n_images = len(b["images"]) if "images" in b else n
    def indexed(name: str, schema: dict, id_col: str) -> pl.DataFrame:
        """items/replace/probes: their own ids 0..rows-1, and scene ids among the benchmark images."""
        path = folder / f"{name}.parquet"
        table = read_table(path, schema, made_by).sort(id_col)
        check_ids(path, table, id_col, table.height, made_by, every=True, of="its rows")
        if n_images is not None:
            check_ids(path, table, "scene_id", n_images, made_by, every=False, of=f"the {n_images} benchmark images")
        return table

    if "items" in parts:
        b["items"] = indexed("items", ITEMS, "item_id")
    if "probes" in parts:
        b["probes"] = indexed("probes", PROBES, "probe_id")
    if "counterfactual" in parts:
        k = b["items"].height if "items" in b else None
        b["counterfactual"] = read_npy(folder / "counterfactual.npy", made_by, k, what="counterfactual images (one per item)")
    if "replace" in parts:
        b["replace"] = indexed("replace", REPLACE, "item_id")
    if "replace_counterfactual" in parts:
        k = b["replace"].height if "replace" in b else None
        b["replace_counterfactual"] = read_npy(folder / "replace_counterfactual.npy", made_by, k,
                                               what="counterfactual images (one per replace item)")
    return b


def read_eval(path, variant: str, seed: int, metric: str) -> dict:
    """eval.json of the run (variant, seed): its study metric, chance levels, and whose run it is."""
    made_by = f"bindlab evaluate --variant {variant} --seed {seed}"
    result = read_json(path, EVAL | EVAL_INTERVALS | {metric: NUM}, made_by)
    if (result["variant"], result["seed"]) != (variant, seed):
        fail(path, f"is the result of {result['variant']} seed {result['seed']}, not {variant} seed {seed}", made_by)
    return result


def read_curve(path, variant: str, seed: int) -> dict:
    """curve.json of the run (variant, seed): binding at each weight snapshot, steps ascending."""
    made_by = f"bindlab evaluate --curve --variant {variant} --seed {seed}"
    curve = read_json(path, CURVE, made_by)
    if (curve["variant"], curve["seed"]) != (variant, seed):
        fail(path, f"is the curve of {curve['variant']} seed {curve['seed']}, not {variant} seed {seed}", made_by)
    for i, point in enumerate(curve["points"]):
        if not isinstance(point, dict):
            fail(path, f"points[{i}] is not an object", made_by)
        check_keys(f"{path} points[{i}]", point, CURVE_POINT, made_by)
    steps = [p["step"] for p in curve["points"]]
    if not steps or steps != sorted(set(steps)):
        fail(path, "points must be non-empty with steps ascending and distinct", made_by)
    return curve


def read_chance(path, seed: int) -> dict:
    """The measured chance level of seed `seed` (`bindlab chance`), with what it was computed for."""
    made_by = f"bindlab chance --seed {seed}"
    chance = read_json(path, CHANCE, made_by)
    if chance["seed"] != seed or chance["chance_measured"]["seed"] != seed:
        fail(path, f"is the chance level of seed {chance['seed']}, not seed {seed}", made_by)
    return chance


def read_per_image(path, variant: str, seed: int, keys, n_items: int | None = None) -> pl.DataFrame:
    """per_image.parquet of a run: one row per benchmark image (scene_id ascending, unique), and the
    per-image numerator and denominator of each metric key in `keys`; `n_items`: eval.json's count,
    which the items of the table must add up to."""
    made_by = f"bindlab evaluate --variant {variant} --seed {seed}"
    table = read_table(path, PER_IMAGE | {f"{k}:{part}": F64 for k in keys for part in ("num", "den")}, made_by)
    ids = table["scene_id"]
    if ids.null_count() or not ids.is_sorted() or ids.n_unique() != table.height or table.height == 0:
        fail(path, "scene_id must be non-empty, ascending and unique (one row per benchmark image)", made_by)
    bad = [f"{k}:den" for k in keys if (table[f"{k}:den"] < 0).any() or table[f"{k}:den"].sum() <= 0]
    if bad:
        fail(path, f"{bad[0]} must be non-negative with a positive sum", made_by)
    if n_items is not None and "i2t_pairwise:den" in table.columns and table["i2t_pairwise:den"].sum() != n_items:
        fail(path, f"counts {table['i2t_pairwise:den'].sum():g} benchmark items where its eval.json has {n_items}",
             made_by)
    return table


# --- what the stages call: the reader of an artifact with the params that say what to expect ------

def scenes_of(params, paths, scene_set: str) -> pl.DataFrame:
    return read_scenes(paths.scenes(scene_set), params.scene_sets[scene_set].n,
                       f"bindlab sample --scenes {scene_set}")


def images_of(params, paths, scene_set: str) -> np.ndarray:
    return read_npy(paths.images(scene_set), f"bindlab render --scenes {scene_set}",
                    params.scene_sets[scene_set].n)


def captions_of(params, paths, variant: str) -> pl.DataFrame:
    v = params.variant(variant)
    return read_captions(paths.captions(variant), params.scene_sets[v.scenes].n,
                         f"bindlab captions --variant {variant}")


def stats_of(params, paths, variant: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    v = params.variant(variant)
    return read_stats(paths.stats(variant), params.scene_sets[v.scenes].n, f"bindlab stats --variant {variant}")


def summary_of(params, paths, variant: str) -> dict | None:
    """A variant's statistics summary, or None when it has none yet (pages list it as not computed)."""
    f = paths.stats(variant) / "summary.json"
    if not f.exists():
        return None
    v = params.variant(variant)
    return read_summary(f, params.scene_sets[v.scenes].n, f"bindlab stats --variant {variant}")


def results_of(folder: Path, made_by: str) -> dict | None:
    """A validation target's results.json, or None when it has not been validated yet."""
    f = Path(folder) / "results.json"
    return read_results(f, made_by) if f.exists() else None


def require_passed(paths: DataPaths, variant: str) -> Path:
    """For training: fail unless the variant's captions passed validation."""
    marker = paths.validation(variant) / "passed.json"
    if not marker.exists():
        raise StageError(f"{marker} is missing: variant {variant!r} has not passed validation; "
                         f"run `bindlab validate --variant {variant}` and fix what it reports")
    read_verdict(marker, f"variant_{variant}", f"bindlab validate --variant {variant}")
    return marker
