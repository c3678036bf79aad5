"""`bindlab evaluate`: binding metrics of a CLIP model on the shared benchmark (`data/benchmark/`).

The encoders (a bindlab checkpoint, or an open_clip architecture with local weights) score every
benchmark item, its probes and the retrieval matrix; the metrics themselves, from those scores, are
bindlab/metrics.py. Stages: `evaluate_stage` (eval.json, per_image.parquet, binding.json and plots of
one run or checkpoint) and `curve_stage` (every weight snapshot of a run: binding against training).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import open_clip  # already loaded by bindlab.model (open_clip.model): importing it here costs nothing
import polars as pl
import torch
import torch.nn.functional as F
from PIL import Image

from bindlab import timing
from bindlab.contracts import read_benchmark, read_chance
from bindlab.errors import StageError, require
from bindlab.figures import figure_png
from bindlab.intervals import ratio_interval
from bindlab.io import atomic_path, together, write_json, write_parquet
from bindlab.metrics import CURVE_KEYS, UNTRAINED_KEYS, binding_ledger, headline, ledger_table, metrics_of, ratio
from bindlab.model import build_model, encode_text_unpadded, load_model, read_checkpoint
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.train import images_to_tensor, set_threads, training_params


# --- scoring a model on the benchmark ----------------------------------------------------------

class Encoder:
    """Normalised image and text features of a model, in batches, without gradients. `text_fn(model,
    tokens)` encodes a batch of tokens (default: open_clip's encode_text)."""

    def __init__(self, model, tokenizer, image_fn, device: str, batch: int, text_fn=None):
        self.model, self.tokenizer, self.image_fn = model, tokenizer, image_fn
        self.device, self.batch = device, batch
        self.text_fn = text_fn or (lambda m, t: m.encode_text(t, normalize=True))

    def images(self, images: np.ndarray) -> np.ndarray:
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
    """items, probes, images, counterfactual (and replace, replace_counterfactual where the folder has
    replace items) of the benchmark folder, checked (bindlab/contracts.py); `n`: the image count
    params declare."""
    bench = read_benchmark(Path(folder), n)
    # replace items are optional: a benchmark without them is scored on its swap items alone
    if (Path(folder) / "replace.parquet").exists():
        bench |= read_benchmark(Path(folder), n, parts=("replace", "replace_counterfactual"))
    return bench


def score_benchmark(enc: Encoder, bench: dict, counterfactual: bool = True, replace: bool | None = None) -> dict:
    """Every score binding_metrics needs, plus the number of images encoded. Without
    `counterfactual` the counterfactual images (most of the work) are skipped and s_cf is s_true:
    text->image metrics are then meaningless (a tie everywhere). `replace` (default: as
    `counterfactual`, since the pass without counterfactual images needs only the swap items): score
    bench["replace"] too, as scores["replace"] (metrics.Replace), else that is None."""
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
    scores = {"s_true": s_true, "s_neg": s_neg, "s_cf": s_cf, "p_true": p_true, "p_false": p_false,
              "sim": sim, "n_images_encoded": len(img) + len(cf), "replace": None}
    if "replace" in bench and (counterfactual if replace is None else replace):
        scores |= _score_replace(enc, bench, img, dict(zip(caps["caption"].to_list(), cap)), counterfactual)
        scores["n_images_encoded"] += len(bench["replace_counterfactual"]) if counterfactual else 0
    return scores


def _score_replace(enc: Encoder, bench: dict, img: np.ndarray, known: dict, counterfactual: bool) -> dict:
    """The replace items' scores: the image's true caption (its features from `known`, caption ->
    features, where the image has swap items) against the replaced caption, and against the replace
    counterfactual image (without `counterfactual`: r_cf is r_true)."""
    rep = bench["replace"]
    if rep.height == 0:
        return {"replace": None}
    todo = sorted(set(rep["caption"].to_list()) - set(known))
    if todo:
        known = known | dict(zip(todo, enc.texts(todo)))
    r_cap = np.stack([known[c] for c in rep["caption"].to_list()])
    scene = rep["scene_id"].to_numpy()
    r_true = (img[scene] * r_cap).sum(1)
    r_neg = (img[scene] * enc.texts(rep["negative"].to_list())).sum(1)
    r_cf = (enc.images(bench["replace_counterfactual"]) * r_cap).sum(1) if counterfactual else r_true
    return {"replace": (rep, r_true, r_neg, r_cf)}


# --- the measured chance level ---------------------------------------------------------------

def untrained_chance(enc: Encoder, spec: dict, seed: int, bench: dict) -> dict:
    """The image->text metrics of the run's own initialisation (torch seeded with the run's seed, as
    `bindlab train` does), scored on the benchmark: the level a model that learned nothing reaches.
    Strict's computed chance 1 / (negatives + 1) assumes exchangeable scores, which an untrained
    model's correlated scores are not; this measures it instead. Counterfactual images are skipped."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG as it was
        torch.manual_seed(seed)
        model = build_model(spec).to(enc.device).eval()
    fresh = Encoder(model, enc.tokenizer, enc.image_fn, enc.device, enc.batch, enc.text_fn)
    sc = score_benchmark(fresh, bench, counterfactual=False)
    _, ledger, _ = binding_ledger(bench["items"], bench["probes"], sc["s_true"], sc["s_neg"], sc["s_cf"],
                                  sc["p_true"], sc["p_false"], sc["sim"])
    return {"seed": seed, **{k: ratio(*ledger[k]) for k in UNTRAINED_KEYS if k in ledger},
            "ci": {k: ratio_interval(*ledger[k]) for k in UNTRAINED_KEYS if k in ledger}}


def chance_basis(spec: dict, seed: int, batch: int, benchmark: Path) -> dict:
    """What untrained_chance's result depends on besides the code, kept beside it in data/chance/seedS.json
    (`bindlab chance`): the seed, the model spec (configs and tokenizer), the batch (texts are encoded in
    batches cut to their longest, which can move the last bits) and the benchmark's tables and images
    (its counterfactual images are never scored there)."""
    files = sorted(p for p in Path(benchmark).iterdir() if p.suffix == ".parquet" or p.name == "images.npy")
    md5 = {}
    for f in files:
        with open(f, "rb") as fh:
            md5[f.name] = hashlib.file_digest(fh, "md5").hexdigest()
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return {"seed": seed, "model_spec_sha256": hashlib.sha256(text.encode()).hexdigest(), "eval_batch": batch,
            "benchmark_md5": md5}


def measured_chance(enc: Encoder, spec: dict, seed: int, bench: dict, benchmark: Path, stored: Path | None) -> dict:
    """untrained_chance, taken from `stored` (the seed's `bindlab chance` file, checked) when that was
    computed for this spec, seed, batch and benchmark: the same numbers, without the pass."""
    if stored is not None and stored.exists():
        kept = read_chance(stored, seed)
        if all(kept[k] == v for k, v in chance_basis(spec, seed, enc.batch, benchmark).items()):
            return kept["chance_measured"]
        print(f"{stored}: made for another model spec, eval batch or benchmark; measuring the chance level here")
    return untrained_chance(enc, spec, seed, bench)


# --- loading a model ---------------------------------------------------------------------------

def bindlab_encoder(path: Path, device: str, batch: int, made_by: str = "bindlab train --fresh"):
    """Encoder of a bindlab checkpoint (self-describing), and the checkpoint dict."""
    model, tokenizer, ck = load_model(path, device, made_by)
    return Encoder(model, tokenizer, spec_image_fn(ck["model_spec"], device), device, batch, encode_text_unpadded), ck


def spec_image_fn(spec: dict, device: str):
    """Benchmark images (uint8 rows) -> the input of the model that `spec` builds."""
    size = spec["vision"]["image_size"]

    def image_fn(x: np.ndarray):
        t = images_to_tensor(x, device)
        if t.shape[-1] != size:  # benchmark rendered at another size than the model was trained on
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return t

    return image_fn


def openclip_encoder(name: str, weights: Path, device: str, batch: int) -> Encoder:
    """Encoder of an open_clip architecture `name` with local weights (never downloads)."""
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
    _, tp = training_params(params)
    if variant is None and checkpoint is None:
        raise StageError("evaluate: give --variant NAME (a trained run) or --checkpoint PATH")
    seed = params.seed if seed is None else seed
    if variant is not None:
        params.variant(variant)  # unknown names fail here, before any work
    set_threads(threads or tp.threads)
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
                                         scenes, scores["replace"])
    metrics = metrics_of(ledger, counts, scores["sim"].shape[0])
    run = ck.get("run", {})
    if ck:  # a bindlab run: its own initialisation is the "learned nothing" reference
        # a study run finds it measured once per seed (`bindlab chance`); other checkpoints measure it here
        stored = paths.chance(run.get("seed", seed)) if variant and not checkpoint else None
        metrics["chance_measured"] = measured_chance(enc, ck["model_spec"], run.get("seed", seed), bench,
                                                     paths.benchmark, stored)
    result = {"variant": run.get("variant", variant), "seed": run.get("seed", seed if variant else None),
              "steps": ck.get("step"), "batch_size": run.get("batch_size"),
              "hard_negatives": run.get("hard_negatives"),
              "model": model_name or run.get("model"), "checkpoint": str(checkpoint) if checkpoint else None,
              } | metrics
    with together():
        write_parquet(ledger_table(ids, ledger), out / "per_image.parquet")
        write_json(out / "eval.json", result)
        headline(result, out)
        # wall-clock figures: the run's timing record, not eval.json (same params -> same eval.json bytes)
        timing.update(paths.timing(out), "eval", {"seconds": round(seconds, 2),
                                                  "images_per_s": round(scores["n_images_encoded"] / seconds, 1)})
        if plots:
            write_plots(result, out)
    return result


def curve_stage(params: Params, paths: DataPaths, variant: str, seed: int | None = None,
                threads: int | None = None) -> dict:
    """Binding against training (finding 7's curve): every weight snapshot of the run (one per
    train.checkpoint_every steps, and the last) scored on the benchmark, each metric with its 95%
    interval over images, and the training loss at that step; writes data/metrics/VARIANT/seedS/curve.json. Steps and samples, not minutes:
    the file is hashed, wall-clock time is in the run's timing record."""
    _, tp = training_params(params)
    seed = params.seed if seed is None else seed
    v = params.variant(variant)
    folder = paths.model(variant, seed)
    made_by = f"bindlab train --variant {variant} --seed {seed} --fresh"
    snaps = sorted(folder.glob("weights_step*.pt"))
    if not snaps:
        raise StageError(f"{folder}: no weight snapshots (weights_step*.pt); regenerate them with `{made_by}`")
    set_threads(threads or tp.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bench = load_benchmark(paths.benchmark, params.benchmark.n)
    # the training loss beside each point (train.log_every's mean, from the run's log): near zero, the
    # in-batch task is solved while binding may still be far from perfect (README, finding 7)
    log = read_checkpoint(folder / "last.pt", made_by, resume=True)["log"]
    loss_at = {int(row[0]): float(row[1]) for row in log}
    points = []
    for i, snap in enumerate(snaps, 1):
        enc, ck = bindlab_encoder(snap, device, tp.eval_batch, made_by=made_by)
        sc = score_benchmark(enc, bench)
        _, ledger, _ = binding_ledger(bench["items"], bench["probes"], sc["s_true"], sc["s_neg"], sc["s_cf"],
                                      sc["p_true"], sc["p_false"], sc["sim"], replace=sc["replace"])
        pt = {"step": ck["step"], "samples": ck["step"] * v.batch_size, "loss": loss_at.get(ck["step"])}
        for k in CURVE_KEYS:
            pt[k], pt[f"{k}_ci"] = ratio(*ledger[k]), ratio_interval(*ledger[k])
        # per type: binding (swap) and perception (replace) i2t pairwise, for the report's plot of both
        for name in ("by_swap", "by_replace"):
            per_type = {key.split(".")[1]: ratio(*ledger[key]) for key in sorted(ledger)
                        if key.startswith(f"{name}.") and key.endswith(".i2t_pairwise")}
            if per_type:
                pt[name] = per_type
        points.append(pt)
        print(f"curve {variant} seed {seed}: step {pt['step']} ({i}/{len(snaps)}): i2t pairwise "
              f"{pt['i2t_pairwise']:.3f}  strict {pt['i2t_strict']:.3f}", flush=True)
    result = {"variant": variant, "seed": seed, "batch_size": v.batch_size, "steps": v.steps, "points": points}
    write_json(paths.metrics(variant, seed) / "curve.json", result)
    return result


def write_plots(result: dict, folder: Path) -> None:
    """by_swap.png (accuracy per swapped attribute type, chance marked; beside binding, perception:
    the replace items' image->text accuracy per type, where eval.json has it) and, when train.tsv is
    beside it, train_curve.png (loss over steps)."""
    import matplotlib   # deferred: only runs that write plots pay for it (curve_stage and plots=False do not)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swaps = list(result["by_swap"])
    bars = [("by_swap", "i2t_pairwise", "image->text"), ("by_swap", "t2i_pairwise", "text->image"),
            ("by_swap", "probe", "probe")]
    if result.get("by_replace"):
        bars.append(("by_replace", "i2t_pairwise", "replace image->text (perception)"))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    w = 0.81 / len(bars)
    for j, (group, key, label) in enumerate(bars):
        vals = [result[group].get(s, {}).get(key, np.nan) for s in swaps]
        ax.bar(np.arange(len(swaps)) + (j - (len(bars) - 1) / 2) * w, vals, w, label=label)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(swaps)), swaps)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    what = "binding (swap) and perception (replace) by type" if len(bars) > 3 else "binding by swapped type"
    ax.set_title(f"{result.get('variant') or result.get('model')}: {what}", fontsize=9)
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
