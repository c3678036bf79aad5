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

from bindlab import timing
from bindlab.errors import StageError, require
from bindlab.figures import figure_png
from bindlab.io import write_json
from bindlab.params import Params
from bindlab.paths import DataPaths


HEADLINE = ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe", "r1_i2t")


def headline(result: dict, out: Path) -> None:
    """binding.json: the run's headline numbers, the small file `dvc metrics show` prints (eval.json
    keeps the full breakdown)."""
    write_json(out / "binding.json", {k: result[k] for k in HEADLINE})


# --- the metrics, from scores ------------------------------------------------------------------

def _wins(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    return (pos > neg) + 0.5 * (pos == neg)


def _item_metrics(items: pl.DataFrame, s_true, s_neg, s_cf) -> dict:
    """Item-level metrics over the rows of `items` (its row order indexes the score arrays)."""
    if items.height == 0:
        return {"n_items": 0, "n_images": 0}
    idx = items["row"].to_numpy()
    beat = s_true[idx] > s_neg[idx]
    per_image = pl.DataFrame({"scene_id": items["scene_id"], "beat": beat}).group_by("scene_id", maintain_order=True).agg(
        pl.col("beat").all().alias("all"), pl.len().alias("m"))
    return {"i2t_pairwise": float(_wins(s_true[idx], s_neg[idx]).mean()),
            "t2i_pairwise": float(_wins(s_true[idx], s_cf[idx]).mean()),
            "i2t_strict": float(per_image["all"].mean()),
            "i2t_strict_chance": float((1.0 / (per_image["m"].to_numpy() + 1)).mean()),
            "n_items": items.height, "n_images": per_image.height}


def _probe_metrics(probes: pl.DataFrame, p_true, p_false) -> dict:
    if probes.height == 0:
        return {}
    idx = probes["row"].to_numpy()
    return {"probe": float(_wins(p_true[idx], p_false[idx]).mean()), "n_probes": probes.height}


def _recall(sim: np.ndarray, k: int) -> float:
    """Fraction of rows whose diagonal entry is among the k largest of the row."""
    diag = np.diag(sim)[:, None]
    rank = (sim > diag).sum(1)
    return float((rank < k).mean())


def binding_metrics(items: pl.DataFrame, probes: pl.DataFrame, s_true: np.ndarray, s_neg: np.ndarray,
                    s_cf: np.ndarray, p_true: np.ndarray, p_false: np.ndarray, sim: np.ndarray) -> dict:
    """All metrics. Score arrays are aligned with the rows of `items` / `probes`; `sim` is the
    image x caption similarity of the benchmark images (row i = image i, column i its caption)."""
    items = items.with_row_index("row")
    probes = probes.with_row_index("row")
    out = _item_metrics(items, s_true, s_neg, s_cf) | _probe_metrics(probes, p_true, p_false)
    n = sim.shape[0]
    out |= {"r1_i2t": _recall(sim, 1), "r5_i2t": _recall(sim, 5),
            "r1_t2i": _recall(sim.T, 1), "r5_t2i": _recall(sim.T, 5)}
    out["chance"] = {"i2t_pairwise": 0.5, "t2i_pairwise": 0.5, "probe": 0.5,
                     "i2t_strict": out.get("i2t_strict_chance", 0.0),
                     "r1_i2t": min(1.0, 1 / n), "r5_i2t": min(1.0, 5 / n),
                     "r1_t2i": min(1.0, 1 / n), "r5_t2i": min(1.0, 5 / n)}
    out["by_swap"] = {s: _item_metrics(items.filter(pl.col("swap") == s), s_true, s_neg, s_cf)
                      | _probe_metrics(probes.filter(pl.col("swap") == s), p_true, p_false)
                      for s in sorted(items["swap"].unique())}
    out["by_n_objects"] = {str(k): _item_metrics(items.filter(pl.col("n_objects") == k), s_true, s_neg, s_cf)
                           | _probe_metrics(probes.filter(pl.col("n_objects") == k), p_true, p_false)
                           for k in sorted(items["n_objects"].unique())}
    for name, flag in (("seen", False), ("unseen", True)):
        out[name] = (_item_metrics(items.filter(pl.col("unseen") == flag), s_true, s_neg, s_cf)
                     | _probe_metrics(probes.filter(pl.col("unseen") == flag), p_true, p_false))
    out["probe_by_k"] = {str(k): _probe_metrics(probes.filter(pl.col("k") == k), p_true, p_false).get("probe")
                         for k in sorted(probes["k"].unique())}
    return out


# --- scoring a model on the benchmark ----------------------------------------------------------

class Encoder:
    """Normalised image and text features of a model, in batches, without gradients."""

    def __init__(self, model, tokenizer, image_fn, device: str, batch: int):
        self.model, self.tokenizer, self.image_fn = model, tokenizer, image_fn
        self.device, self.batch = device, batch

    def images(self, images: np.ndarray) -> np.ndarray:
        import torch
        out = []
        with torch.no_grad():
            for i in range(0, len(images), self.batch):
                x = self.image_fn(np.array(images[i:i + self.batch]))  # a writable copy of the mmap rows
                out.append(self.model.encode_image(x, normalize=True).float().cpu().numpy())
        return np.concatenate(out)

    def texts(self, texts: list[str]) -> np.ndarray:
        import torch
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch):
                t = torch.as_tensor(np.asarray(self.tokenizer(texts[i:i + self.batch])), device=self.device)
                out.append(self.model.encode_text(t, normalize=True).float().cpu().numpy())
        return np.concatenate(out)


