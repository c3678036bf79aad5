"""The binding benchmark: held-out scenes, swap negatives, counterfactual images, format probes.

Every image's true caption names `benchmark.density` attribute types (the same random set for every
object of the image; all types when null) and the shape. For every named type (and the shape) whose
values differ between two objects, one negative: the values exchanged between those two objects. The same swap applied to the scene graph
and rendered is the counterfactual image. A negative is kept only if it is certainly false (one of
the two swapped phrases fits no object), and a size swap only if the swapped scene still has no
overlap and stays inside the image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from bindlab.io import atomic_dir, write_parquet
from bindlab.params import Params, parse_combo
from bindlab.paths import DataPaths
from bindlab.render import contact_sheet, render_to_npy
from bindlab.scenes import BENCHMARK_STREAM, GAP, rng_for, sample_scenes
from bindlab.wording import caption_text, describe, matches, objects_of, swap_is_false


def _holdout_rules(params: Params) -> list[tuple[str, str, str]]:
    return [parse_combo(c, params.vocab, f"holdout.{i}") for i, c in enumerate(params.holdout)]


def _is_unseen(objs: list[dict], rules) -> bool:
    return any(o[attr] == value and o["shape"] == shape for o in objs for attr, value, shape in rules)


def _fits(objs: list[dict]) -> bool:
    """No two bounding circles overlap and every object is inside the image."""
    for i, a in enumerate(objs):
        if not (a["radius"] <= a["x"] <= 1 - a["radius"] and a["radius"] <= a["y"] <= 1 - a["radius"]):
            return False
        for b in objs[i + 1:]:
            if np.hypot(a["x"] - b["x"], a["y"] - b["y"]) < a["radius"] + b["radius"] + GAP / 2:
                return False
    return True


def swapped_scene(objs: list[dict], a: int, b: int, key: str) -> list[dict]:
    """The scene with `key`'s values exchanged between objects a and b (size carries the radius)."""
    out = [dict(o) for o in objs]
    keys = [key, "radius"] if key == "size" else [key]
    for k in keys:
        out[a][k], out[b][k] = objs[b][k], objs[a][k]
    return out


def named_types(params: Params, rng: np.random.Generator) -> list[str]:
    """The attribute types a benchmark caption names (vocab order): benchmark.density of them, drawn
    uniformly per image, or all when the density is null."""
    types = params.vocab.attribute_types
    k = params.benchmark.density
    if k is None or k >= len(types):
        return list(types)
    picked = set(rng.permutation(len(types))[:k].tolist())
    return [t for i, t in enumerate(types) if i in picked]


def build_items(params: Params, scenes: pl.DataFrame, rng: np.random.Generator):
    """Benchmark items and their counterfactual scenes (one per item). Each image's true caption names
    its `named_types` for every object; its items swap each named type (and the shape)."""
    template = params.captions.templates[0]
    rules = _holdout_rules(params)
    items, cf_rows = [], []
    for scene_id, objs in sorted(objects_of(scenes).items()):
        types = named_types(params, rng)
        desc = [*types, "shape"]
        caption = caption_text([describe(o, types) for o in objs], template)
        for key in desc:
            valid = []
            for a in range(len(objs)):
                for b in range(a + 1, len(objs)):
                    if objs[a][key] == objs[b][key]:
                        continue
                    cf = swapped_scene(objs, a, b, key)
                    # the negative must be false of the image, and the true caption false of the
                    # counterfactual image (both checked on the named types only)
                    if not swap_is_false(objs, {k: cf[a][k] for k in desc}, {k: cf[b][k] for k in desc}):
                        continue
                    if not swap_is_false(cf, {k: objs[a][k] for k in desc}, {k: objs[b][k] for k in desc}):
                        continue
                    if key == "size" and not _fits(cf):
                        continue
                    valid.append((a, b, cf))
            if not valid:
                continue
            a, b, cf = valid[int(rng.integers(len(valid)))]
            item_id = len(items)
            items.append({
                "item_id": item_id, "scene_id": scene_id, "n_objects": len(objs), "swap": key,
                "obj_a": a, "obj_b": b, "caption": caption,
                "negative": caption_text([describe(o, types) for o in cf], template),
                "unseen": _is_unseen(objs, rules) or _is_unseen(cf, rules),
            })
            cf_rows.extend({**o, "scene_id": item_id} for o in cf)
    item_schema = {"item_id": pl.Int64, "scene_id": pl.Int64, "n_objects": pl.Int8, "swap": pl.String,
                   "obj_a": pl.Int8, "obj_b": pl.Int8, "caption": pl.String, "negative": pl.String,
                   "unseen": pl.Boolean}
    return pl.DataFrame(items, schema=item_schema), pl.DataFrame(cf_rows, schema=scenes.schema)


