"""The binding metrics of eval.json, from scores (pure: scores in, numbers out, so the metric code is
tested on known scores). Per benchmark item (image, swapped attribute type):
  i2t pairwise  the image scores its true caption above the swapped caption (a tie counts 1/2:
                a bag-of-words model that cannot tell them apart sits exactly at chance);
  i2t strict    per image: the true caption beats every negative of that image (chance for a
                random scorer: mean over images of 1 / (negatives + 1));
  t2i pairwise  the true caption scores the true image above the counterfactual (swapped) image;
  probe         the format-matched one-object probe: the true phrase above the wrongly bound one;
  r1/r5         retrieval recall@k among the benchmark images and their true captions (sanity check);
  replace       perception: the true caption above one whose value of one object is replaced by a
                value no object of the image has (i2t), the true image above that changed scene (t2i).
                The bag of words changes, so seeing the type suffices; binding_gap.<type> = replace
                minus swap i2t pairwise is what binding costs beyond seeing.

Every metric is a ratio of sums over benchmark images (bindlab/intervals.py): the "ledger" holds,
per metric key (dotted: "by_swap.color.i2t_pairwise"), the numerator and denominator of each image.
The point value is sum(num) / sum(den); its interval resamples images; the ledger is written
beside eval.json (per_image.parquet) so the report can pair two variants on the same images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from bindlab import intervals
from bindlab.io import write_json

# the headline metrics: binding.json (`dvc metrics show`), the report's tables, the flows' artifacts
HEADLINE = ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe", "r1_i2t")
# what the untrained model (the measured chance level) and each point of the training curve record
UNTRAINED_KEYS = ("i2t_strict", "i2t_pairwise", "probe")
CURVE_KEYS = ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe")


def headline(result: dict, out: Path) -> None:
    """binding.json: the run's headline numbers with their 95% intervals, the small file `dvc metrics
    show` prints (eval.json keeps the full breakdown)."""
    write_json(out / "binding.json", {k: {"value": result[k], "low": result["ci"][k][0], "high": result["ci"][k][1]}
                                      for k in HEADLINE})


Ledger = dict[str, tuple[np.ndarray, np.ndarray]]
# the replace items (bench["replace"]) and their scores: true caption, replaced caption, replace counterfactual
Replace = tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray]


def _wins(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    return (pos > neg) + 0.5 * (pos == neg)


def _sum_by_image(img: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(img, weights=None if weights is None else weights.astype(np.float64),
                       minlength=n).astype(np.float64)


def _add_items(ledger: Ledger, counts: dict, prefix: str, img: np.ndarray, n: int, mask: np.ndarray,
               i2t: np.ndarray, t2i: np.ndarray, beat: np.ndarray) -> None:
    """The item metrics of the items in `mask`: pairwise wins per image, and strict (the image's
    items in the mask all won; chance 1 / (items + 1) for exchangeable scores)."""
    if not mask.any():
        counts[prefix] = {"n_items": 0, "n_images": 0}
        return
    im = img[mask]
    count = _sum_by_image(im, n)
    has = (count > 0).astype(np.float64)
    lost = _sum_by_image(im, n, ~beat[mask])
    p = f"{prefix}." if prefix else ""
    ledger[p + "i2t_pairwise"] = (_sum_by_image(im, n, i2t[mask]), count)
    ledger[p + "t2i_pairwise"] = (_sum_by_image(im, n, t2i[mask]), count)
    ledger[p + "i2t_strict"] = (has * (lost == 0), has)
    ledger[p + "i2t_strict_chance"] = (has / (count + 1), has)
    counts[prefix] = {"n_items": int(mask.sum()), "n_images": int(has.sum())}


def _add_probes(ledger: Ledger, counts: dict, key: str, img: np.ndarray, n: int, mask: np.ndarray,
                wins: np.ndarray, count_at: str | None) -> None:
    if not mask.any():
        return
    ledger[key] = (_sum_by_image(img[mask], n, wins[mask]), _sum_by_image(img[mask], n))
    if count_at is not None:
        counts.setdefault(count_at, {})["n_probes"] = int(mask.sum())


def _add_replace(ledger: Ledger, counts: dict, ids: np.ndarray, replace: Replace,
                 least: np.ndarray | None = None) -> None:
    """Perception: pairwise i2t and t2i of the replace items, overall, per replaced type and (with
    `least`, a mask over the items) on the least salient objects as `replace_least` (no strict:
    strict stays over the swap negatives, so its chance and meaning do not change)."""
    table, r_true, r_neg, r_cf = replace
    n, types = len(ids), table["type"].to_numpy()
    img = np.searchsorted(ids, table["scene_id"].to_numpy())
    i2t, t2i = _wins(r_true, r_neg), _wins(r_true, r_cf)
    groups = [("replace", np.ones(table.height, bool))]
    groups += [(f"by_replace.{t}", types == t) for t in sorted(set(types.tolist()))]
    groups += [("replace_least", least)] if least is not None else []
    for at, mask in groups:
        count = _sum_by_image(img[mask], n)
        ledger[f"{at}.i2t_pairwise"] = (_sum_by_image(img[mask], n, i2t[mask]), count)
        ledger[f"{at}.t2i_pairwise"] = (_sum_by_image(img[mask], n, t2i[mask]), count)
        counts[at] = {"n_items": int(mask.sum()), "n_images": int((count > 0).sum())}


def binding_gaps(ledger: Ledger) -> dict[str, tuple[float, list[float] | None]]:
    """type -> (replace - swap i2t pairwise, its 95% interval): both ratios' replicates on the same
    resampled images (the paired bootstrap), differenced per replicate."""
    out = {}
    for key in sorted(ledger):
        t = key.split(".")[1] if key.startswith("by_replace.") and key.endswith(".i2t_pairwise") else None
        swap = f"by_swap.{t}.i2t_pairwise"
        if t is not None and swap in ledger:
            reps = intervals.replicates(*ledger[key]) - intervals.replicates(*ledger[swap])
            out[t] = (ratio(*ledger[key]) - ratio(*ledger[swap]), intervals.interval(reps))
    return out


def _recall_hits(sim: np.ndarray, k: int) -> np.ndarray:
    """Per row: its diagonal entry is among the k largest of the row (1/0)."""
    diag = np.diag(sim)[:, None]
    return ((sim > diag).sum(1) < k).astype(np.float64)


def least_replaced(replace: pl.DataFrame, scenes: pl.DataFrame) -> np.ndarray:
    """Mask over replace items: the replaced object is the least salient of a 3-4-object image (the
    objects finding 4's least_pair swaps: is the model's eye on them the same across variants?)."""
    rank = {(s, o): r for s, o, r in scenes.select("scene_id", "obj", "saliency_rank").iter_rows()}
    r = np.array([rank[(s, o)] for s, o in zip(replace["scene_id"].to_list(), replace["obj"].to_list())],
                 dtype=np.int64).reshape(-1)
    last = replace["n_objects"].to_numpy().astype(np.int64) - 1
    return (r == last) & (last >= 2)


def saliency_groups(items: pl.DataFrame, probes: pl.DataFrame, scenes: pl.DataFrame) -> tuple[dict, dict]:
    """Masks over items and over probes by the saliency rank of the objects involved:
    least  the item swaps between the image's least salient object and another / the probe names it;
    other  the complement of least (items: both swapped objects more salient than the least);
    most   the item involves / the probe names the most salient object (rank 0).
    least_pair  the item swaps the two least salient objects of a 3-4-object image / the probe names
           the least salient object of such an image: no salient object can give the answer away.
    `least` and `most` overlap on 2-object images, where every item involves both."""
    rank = {(s, o): r for s, o, r in scenes.select("scene_id", "obj", "saliency_rank").iter_rows()}

    def ranks(table: pl.DataFrame, col: str) -> np.ndarray:
        return np.array([rank[(s, o)] for s, o in zip(table["scene_id"].to_list(), table[col].to_list())],
                        dtype=np.int64).reshape(-1)

    last_i = items["n_objects"].to_numpy().astype(np.int64) - 1
    ra, rb = ranks(items, "obj_a"), ranks(items, "obj_b")
    least_i = (ra == last_i) | (rb == last_i)
    pair_i = (last_i >= 2) & (np.minimum(ra, rb) == last_i - 1) & (np.maximum(ra, rb) == last_i)
    rp = ranks(probes, "obj")
    last_p = probes["n_objects"].to_numpy().astype(np.int64) - 1
    least_p = rp == last_p
    return ({"least": least_i, "other": ~least_i, "most": (ra == 0) | (rb == 0), "least_pair": pair_i},
            {"least": least_p, "other": ~least_p, "most": rp == 0, "least_pair": least_p & (last_p >= 2)})


def binding_ledger(items: pl.DataFrame, probes: pl.DataFrame, s_true: np.ndarray, s_neg: np.ndarray,
                   s_cf: np.ndarray, p_true: np.ndarray, p_false: np.ndarray, sim: np.ndarray,
                   scenes: pl.DataFrame | None = None, replace: Replace | None = None,
                   ) -> tuple[np.ndarray, Ledger, dict]:
    """(image ids, ledger, counts): per metric key the per-image numerator and denominator, and the
    item/image/probe counts per breakdown. `sim` rows/columns are the images that have items, in
    scene_id order. With `scenes` (the benchmark's scene table) also `by_saliency`; with `replace`
    also `replace` and `by_replace` (perception)."""
    # the union keeps each replace item's image in the ledger; every benchmark image has swap items or
    # probes, so the image set, and with it every existing number and interval, does not change
    extra = [] if replace is None else [replace[0]["scene_id"].to_numpy()]
    ids = np.unique(np.concatenate([items["scene_id"].to_numpy(), probes["scene_id"].to_numpy(), *extra]))
    n = len(ids)
    img = np.searchsorted(ids, items["scene_id"].to_numpy())
    pimg = np.searchsorted(ids, probes["scene_id"].to_numpy())
    i2t, t2i, beat = _wins(s_true, s_neg), _wins(s_true, s_cf), s_true > s_neg
    pw = _wins(p_true, p_false)
    ledger: Ledger = {}
    counts: dict = {}
    every_i, every_p = np.ones(items.height, bool), np.ones(probes.height, bool)
    _add_items(ledger, counts, "", img, n, every_i, i2t, t2i, beat)
    _add_probes(ledger, counts, "probe", pimg, n, every_p, pw, "")
    cap_img = np.searchsorted(ids, np.unique(items["scene_id"].to_numpy()))
    ones = _sum_by_image(cap_img, n)
    for name, s in (("i2t", sim), ("t2i", sim.T)):
        for k in (1, 5):
            ledger[f"r{k}_{name}"] = (_sum_by_image(cap_img, n, _recall_hits(s, k)), ones)

    def breakdown(name: str, item_masks: dict, probe_masks: dict) -> None:
        for value, mask in item_masks.items():
            at = f"{name}.{value}"
            _add_items(ledger, counts, at, img, n, mask, i2t, t2i, beat)
            _add_probes(ledger, counts, f"{at}.probe", pimg, n, probe_masks[value], pw, at)

    swaps = sorted(items["swap"].unique())
    breakdown("by_swap", {s: (items["swap"] == s).to_numpy() for s in swaps},
              {s: (probes["swap"] == s).to_numpy() for s in swaps})
    objs = sorted(items["n_objects"].unique())
    breakdown("by_n_objects", {str(k): (items["n_objects"] == k).to_numpy() for k in objs},
              {str(k): (probes["n_objects"] == k).to_numpy() for k in objs})
    for name, flag in (("seen", False), ("unseen", True)):
        _add_items(ledger, counts, name, img, n, (items["unseen"] == flag).to_numpy(), i2t, t2i, beat)
        _add_probes(ledger, counts, f"{name}.probe", pimg, n, (probes["unseen"] == flag).to_numpy(), pw, name)
    if scenes is not None:
        breakdown("by_saliency", *saliency_groups(items, probes, scenes))
    for k in sorted(probes["k"].unique()):
        _add_probes(ledger, counts, f"probe_by_k.{k}", pimg, n, (probes["k"] == k).to_numpy(), pw, None)
    if replace is not None and replace[0].height:
        _add_replace(ledger, counts, ids, replace, None if scenes is None else least_replaced(replace[0], scenes))
    return ids, ledger, counts


def ratio(num: np.ndarray, den: np.ndarray) -> float:
    return float(num.sum() / den.sum())


def _nest(flat: dict) -> dict:
    """{"by_swap.color.probe": x} -> {"by_swap": {"color": {"probe": x}}}."""
    out: dict = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def metrics_of(ledger: Ledger, counts: dict, n_images_sim: int) -> dict:
    """The nested metrics of eval.json, with `ci` (key -> 95% interval over images) and `bootstrap`."""
    out = _nest({k: ratio(*v) for k, v in ledger.items()})
    for at, c in counts.items():
        node = out
        for p in at.split(".") if at else []:
            node = node.setdefault(p, {})
        node.update(c)
    n = n_images_sim
    out["chance"] = {"i2t_pairwise": 0.5, "t2i_pairwise": 0.5, "probe": 0.5,
                     "i2t_strict": out.get("i2t_strict_chance", 0.0),
                     "r1_i2t": min(1.0, 1 / n), "r5_i2t": min(1.0, 5 / n),
                     "r1_t2i": min(1.0, 1 / n), "r5_t2i": min(1.0, 5 / n)}
    out["ci"] = {k: intervals.ratio_interval(*v) for k, v in ledger.items()}
    for t, (gap, ci) in binding_gaps(ledger).items():
        out.setdefault("binding_gap", {})[t] = gap
        out["ci"][f"binding_gap.{t}"] = ci
    out["bootstrap"] = {"unit": "benchmark image", "resamples": intervals.RESAMPLES,
                        "seed": intervals.SEED, "level": intervals.LEVEL}
    return out


def binding_metrics(items: pl.DataFrame, probes: pl.DataFrame, s_true: np.ndarray, s_neg: np.ndarray,
                    s_cf: np.ndarray, p_true: np.ndarray, p_false: np.ndarray, sim: np.ndarray,
                    scenes: pl.DataFrame | None = None, replace: Replace | None = None) -> dict:
    """All metrics. Score arrays are aligned with the rows of `items` / `probes` (`replace`: its table's
    rows); `sim` is the image x caption similarity of the benchmark images (row i = image i, column i
    its caption)."""
    _, ledger, counts = binding_ledger(items, probes, s_true, s_neg, s_cf, p_true, p_false, sim, scenes, replace)
    return metrics_of(ledger, counts, sim.shape[0])


def ledger_table(ids: np.ndarray, ledger: Ledger) -> pl.DataFrame:
    """per_image.parquet: scene_id and, per metric key K, columns `K:num` and `K:den`."""
    cols = {"scene_id": pl.Series(ids.astype(np.int64))}
    for key in sorted(ledger):
        cols[f"{key}:num"] = pl.Series(ledger[key][0].astype(np.float64))
        cols[f"{key}:den"] = pl.Series(ledger[key][1].astype(np.float64))
    return pl.DataFrame(cols)
