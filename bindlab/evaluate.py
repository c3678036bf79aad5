"""`bindlab evaluate`: binding metrics of a CLIP model on the shared benchmark (`data/benchmark/`).

Scores are cosine similarities. Per benchmark item (image, swapped attribute type):
  i2t pairwise  the image scores its true caption above the swapped caption (a tie counts 1/2:
                a bag-of-words model that cannot tell them apart sits exactly at chance);
  i2t strict    per image: the true caption beats every negative of that image (chance for a
                random scorer: mean over images of 1 / (negatives + 1));
  t2i pairwise  the true caption scores the true image above the counterfactual (swapped) image;
  probe         the format-matched one-object probe: the true phrase above the wrongly bound one;
  r1/r5         retrieval recall@k among the benchmark images and their true captions (sanity check).
`binding_metrics` is pure (scores in, numbers out), so the metric code is tested on known scores.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl

from bindlab.contracts import read_benchmark
from bindlab import timing
from bindlab.errors import StageError, require
from bindlab.figures import figure_png
from bindlab.io import write_json, write_parquet
from bindlab.params import Params
from bindlab.paths import DataPaths


HEADLINE = ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe", "r1_i2t")


def headline(result: dict, out: Path) -> None:
    """binding.json: the run's headline numbers with their 95% intervals, the small file `dvc metrics
    show` prints (eval.json keeps the full breakdown)."""
    write_json(out / "binding.json", {k: {"value": result[k], "low": result["ci"][k][0], "high": result["ci"][k][1]}
                                      for k in HEADLINE})


# --- the metrics, from scores ------------------------------------------------------------------
#
# Every metric is a ratio of sums over benchmark images (bindlab/intervals.py): the "ledger" holds,
# per metric key (dotted: "by_swap.color.i2t_pairwise"), the numerator and denominator of each image.
# The point value is sum(num) / sum(den); its interval resamples images; the ledger is written
# beside eval.json (per_image.parquet) so the report can pair two variants on the same images.

Ledger = dict[str, tuple[np.ndarray, np.ndarray]]


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


def _recall_hits(sim: np.ndarray, k: int) -> np.ndarray:
    """Per row: its diagonal entry is among the k largest of the row (1/0)."""
    diag = np.diag(sim)[:, None]
    return ((sim > diag).sum(1) < k).astype(np.float64)


def _recall(sim: np.ndarray, k: int) -> float:
    return float(_recall_hits(sim, k).mean())


def saliency_groups(items: pl.DataFrame, probes: pl.DataFrame, scenes: pl.DataFrame) -> tuple[dict, dict]:
    """Masks over items and over probes by the saliency rank of the objects involved:
    least  the item swaps between the image's least salient object and another / the probe names it;
    other  the complement of least (items: both swapped objects more salient than the least);
    most   the item involves / the probe names the most salient object (rank 0).
    `least` and `most` overlap on 2-object images, where every item involves both."""
    rank = {(s, o): r for s, o, r in scenes.select("scene_id", "obj", "saliency_rank").iter_rows()}

    def ranks(table: pl.DataFrame, col: str) -> np.ndarray:
        return np.array([rank[(s, o)] for s, o in zip(table["scene_id"].to_list(), table[col].to_list())],
                        dtype=np.int64).reshape(-1)

    last_i = items["n_objects"].to_numpy().astype(np.int64) - 1
    ra, rb = ranks(items, "obj_a"), ranks(items, "obj_b")
    least_i = (ra == last_i) | (rb == last_i)
    rp = ranks(probes, "obj")
    least_p = rp == probes["n_objects"].to_numpy().astype(np.int64) - 1
    return ({"least": least_i, "other": ~least_i, "most": (ra == 0) | (rb == 0)},
            {"least": least_p, "other": ~least_p, "most": rp == 0})


def binding_ledger(items: pl.DataFrame, probes: pl.DataFrame, s_true: np.ndarray, s_neg: np.ndarray,
                   s_cf: np.ndarray, p_true: np.ndarray, p_false: np.ndarray, sim: np.ndarray,
                   scenes: pl.DataFrame | None = None) -> tuple[np.ndarray, Ledger, dict]:
    """(image ids, ledger, counts): per metric key the per-image numerator and denominator, and the
    item/image/probe counts per breakdown. `sim` rows/columns are the images that have items, in
    scene_id order. With `scenes` (the benchmark's scene table) also `by_saliency`."""
    ids = np.unique(np.concatenate([items["scene_id"].to_numpy(), probes["scene_id"].to_numpy()]))
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
    return ids, ledger, counts


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
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
    from bindlab import intervals
    out = _nest({k: _ratio(*v) for k, v in ledger.items()})
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
    out["bootstrap"] = {"unit": "benchmark image", "resamples": intervals.RESAMPLES,
                        "seed": intervals.SEED, "level": intervals.LEVEL}
    return out


def binding_metrics(items: pl.DataFrame, probes: pl.DataFrame, s_true: np.ndarray, s_neg: np.ndarray,
                    s_cf: np.ndarray, p_true: np.ndarray, p_false: np.ndarray, sim: np.ndarray,
                    scenes: pl.DataFrame | None = None) -> dict:
    """All metrics. Score arrays are aligned with the rows of `items` / `probes`; `sim` is the
    image x caption similarity of the benchmark images (row i = image i, column i its caption)."""
    _, ledger, counts = binding_ledger(items, probes, s_true, s_neg, s_cf, p_true, p_false, sim, scenes)
    return metrics_of(ledger, counts, sim.shape[0])


def ledger_table(ids: np.ndarray, ledger: Ledger) -> pl.DataFrame:
    """per_image.parquet: scene_id and, per metric key K, columns `K:num` and `K:den`."""
    cols = {"scene_id": pl.Series(ids.astype(np.int64))}
    for key in sorted(ledger):
        cols[f"{key}:num"] = pl.Series(ledger[key][0].astype(np.float64))
        cols[f"{key}:den"] = pl.Series(ledger[key][1].astype(np.float64))
    return pl.DataFrame(cols)


# --- scoring a model on the benchmark ----------------------------------------------------------

class Encoder:
    """Normalised image and text features of a model, in batches, without gradients. `text_fn(model,
    tokens)` encodes a batch of tokens (default: open_clip's encode_text)."""

    def __init__(self, model, tokenizer, image_fn, device: str, batch: int, text_fn=None):
        self.model, self.tokenizer, self.image_fn = model, tokenizer, image_fn
        self.device, self.batch = device, batch
        self.text_fn = text_fn or (lambda m, t: m.encode_text(t, normalize=True))

    def images(self, images: np.ndarray) -> np.ndarray:
        import torch
        out = []
        with torch.no_grad():
            for i in range(0, len(images), self.batch):
                x = self.image_fn(np.array(images[i:i + self.batch]))  # a writable copy of the mmap rows
                out.append(self.model.encode_image(x, normalize=True).float().cpu().numpy())
        return np.concatenate(out)

    def texts(self, texts: list[str]) -> np.ndarray:
        """Features of `texts`, in order. Each distinct text is encoded once, in batches of similar
        token counts, so a text_fn that cuts padding (encode_text_unpadded) cuts nearly all of it:
        the text tower is most of the evaluation's work."""
        import torch
        distinct, where = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
        tokens = np.asarray(self.tokenizer(distinct.tolist()))
        order = np.argsort((tokens != 0).sum(1), kind="stable")
        feats = None
        with torch.no_grad():
            for i in range(0, len(order), self.batch):
                rows = order[i:i + self.batch]
                f = self.text_fn(self.model, torch.as_tensor(tokens[rows], device=self.device)).float().cpu().numpy()
                if feats is None:
                    feats = np.empty((len(distinct), f.shape[1]), dtype=f.dtype)
                feats[rows] = f
        return feats[where.reshape(-1)]


def load_benchmark(folder: Path, n: int | None = None) -> dict:
    """items, probes, images, counterfactual of the benchmark folder, checked (bindlab/contracts.py);
    `n`: the image count params declare."""
    from bindlab.contracts import read_benchmark
    return read_benchmark(Path(folder), n)


def score_benchmark(enc: Encoder, bench: dict, counterfactual: bool = True) -> dict:
    """Every score binding_metrics needs, plus the number of images encoded. Without
    `counterfactual` the counterfactual images (most of the work) are skipped and s_cf is s_true:
    text->image metrics are then meaningless (a tie everywhere)."""
    items, probes = bench["items"], bench["probes"]
    # the true caption of each image that has items (all items of an image share it)
    caps = items.group_by("scene_id", maintain_order=True).agg(pl.col("caption").first()).sort("scene_id")
    scene_ids = caps["scene_id"].to_numpy()
    img = enc.images(bench["images"])   # row = scene_id
    cap = enc.texts(caps["caption"].to_list())
    cap_row = {s: i for i, s in enumerate(scene_ids.tolist())}
    it_scene = items["scene_id"].to_numpy()
    it_cap = cap[[cap_row[s] for s in it_scene.tolist()]]
    neg = enc.texts(items["negative"].to_list())
    s_true = (img[it_scene] * it_cap).sum(1)
    s_neg = (img[it_scene] * neg).sum(1)
    cf = enc.images(bench["counterfactual"]) if counterfactual else np.zeros((0,))
    s_cf = (cf * it_cap).sum(1) if counterfactual else s_true
    pr_scene = probes["scene_id"].to_numpy()
    p_true = (img[pr_scene] * enc.texts(probes["true_caption"].to_list())).sum(1)
    p_false = (img[pr_scene] * enc.texts(probes["false_caption"].to_list())).sum(1)
    sim = img[scene_ids] @ cap.T
    return {"s_true": s_true, "s_neg": s_neg, "s_cf": s_cf, "p_true": p_true, "p_false": p_false,
            "sim": sim, "n_images_encoded": len(img) + len(cf)}


# --- the measured chance level ---------------------------------------------------------------

UNTRAINED_KEYS = ("i2t_strict", "i2t_pairwise", "probe")


def untrained_chance(enc: Encoder, spec: dict, seed: int, bench: dict) -> dict:
    """The image->text metrics of the run's own initialisation (torch seeded with the run's seed, as
    `bindlab train` does), scored on the benchmark: the level a model that learned nothing reaches.
    Strict's computed chance 1 / (negatives + 1) assumes exchangeable scores, which an untrained
    model's correlated scores are not; this measures it instead. Counterfactual images are skipped."""
    import torch
    from bindlab.model import build_model
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG as it was
        torch.manual_seed(seed)
        model = build_model(spec).to(enc.device).eval()
    fresh = Encoder(model, enc.tokenizer, enc.image_fn, enc.device, enc.batch, enc.text_fn)
    sc = score_benchmark(fresh, bench, counterfactual=False)
    _, ledger, _ = binding_ledger(bench["items"], bench["probes"], sc["s_true"], sc["s_neg"], sc["s_cf"],
                                  sc["p_true"], sc["p_false"], sc["sim"])
    from bindlab.intervals import ratio_interval
    return {"seed": seed, **{k: _ratio(*ledger[k]) for k in UNTRAINED_KEYS if k in ledger},
            "ci": {k: ratio_interval(*ledger[k]) for k in UNTRAINED_KEYS if k in ledger}}


# --- loading a model ---------------------------------------------------------------------------

def bindlab_encoder(path: Path, device: str, batch: int, made_by: str = "bindlab train --fresh"):
    """Encoder of a bindlab checkpoint (self-describing), and the checkpoint dict."""
    from bindlab.model import encode_text_unpadded, load_model
    from bindlab.train import images_to_tensor
    model, tokenizer, ck = load_model(path, device, made_by)
    size = ck["model_spec"]["vision"]["image_size"]

    def image_fn(x: np.ndarray):
        import torch.nn.functional as F
        t = images_to_tensor(x, device)
        if t.shape[-1] != size:  # benchmark rendered at another size than the model was trained on
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return t

    return Encoder(model, tokenizer, image_fn, device, batch, encode_text_unpadded), ck


def openclip_encoder(name: str, weights: Path, device: str, batch: int) -> Encoder:
    """Encoder of an open_clip architecture `name` with local weights (never downloads)."""
    import open_clip
    import torch
    from PIL import Image
    if name not in open_clip.list_models():
        raise StageError(f"--model {name!r}: not an open_clip model name (see open_clip.list_models())")
    require(weights, "a local weights file (--checkpoint)")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(weights), device=device)
    except Exception as e:  # noqa: BLE001 - wrong architecture for these weights, etc.
        raise StageError(f"{weights}: cannot load as open_clip {name!r} ({type(e).__name__}: {e})".splitlines()[0]) from None
    model.eval()
    tok = open_clip.get_tokenizer(name)

    def image_fn(x: np.ndarray):
        return torch.stack([preprocess(Image.fromarray(a)) for a in x]).to(device)

    return Encoder(model, tok, image_fn, device, batch)


# --- the stage ---------------------------------------------------------------------------------

def evaluate_stage(params: Params, paths: DataPaths, variant: str | None = None, seed: int | None = None,
                   checkpoint: str | Path | None = None, model_name: str | None = None,
                   out: str | Path | None = None, threads: int | None = None, plots: bool = True) -> dict:
    """Evaluate a run (variant, seed) or any checkpoint; writes eval.json (+ plots) and returns it."""
    import torch
    from bindlab.train import training_params
    _, tp = training_params(params)
    if variant is None and checkpoint is None:
        raise StageError("evaluate: give --variant NAME (a trained run) or --checkpoint PATH")
    seed = params.seed if seed is None else seed
    if variant is not None:
        params.variant(variant)  # unknown names fail here, before any work
    torch.set_num_threads(threads or tp.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bench = load_benchmark(paths.benchmark, params.benchmark.n)
    # the scene table gives each object's saliency rank (the by_saliency breakdown)
    scenes = read_benchmark(paths.benchmark, params.benchmark.n, parts=("scenes",))["scenes"]
    ck = {}
    if model_name:
        if checkpoint is None:
            raise StageError("evaluate: --model NAME needs --checkpoint PATH (local weights)")
        enc = openclip_encoder(model_name, Path(checkpoint), device, tp.eval_batch)
    else:
        path = Path(checkpoint) if checkpoint else paths.model(variant, seed) / "last.pt"
        run = f" --variant {variant} --seed {seed}" if variant and not checkpoint else ""
        enc, ck = bindlab_encoder(path, device, tp.eval_batch, made_by=f"bindlab train{run} --fresh")
    if out is None:
        out = (paths.metrics(variant, seed) if variant and not checkpoint
               else paths.root / "metrics" / "external" / Path(checkpoint).stem)
    out = Path(out)

    t = time.perf_counter()
    scores = score_benchmark(enc, bench)
    seconds = time.perf_counter() - t
    ids, ledger, counts = binding_ledger(bench["items"], bench["probes"], scores["s_true"], scores["s_neg"],
                                         scores["s_cf"], scores["p_true"], scores["p_false"], scores["sim"],
                                         scenes)
    metrics = metrics_of(ledger, counts, scores["sim"].shape[0])
    run = ck.get("run", {})
    if ck:  # a bindlab run: its own initialisation is the "learned nothing" reference
        metrics["chance_measured"] = untrained_chance(enc, ck["model_spec"], run.get("seed", seed), bench)
    result = {"variant": run.get("variant", variant), "seed": run.get("seed", seed if variant else None),
              "steps": ck.get("step"), "batch_size": run.get("batch_size"),
              "hard_negatives": run.get("hard_negatives"),
              "model": model_name or run.get("model"), "checkpoint": str(checkpoint) if checkpoint else None,
              } | metrics
    write_parquet(ledger_table(ids, ledger), out / "per_image.parquet")
    write_json(out / "eval.json", result)
    headline(result, out)
    # wall-clock figures: the run's timing record, not eval.json (same params -> same eval.json bytes)
    timing.update(paths.timing(out), "eval", {"seconds": round(seconds, 2),
                                              "images_per_s": round(scores["n_images_encoded"] / seconds, 1)})
    if plots:
        write_plots(result, out)
    return result


CURVE_KEYS = ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe")


def curve_stage(params: Params, paths: DataPaths, variant: str, seed: int | None = None,
                threads: int | None = None) -> dict:
    """Binding against training (finding 7's curve): every weight snapshot of the run (one per
    train.checkpoint_every steps, and the last) scored on the benchmark, each metric with its 95%
    interval over images, and the training loss at that step; writes data/metrics/VARIANT/seedS/curve.json. Steps and samples, not minutes:
    the file is hashed, wall-clock time is in the run's timing record."""
    import torch
    from bindlab.intervals import ratio_interval
    from bindlab.train import training_params
    _, tp = training_params(params)
    seed = params.seed if seed is None else seed
    v = params.variant(variant)
    folder = paths.model(variant, seed)
    made_by = f"bindlab train --variant {variant} --seed {seed} --fresh"
    snaps = sorted(folder.glob("weights_step*.pt"))
    if not snaps:
        raise StageError(f"{folder}: no weight snapshots (weights_step*.pt); regenerate them with `{made_by}`")
    torch.set_num_threads(threads or tp.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bench = load_benchmark(paths.benchmark, params.benchmark.n)
    # the training loss beside each point (train.log_every's mean, from the run's log): near zero, the
    # in-batch task is solved while binding may still be far from perfect (README, Finding 7's longer run)
    from bindlab.contracts import read_checkpoint
    log = read_checkpoint(folder / "last.pt", made_by, resume=True)["log"]
    loss_at = {int(row[0]): float(row[1]) for row in log}
    points = []
    for i, snap in enumerate(snaps, 1):
        enc, ck = bindlab_encoder(snap, device, tp.eval_batch, made_by=made_by)
        sc = score_benchmark(enc, bench)
        _, ledger, _ = binding_ledger(bench["items"], bench["probes"], sc["s_true"], sc["s_neg"], sc["s_cf"],
                                      sc["p_true"], sc["p_false"], sc["sim"])
        pt = {"step": ck["step"], "samples": ck["step"] * v.batch_size, "loss": loss_at.get(ck["step"])}
        for k in CURVE_KEYS:
            pt[k], pt[f"{k}_ci"] = _ratio(*ledger[k]), ratio_interval(*ledger[k])
        points.append(pt)
        print(f"curve {variant} seed {seed}: step {pt['step']} ({i}/{len(snaps)}): i2t pairwise "
              f"{pt['i2t_pairwise']:.3f}  strict {pt['i2t_strict']:.3f}", flush=True)
    result = {"variant": variant, "seed": seed, "batch_size": v.batch_size, "steps": v.steps, "points": points}
    write_json(paths.metrics(variant, seed) / "curve.json", result)
    return result


def write_plots(result: dict, folder: Path) -> None:
    """by_swap.png (accuracy per swapped attribute type, chance marked) and, when train.tsv is
    beside it, train_curve.png (loss over steps)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from bindlab.io import atomic_path

    swaps = list(result["by_swap"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    w = 0.27
    for j, (key, label) in enumerate([("i2t_pairwise", "image->text"), ("t2i_pairwise", "text->image"),
                                      ("probe", "probe")]):
        vals = [result["by_swap"][s].get(key, np.nan) for s in swaps]
        ax.bar(np.arange(len(swaps)) + (j - 1) * w, vals, w, label=label)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(swaps)), swaps)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{result.get('variant') or result.get('model')}: binding by swapped type", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(folder / "by_swap.png") as tmp:
        tmp.write_bytes(figure_png(fig, dpi=100))

    tsv = folder / "train.tsv"
    if tsv.exists():
        log = pl.read_csv(tsv, separator="\t")
        if log.height:
            fig, ax = plt.subplots(figsize=(6, 3))
            ax.plot(log["step"], log["loss"])
            ax.set_xlabel("step")
            ax.set_ylabel("contrastive loss")
            ax.set_title(f"{result.get('variant')}: training loss", fontsize=9)
            fig.tight_layout()
            with atomic_path(folder / "train_curve.png") as tmp:
                tmp.write_bytes(figure_png(fig, dpi=100))
