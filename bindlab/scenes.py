"""Scene graphs: one row per object, the single source of truth for images and captions.

Sampling is vectorised over scenes: attribute values are dealt from exactly balanced decks, and
positions are placed slot by slot with rejection of the scenes whose new object overlaps.
"""
from __future__ import annotations

import zlib

import numpy as np
import polars as pl

from bindlab import look
from bindlab.contracts import SCENES, read_table
from bindlab.errors import StageError
from bindlab.io import write_parquet
from bindlab.params import Params, parse_combo
from bindlab.paths import DataPaths

GAP = 0.02  # minimum gap between bounding circles, fraction of the image side
BENCHMARK_STREAM = "__benchmark__"


def rng_for(params: Params, stream: str) -> np.random.Generator:
    """An independent, stable random stream per scene set / variant / purpose."""
    return np.random.default_rng([params.seed, zlib.crc32(stream.encode())])


def _balanced(rng: np.random.Generator, n_values: int, total: int) -> np.ndarray:
    """`total` draws in which every value occurs equally often (+-1), in random order."""
    return rng.permutation(np.resize(np.arange(n_values, dtype=np.int16), total))


def _fix_holdout(rng, params: Params, cols: dict[str, np.ndarray]) -> None:
    """Swap shapes between objects until no object is a held-out combination (keeps shape balance)."""
    vocab = params.vocab
    rules = []
    for i, combo in enumerate(params.holdout):
        attr, value, shape = parse_combo(combo, vocab, f"holdout.{i}")
        rules.append((attr, vocab.attributes[attr].index(value), vocab.shapes.index(shape)))
    if not rules:
        return

    def bad(idx: np.ndarray, shapes: np.ndarray) -> np.ndarray:
        out = np.zeros(len(idx), dtype=bool)
        for attr, v, s in rules:
            out |= (cols[attr][idx] == v) & (shapes == s)
        return out

    total = len(cols["shape"])
    for _ in range(1000):
        violators = np.flatnonzero(bad(np.arange(total), cols["shape"]))
        if len(violators) == 0:
            return
        partners = rng.integers(0, total, len(violators))
        for a, b in zip(violators.tolist(), partners.tolist()):
            sa, sb = cols["shape"][a], cols["shape"][b]
            if not bad(np.array([a, b]), np.array([sb, sa])).any():
                cols["shape"][a], cols["shape"][b] = sb, sa
    raise StageError("holdout: could not remove the held-out combinations; too many are held out")


