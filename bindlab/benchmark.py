"""The binding benchmark: held-out scenes, swap and replace negatives, counterfactual images, format probes.

Every image's true caption names `benchmark.density` attribute types (the same random set for every
object of the image; all types when null) and the shape. For every named type (and the shape) whose
values differ between two objects, one negative: the values exchanged between those two objects. The same swap applied to the scene graph
and rendered is the counterfactual image. A negative is kept only if it is certainly false (one of
the two swapped phrases fits no object), and a size swap only if the swapped scene still has no
overlap and stays inside the image.

Beside every swap, a replace item controls for perception: one object's value of a named type (or its
shape) replaced by a value that no object of the image has, so the bag of words changes and a model
that sees the type rejects the negative without binding anything. Its object and value are drawn from
a stream of their own, so the swap items, the probes and their images do not depend on it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from bindlab import look
from bindlab.contracts import REPLACE
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


def replaced_scene(params: Params, objs: list[dict], o: int, key: str, value: str) -> list[dict]:
    """The scene with object o's `key` set to `value`; a size carries its radius (the mapping of
    scenes.py), and the box and area follow the radius and shape."""
    out = [dict(x) for x in objs]
    c = out[o]
    c[key] = value
    if key == "size":
        sizes = params.vocab.attributes["size"]
        c["radius"] = float(look.size_radii(len(sizes))[sizes.index(value)])
    r = c["radius"]
    c.update(x0=c["x"] - r, y0=c["y"] - r, x1=c["x"] + r, y1=c["y"] + r,
             area=look.unit_area(c["shape"], c["aspect"]) * r * r)
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


def build_items(params: Params, scenes: pl.DataFrame, rng: np.random.Generator, named: dict | None = None):
    """Benchmark items and their counterfactual scenes (one per item). Each image's true caption names
    its `named_types` for every object; its items swap each named type (and the shape). `named`, when
    given, receives scene_id -> those types (the replace items word their captions the same way)."""
    template = params.captions.templates[0]
    rules = _holdout_rules(params)
    items, cf_rows = [], []
    for scene_id, objs in sorted(objects_of(scenes).items()):
        types = named_types(params, rng)
        if named is not None:
            named[scene_id] = types
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


def build_replace(params: Params, scenes: pl.DataFrame, named: dict[int, list[str]], rng: np.random.Generator):
    """Replace items and their counterfactual scenes (one per item): per image and per named type (and
    the shape), one object's value replaced by a value no object of the image has, object and value
    drawn uniformly among the valid pairs. `named`: scene_id -> the image's named types (build_items)."""
    template = params.captions.templates[0]
    rules = _holdout_rules(params)
    items, cf_rows = [], []
    for scene_id, objs in sorted(objects_of(scenes).items()):
        types = named[scene_id]
        desc = [*types, "shape"]
        caption = caption_text([describe(o, types) for o in objs], template)
        for key in desc:
            present = {o[key] for o in objs}
            absent = [v for v in (params.vocab.shapes if key == "shape" else params.vocab.attributes[key])
                      if v not in present]
            valid = []
            for o in range(len(objs)):
                for value in absent:
                    cf = replaced_scene(params, objs, o, key, value)
                    # the negative must be false of the image (an absent value makes it so), and the true
                    # caption false of the counterfactual image: the changed object's old phrase must fit
                    # no object of the changed scene (another object may have had the same description)
                    if any(matches(x, {k: cf[o][k] for k in desc}) for x in objs):
                        continue
                    if any(matches(x, {k: objs[o][k] for k in desc}) for x in cf):
                        continue
                    if key == "size" and not _fits(cf):
                        continue
                    valid.append((o, value, cf))
            if not valid:
                continue
            o, value, cf = valid[int(rng.integers(len(valid)))]
            item_id = len(items)
            items.append({
                "item_id": item_id, "scene_id": scene_id, "n_objects": len(objs), "type": key, "obj": o,
                "value": value, "caption": caption,
                "negative": caption_text([describe(x, types) for x in cf], template),
                "unseen": _is_unseen(objs, rules) or _is_unseen(cf, rules),
            })
            cf_rows.extend({**x, "scene_id": item_id} for x in cf)
    return pl.DataFrame(items, schema=REPLACE), pl.DataFrame(cf_rows, schema=scenes.schema)


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
    named: dict[int, list[str]] = {}
    items, cf_scenes = build_items(params, scenes, rng, named)
    probes = build_probes(params, scenes, rng)
    replace, replace_cf = build_replace(params, scenes, named, rng_for(params, BENCHMARK_STREAM + "/replace"))

    # Build the whole folder aside, then move it into place: never a half-written benchmark.
    out = paths.benchmark
    with atomic_dir(out) as tmp:
        write_parquet(scenes, tmp / "scenes.parquet")
        write_parquet(items, tmp / "items.parquet")
        write_parquet(probes, tmp / "probes.parquet")
        render_to_npy(params, scenes, tmp / "images.npy", workers=workers)
        render_to_npy(params, cf_scenes, tmp / "counterfactual.npy", workers=workers)
        write_parquet(replace, tmp / "replace.parquet")
        render_to_npy(params, replace_cf, tmp / "replace_counterfactual.npy", workers=workers)
        _benchmark_sheet(params, scenes, items, replace, tmp)

    def per_type(table: pl.DataFrame, col: str) -> str:
        return ", ".join(f"{s} {n}" for s, n in table.group_by(col).len().sort(col).iter_rows())
    print(f"benchmark: {spec.n} images, {len(items)} swap items ({per_type(items, 'swap')}), "
          f"{items['unseen'].sum()} unseen, {len(replace)} replace items ({per_type(replace, 'type')}), "
          f"{len(probes)} probes -> {out}")


def _benchmark_sheet(params: Params, scenes: pl.DataFrame, items: pl.DataFrame, replace: pl.DataFrame,
                     folder: Path) -> None:
    images = np.load(folder / "images.npy", mmap_mode="r")
    cfs = np.load(folder / "counterfactual.npy", mmap_mode="r")
    rcfs = np.load(folder / "replace_counterfactual.npy", mmap_mode="r")
    pics, texts = [], []
    for row in items.head(8).iter_rows(named=True):
        pics += [images[row["scene_id"]], cfs[row["item_id"]]]
        texts += [f"TRUE: {row['caption']}", f"{row['swap']} swap: {row['negative']}"]
    for row in replace.head(4).iter_rows(named=True):
        pics += [images[row["scene_id"]], rcfs[row["item_id"]]]
        texts += [f"TRUE: {row['caption']}", f"{row['type']} replace ({row['value']}): {row['negative']}"]
    contact_sheet(np.stack(pics), texts, folder / "contact.png", cols=4,
                  title="benchmark: image + caption, then its counterfactual + negative (swap items, then replace items)")