def build_probes(params: Params, scenes: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """One-object captions with k attributes: a true one, and one whose words are all in the image but
    one value comes from another object, so that it fits no object."""
    types = params.vocab.attribute_types
    template = params.captions.templates[0]
    rules = _holdout_rules(params)
    rows = []
    for scene_id, objs in sorted(objects_of(scenes).items()):
        for k in range(1, len(types) + 1):
            options = []
            for o in range(len(objs)):
                picked = set(rng.permutation(types)[:k].tolist())
                named = [t for t in types if t in picked]
                for t in named:
                    for other in range(len(objs)):
                        if objs[other][t] == objs[o][t]:
                            continue
                        false_desc = {x: objs[o][x] for x in named} | {"shape": objs[o]["shape"], t: objs[other][t]}
                        if not any(matches(obj, false_desc) for obj in objs):
                            options.append((o, named, t, false_desc))
            if not options:
                continue
            o, named, t, false_desc = options[int(rng.integers(len(options)))]
            rows.append({
                "probe_id": len(rows), "scene_id": scene_id, "n_objects": len(objs), "k": k, "obj": o,
                "attrs": named, "swap": t, "true_caption": caption_text([describe(objs[o], named)], template),
                "false_caption": caption_text([describe(false_desc, named)], template),
                "unseen": _is_unseen(objs, rules),
            })
    schema = {"probe_id": pl.Int64, "scene_id": pl.Int64, "n_objects": pl.Int8, "k": pl.Int8, "obj": pl.Int8,
              "attrs": pl.List(pl.String), "swap": pl.String, "true_caption": pl.String, "false_caption": pl.String, "unseen": pl.Boolean}
    return pl.DataFrame(rows, schema=schema)


def benchmark_stage(params: Params, paths: DataPaths, workers: int | None = None) -> None:
    spec = params.benchmark
    scenes = sample_scenes(params, spec.n, spec.objects, stream=BENCHMARK_STREAM, holdout=False, swappable=True)
    rng = rng_for(params, BENCHMARK_STREAM + "/items")
    items, cf_scenes = build_items(params, scenes, rng)
    probes = build_probes(params, scenes, rng)

    # Build the whole folder aside, then move it into place: never a half-written benchmark.
    out = paths.benchmark
    with atomic_dir(out) as tmp:
        write_parquet(scenes, tmp / "scenes.parquet")
        write_parquet(items, tmp / "items.parquet")
        write_parquet(probes, tmp / "probes.parquet")
        render_to_npy(params, scenes, tmp / "images.npy", workers=workers)
        render_to_npy(params, cf_scenes, tmp / "counterfactual.npy", workers=workers)
        _benchmark_sheet(params, scenes, items, tmp)
    counts = items.group_by("swap").len().sort("swap")
    print(f"benchmark: {spec.n} images, {len(items)} swap items "
          f"({', '.join(f'{s} {n}' for s, n in counts.iter_rows())}), {items['unseen'].sum()} unseen, "
          f"{len(probes)} probes -> {out}")


def _benchmark_sheet(params: Params, scenes: pl.DataFrame, items: pl.DataFrame, folder: Path) -> None:
    images = np.load(folder / "images.npy", mmap_mode="r")
    cfs = np.load(folder / "counterfactual.npy", mmap_mode="r")
    picked = items.head(8)
    pics, texts = [], []
    for row in picked.iter_rows(named=True):
        pics += [images[row["scene_id"]], cfs[row["item_id"]]]
        texts += [f"TRUE: {row['caption']}", f"{row['swap']} swap: {row['negative']}"]
    contact_sheet(np.stack(pics), texts, folder / "contact.png", cols=4,
                  title="benchmark: true image + caption, then its counterfactual (swapped scene + negative)")