def load_benchmark(folder: Path) -> dict:
    for name in ("items.parquet", "probes.parquet", "images.npy", "counterfactual.npy"):
        require(folder / name, "bindlab benchmark")
    b = {"items": pl.read_parquet(folder / "items.parquet").sort("item_id"),
         "probes": pl.read_parquet(folder / "probes.parquet").sort("probe_id"),
         "images": np.load(folder / "images.npy", mmap_mode="r"),
         "counterfactual": np.load(folder / "counterfactual.npy", mmap_mode="r")}
    if b["items"]["item_id"].to_list() != list(range(len(b["counterfactual"]))):
        raise StageError(f"{folder / 'items.parquet'}: item_id must be 0..{len(b['counterfactual']) - 1}, "
                         f"the rows of counterfactual.npy")
    return b


def score_benchmark(enc: Encoder, bench: dict) -> dict:
    """Every score binding_metrics needs, plus the number of images encoded."""
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
    cf = enc.images(bench["counterfactual"])
    s_true = (img[it_scene] * it_cap).sum(1)
    s_neg = (img[it_scene] * neg).sum(1)
    s_cf = (cf * it_cap).sum(1)
    pr_scene = probes["scene_id"].to_numpy()
    p_true = (img[pr_scene] * enc.texts(probes["true_caption"].to_list())).sum(1)
    p_false = (img[pr_scene] * enc.texts(probes["false_caption"].to_list())).sum(1)
    sim = img[scene_ids] @ cap.T
    return {"s_true": s_true, "s_neg": s_neg, "s_cf": s_cf, "p_true": p_true, "p_false": p_false,
            "sim": sim, "n_images_encoded": len(img) + len(cf)}


# --- loading a model ---------------------------------------------------------------------------

def bindlab_encoder(path: Path, device: str, batch: int):
    """Encoder of a bindlab checkpoint (self-describing), and the checkpoint dict."""
    from bindlab.model import load_model
    from bindlab.train import images_to_tensor
    model, tokenizer, ck = load_model(path, device)
    size = ck["model_spec"]["vision"]["image_size"]

    def image_fn(x: np.ndarray):
        import torch.nn.functional as F
        t = images_to_tensor(x, device)
        if t.shape[-1] != size:  # benchmark rendered at another size than the model was trained on
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return t

    return Encoder(model, tokenizer, image_fn, device, batch), ck


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
    bench = load_benchmark(paths.benchmark)
    ck = {}
    if model_name:
        if checkpoint is None:
            raise StageError("evaluate: --model NAME needs --checkpoint PATH (local weights)")
        enc = openclip_encoder(model_name, Path(checkpoint), device, tp.eval_batch)
    else:
        path = Path(checkpoint) if checkpoint else paths.model(variant, seed) / "last.pt"
        enc, ck = bindlab_encoder(path, device, tp.eval_batch)
    if out is None:
        out = (paths.metrics(variant, seed) if variant and not checkpoint
               else paths.root / "metrics" / "external" / Path(checkpoint).stem)
    out = Path(out)

    t = time.perf_counter()
    scores = score_benchmark(enc, bench)
    seconds = time.perf_counter() - t
    metrics = binding_metrics(bench["items"], bench["probes"], scores["s_true"], scores["s_neg"],
                              scores["s_cf"], scores["p_true"], scores["p_false"], scores["sim"])
    run = ck.get("run", {})
    result = {"variant": run.get("variant", variant), "seed": run.get("seed", seed if variant else None),
              "steps": ck.get("step"), "batch_size": run.get("batch_size"),
              "hard_negatives": run.get("hard_negatives"),
              "model": model_name or run.get("model"), "checkpoint": str(checkpoint) if checkpoint else None,
              } | metrics
    write_json(out / "eval.json", result)
    headline(result, out)
    # wall-clock figures: the run's timing record, not eval.json (same params -> same eval.json bytes)
    timing.update(paths.timing(out), "eval", {"seconds": round(seconds, 2),
                                              "images_per_s": round(scores["n_images_encoded"] / seconds, 1)})
    if plots:
        write_plots(result, out)
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