def _place(rng, n_objects: np.ndarray, radius: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping centres for every object; vectorised over scenes, one slot at a time."""
    total = len(radius)
    x = np.zeros(total, dtype=np.float64)
    y = np.zeros(total, dtype=np.float64)
    pending = np.arange(len(n_objects))  # scenes still to place
    for _restart in range(200):
        failed = np.zeros(len(n_objects), dtype=bool)
        for slot in range(int(n_objects.max())):
            todo = pending[(n_objects[pending] > slot) & ~failed[pending]]
            for _attempt in range(60):
                if len(todo) == 0:
                    break
                obj = starts[todo] + slot
                r = radius[obj]
                x[obj] = r + rng.random(len(todo)) * (1 - 2 * r)
                y[obj] = r + rng.random(len(todo)) * (1 - 2 * r)
                ok = np.ones(len(todo), dtype=bool)
                for prev in range(slot):
                    p = starts[todo] + prev
                    dist = np.hypot(x[obj] - x[p], y[obj] - y[p])
                    ok &= dist >= r + radius[p] + GAP
                todo = todo[~ok]
            failed[todo] = True  # these scenes start over from slot 0 in the next round
        pending = np.flatnonzero(failed)
        if len(pending) == 0:
            return x, y
    raise StageError(f"could not place objects without overlap in {len(pending)} scenes; "
                     f"lower the objects per image or the sizes")


def sample_scenes(params: Params, n: int, objects: dict[int, float], stream: str,
                  holdout: bool = True, swappable: bool = False) -> pl.DataFrame:
    """Sample `n` scenes. `holdout=True` keeps the held-out combinations out (training sets);
    `swappable=True` spaces objects as if all were of the largest size, so that any size swap
    (benchmark counterfactuals) still fits without overlap."""
    rng = rng_for(params, "scenes:" + stream)  # prefixed: never the same stream as a caption's
    vocab = params.vocab
    counts = np.array(sorted(objects), dtype=np.int64)
    probs = np.array([objects[c] for c in counts], dtype=np.float64)
    n_objects = rng.choice(counts, size=n, p=probs / probs.sum())
    starts = np.concatenate([[0], np.cumsum(n_objects)[:-1]])
    total = int(n_objects.sum())

    cols = {"shape": _balanced(rng, len(vocab.shapes), total)}
    for attr, values in vocab.attributes.items():
        cols[attr] = _balanced(rng, len(values), total)
    if holdout:
        _fix_holdout(rng, params, cols)

    radius = look.size_radii(len(vocab.attributes["size"]))[cols["size"]].astype(np.float64)
    clearance = np.full_like(radius, radius.max()) if swappable else radius
    x, y = _place(rng, n_objects, clearance, starts)

    scene_id = np.repeat(np.arange(n, dtype=np.int64), n_objects)
    obj = (np.arange(total) - np.repeat(starts, n_objects)).astype(np.int8)
    # Saliency: larger size first, then closer to the centre, then lower object index.
    centre_dist = np.hypot(x - 0.5, y - 0.5)
    order = np.lexsort((obj, centre_dist, -cols["size"], scene_id))
    rank = np.empty(total, dtype=np.int8)
    rank[order] = (np.arange(total) - np.repeat(starts, n_objects)).astype(np.int8)
    aspects = vocab.attributes["aspect"]
    unit_areas = np.array([[look.unit_area(s, a) for a in aspects] for s in vocab.shapes])

    unseen = np.zeros(total, dtype=bool)
    for i, combo in enumerate(params.holdout):
        attr, value, shape = parse_combo(combo, vocab, f"holdout.{i}")
        unseen |= (cols[attr] == vocab.attributes[attr].index(value)) & (cols["shape"] == vocab.shapes.index(shape))

    table = {
        "scene_id": scene_id,
        "obj": obj,
        "n_objects": np.repeat(n_objects, n_objects).astype(np.int8),
        "shape": np.array(vocab.shapes)[cols["shape"]],
        **{attr: np.array(values)[cols[attr]] for attr, values in vocab.attributes.items()},
        "x": x.astype(np.float32),
        "y": y.astype(np.float32),
        "radius": radius.astype(np.float32),
        "x0": (x - radius).astype(np.float32),
        "y0": (y - radius).astype(np.float32),
        "x1": (x + radius).astype(np.float32),
        "y1": (y + radius).astype(np.float32),
        "area": (unit_areas[cols["shape"], cols["aspect"]] * radius ** 2).astype(np.float32),
        "saliency_rank": rank,
        "unseen": unseen,
    }
    return pl.DataFrame(table)


def sample_stage(params: Params, paths: DataPaths, scene_set: str) -> pl.DataFrame:
    if scene_set not in params.scene_sets:
        raise StageError(f"unknown scene set {scene_set!r}; params.yaml scene_sets defines: "
                         f"{', '.join(params.scene_sets)}")
    spec = params.scene_sets[scene_set]
    scenes = sample_scenes(params, spec.n, spec.objects, stream=f"scenes/{scene_set}")
    write_parquet(scenes, paths.scenes(scene_set))
    print(f"sampled {spec.n} scenes ({len(scenes)} objects) -> {paths.scenes(scene_set)}")
    return scenes


def load_scenes(path) -> pl.DataFrame:
    """A scene table checked against the contract (columns, types); stages use contracts.scenes_of,
    which also checks the scene count against params."""
    return read_table(path, SCENES, "bindlab sample")
