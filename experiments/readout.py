"""How legible is each attribute value in the rendered pixels? A supervised readout per object.

A small convolutional network looks at a crop centred on one object (native resolution, no resizing,
neighbours included as they fall) and names that object's value of every attribute type and its
shape (one softmax head each). It is trained on the objects of a scene set's rendered images and
scored on the benchmark's objects, and every `--eval-every` steps the per-type accuracy is recorded,
so the curve shows where it levels off. Chance is 1 / (number of values) per type.

It separates two causes of a CLIP model that does not see a type: if this readout names the type's
values almost always, the pixels carry them and the limit is the CLIP model or its objective; if it
cannot, the renders themselves make the values hard to tell apart at this resolution.

    python -m experiments.readout --data data --steps 6000 --out readout.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from bindlab.params import load_params

TYPES_EXTRA = ("shape",)


def crops(images: np.ndarray, scenes: pl.DataFrame, side: int) -> np.ndarray:
    """(objects, side, side, 3) uint8: a window of `side` pixels centred on each object, zero outside
    the image. Rows follow `scenes`."""
    size = images.shape[1]
    half = side // 2
    padded_cache: dict[int, np.ndarray] = {}
    out = np.zeros((scenes.height, side, side, 3), dtype=np.uint8)
    sid, xs, ys = (scenes[c].to_numpy() for c in ("scene_id", "x", "y"))
    for i, (s, x, y) in enumerate(zip(sid.tolist(), xs.tolist(), ys.tolist())):
        if s not in padded_cache:
            padded_cache.clear()
            padded_cache[s] = np.pad(images[s], ((half, half), (half, half), (0, 0)))
        cx, cy = int(round(x * size)), int(round(y * size))
        out[i] = padded_cache[s][cy:cy + side, cx:cx + side]
    return out


def labels(scenes: pl.DataFrame, vocab: dict[str, list[str]]) -> np.ndarray:
    """(objects, types) int64: each object's value index per type, types in `vocab` order."""
    return np.stack([np.array([values.index(v) for v in scenes[t].to_list()], dtype=np.int64)
                     for t, values in vocab.items()], axis=1)


class Readout(nn.Module):
    """Three conv blocks (stride 1, 2, 2: the first keeps every pixel, textures are 4 px periods),
    global pooling, one linear head per type."""

    def __init__(self, classes: list[int], width: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList(nn.Linear(2 * width, c) for c in classes)

    def forward(self, x):
        h = self.body(x)
        return [head(h) for head in self.heads]


def to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> float (n, 3, h, w) in [0, 1], on x's device."""
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def accuracy(model: Readout, x: torch.Tensor, y: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(types,) accuracy of the argmax per head."""
    right = np.zeros(y.shape[1])
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs = model(to_input(x[i:i + batch]))
            for t, o in enumerate(outs):
                right[t] += (o.argmax(1).cpu().numpy() == y[i:i + batch, t]).sum()
    model.train()
    return right / len(x)


def run(data: Path, params_file: Path, scenes_name: str, steps: int, eval_every: int, batch: int,
        side: int, seed: int, threads: int, limit_s: float, train_objects: int | None) -> dict:
    params = load_params(params_file)
    vocab = {**params.vocab.attributes, "shape": params.vocab.shapes}
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    train_scenes = pl.read_parquet(data / "scenes" / f"{scenes_name}.parquet").sort("scene_id", "obj")
    if train_objects is not None:
        train_scenes = train_scenes.head(train_objects)
    bench_scenes = pl.read_parquet(data / "benchmark" / "scenes.parquet").sort("scene_id", "obj")
    xtr = crops(np.load(data / "images" / f"{scenes_name}.npy", mmap_mode="r"), train_scenes, side)
    xbe = crops(np.load(data / "benchmark" / "images.npy", mmap_mode="r"), bench_scenes, side)
    ytr, ybe = labels(train_scenes, vocab), labels(bench_scenes, vocab)
    # on a GPU the crops live there (uint8, a few hundred MB at the default size); on the CPU, as they are
    device = "cuda" if torch.cuda.is_available() else "cpu"
    xtr, xbe = torch.from_numpy(xtr).to(device), torch.from_numpy(xbe).to(device)
    ytr_t = torch.from_numpy(ytr).to(device)

    model = Readout([len(v) for v in vocab.values()]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
    loss_fn = nn.CrossEntropyLoss()
    curve, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.from_numpy(rng.integers(0, len(xtr), batch)).to(device)
        outs = model(to_input(xtr[idx]))
        yb = ytr_t[idx]
        loss = sum(loss_fn(o, yb[:, t]) for t, o in enumerate(outs))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        out_of_time = time.perf_counter() - start > limit_s
        if step % eval_every == 0 or step == steps or out_of_time:
            acc = accuracy(model, xbe, ybe)
            point = {"step": step, "seconds": round(time.perf_counter() - start, 1), "loss": round(loss.item(), 4),
                     **{t: round(float(a), 4) for t, a in zip(vocab, acc)}}
            curve.append(point)
            print(json.dumps(point), flush=True)
        if out_of_time:
            break
    return {"scenes": scenes_name, "train_objects": len(xtr), "benchmark_objects": len(xbe), "crop": side,
            "batch": batch, "seed": seed, "threads": threads, "device": device, "steps_planned": steps,
            "chance": {t: round(1 / len(v), 4) for t, v in vocab.items()}, "curve": curve}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--scenes", default="train", help="the scene set trained on")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--crop", type=int, default=28, help="window side in pixels (covers the largest object)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit-s", type=float, default=float("inf"), help="stop (and score) after this long")
    ap.add_argument("--train-objects", type=int, default=None)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    result = run(a.data, a.params, a.scenes, a.steps, a.eval_every, a.batch, a.crop, a.seed, a.threads,
                 a.limit_s, a.train_objects)
    a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
