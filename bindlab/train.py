"""`bindlab train --variant NAME [--seed S]`: CLIP from scratch on one variant's data.

A nanoGPT-style loop: open_clip's ClipLoss (extended NegCLIP-style when the variant has hard
negatives), AdamW with weight decay on matrices only, linear warmup then cosine, fp32 on CPU and
bf16 autocast on GPU. The batch of step s is a pure function of (seed, s) -- a fresh permutation per
epoch -- so a run resumed from its last checkpoint ends with exactly the weights of an uninterrupted
one. Writes `data/models/VARIANT/seedS/last.pt` (+ a weights snapshot per checkpoint, for accuracy
-vs-steps curves) and `data/metrics/VARIANT/seedS/train.tsv`; both hold only what the seed determines
(same params, threads and machine -> same bytes). Wall-clock figures go to the run's timing record
(bindlab/timing.py), which DVC does not hash.
"""
from __future__ import annotations

import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from tqdm import tqdm

from bindlab import kernels, sampler, timing
from bindlab.contracts import captions_of, images_of, require_passed
from bindlab.errors import StageError
from bindlab.io import atomic_path, together
from bindlab.model import build_model, encode_text_unpadded, make_tokenizer, model_spec, n_parameters, read_checkpoint
from bindlab.params import Params, ParamsError, Variant
from bindlab.paths import DataPaths

TSV_COLUMNS = ["step", "loss", "lr", "logit_scale"]  # wall-clock columns: timing.LOG_COLUMNS


def training_params(params: Params):
    if params.model is None or params.train is None:
        missing = "model" if params.model is None else "train"
        raise ParamsError(f"params: section {missing!r} is missing; `bindlab train` needs `model` and `train`")
    return params.model.config, params.train


class TrainData:
    """Memory-mapped images and pre-tokenised captions (and hard negatives) of one variant."""

    def __init__(self, params: Params, paths: DataPaths, variant: str, v: Variant, tokenizer):
        # both checked against the scene set's size in params, hence against each other
        self.images = images_of(params, paths, v.scenes)
        caps = captions_of(params, paths, variant).sort("scene_id")
        n = self.images.shape[0]
        self.n = n
        self.tokens = tokenizer(caps["caption"].to_list())
        self.hard_negatives = v.hard_negatives
        if v.hard_negatives:
            # (n, H, ctx) tokens and an (n, H) mask: a caption may have fewer swaps than declared
            h, ctx = v.hard_negatives, self.tokens.shape[1]
            self.neg_tokens = np.zeros((n, h, ctx), dtype=np.int64)
            self.neg_valid = np.zeros((n, h), dtype=bool)
            negs = caps["hard_negatives"].to_list()
            flat = [t for row in negs for t in row[:h]]
            flat_tok = tokenizer(flat) if flat else np.zeros((0, ctx), dtype=np.int64)
            k = 0
            for i, row in enumerate(negs):
                m = min(len(row), h)
                self.neg_tokens[i, :m] = flat_tok[k:k + m]
                self.neg_valid[i, :m] = True
                k += m

    def batch_indices(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        """Scene ids of step `step` (bindlab/sampler.py: the statistics stage draws the same batches)."""
        return sampler.batch_indices(self.n, seed, step, batch_size)

    def batch(self, idx: np.ndarray) -> dict:
        b = {"images": np.ascontiguousarray(self.images[idx]), "tokens": self.tokens[idx]}
        if self.hard_negatives:
            b["neg_tokens"] = self.neg_tokens[idx].reshape(-1, self.tokens.shape[1])
            b["neg_valid"] = self.neg_valid[idx].reshape(-1)
        return b


def images_to_tensor(images: np.ndarray, device):
    """uint8 (n, H, W, 3) -> float (n, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(images).to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


def make_loss():
    """open_clip's ClipLoss; with hard negatives, their text features are extra columns of the
    image->text logits (every image must beat them), while text->image stays over the true captions."""
    class NegClipLoss(ClipLoss):
        def forward(self, image_features, text_features, logit_scale, neg_features=None, neg_valid=None):
            if neg_features is None:
                return super().forward(image_features, text_features, logit_scale)
            b = image_features.shape[0]
            logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
            neg_logits = logit_scale * image_features @ neg_features.T
            neg_logits = neg_logits.masked_fill(~neg_valid[None, :], float("-inf"))
            labels = self.get_ground_truth(image_features.device, b)
            return (F.cross_entropy(torch.cat([logits_per_image, neg_logits], 1), labels)
                    + F.cross_entropy(logits_per_text, labels)) / 2

    return NegClipLoss()


def lr_factor(step: int, warmup: int, steps: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model, tp):
    """AdamW, weight decay on matrices only. fused: one kernel over all parameters instead of a
    dozen small ops per tensor, which dominated the CPU step of this small model."""
    decay = [p for p in model.parameters() if p.ndim >= 2]       # matrices and embeddings
    rest = [p for p in model.parameters() if p.ndim < 2]         # biases, norms, logit_scale
    return torch.optim.AdamW([{"params": decay, "weight_decay": tp.weight_decay},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=tp.lr, betas=(0.9, tp.beta2), eps=1e-6, fused=True)


def _save(path: Path, obj) -> None:
    # to a file object: the zip's folder is "archive", not the temp file's random name. In memory first:
    # torch turns a refused write into a RuntimeError; a plain write keeps the OSError (bindlab/io.py)
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())


def _write_tsv(path: Path, rows: list[list[float]]) -> None:
    with atomic_path(path) as tmp:
        lines = ["\t".join(TSV_COLUMNS)]
        for r in rows:
            lines.append("\t".join([str(int(r[0]))] + [f"{x:.6g}" for x in r[1:]]))
        tmp.write_text("\n".join(lines) + "\n")


def train_step(model, opt, sched, loss_fn, b: dict, device: str, autocast, grad_clip: float,
               foreach_clip: bool = True, trim_text: bool = False):
    """One optimiser step on a batch from TrainData.batch; returns the loss tensor. foreach_clip:
    one norm over all gradients at once (False: one per tensor, as in the plain step that
    `python -m benchmarks.train` compares against); trim_text: the text tower skips the padding after
    the batch's longest caption (exact)."""
    images = images_to_tensor(b["images"], device)
    texts = torch.from_numpy(b["tokens"]).to(device)
    n_true = texts.shape[0]
    if "neg_tokens" in b:
        texts = torch.cat([texts, torch.from_numpy(b["neg_tokens"]).to(device)])
    with autocast:
        if trim_text:
            img_f, txt_f = model.encode_image(images, normalize=True), encode_text_unpadded(model, texts)
            scale = model.logit_scale.exp()
        else:   # the plain open_clip forward (and what torch.compile compiles)
            out = model(images, texts)
            img_f, txt_f, scale = out["image_features"], out["text_features"], out["logit_scale"]
        if "neg_tokens" in b:
            loss = loss_fn(img_f, txt_f[:n_true], scale, txt_f[n_true:],
                           torch.from_numpy(b["neg_valid"]).to(device))
        else:
            loss = loss_fn(img_f, txt_f, scale)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=foreach_clip)
    opt.step()
    sched.step()
    with torch.no_grad():  # as CLIP: the temperature may not exceed 100
        model.logit_scale.clamp_(0, math.log(100))
    return loss


def set_threads(threads: int) -> None:
    """The thread count, which with the kernels decides a CPU run's bytes; refuses kernels other than
    the pinned ones (bindlab/kernels.py)."""
    kernels.check(torch.backends.cpu.get_cpu_capability())
    torch.set_num_threads(threads)


def setup_torch(device: str, threads: int) -> None:
    """Thread count, and flush-to-zero on the CPU: Adam's second moments and small gradients decay into
    denormal floats, which the CPU computes on a slow path (the step slowed several-fold without it)."""
    set_threads(threads)
    if device == "cpu":
        torch.set_flush_denormal(True)


def precision_for(device: str, precision: str = "auto") -> str:
    """bf16 or fp32: auto = bf16 on a GPU, fp32 on the CPU; bf16 on a CPU only where it has bf16
    instructions (elsewhere autocast would emulate it, slower than fp32)."""
    if precision == "auto":
        return "bf16" if device == "cuda" else "fp32"
    if precision == "bf16" and device == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "fp32"
    return precision


def autocast_for(device: str, precision: str = "auto"):
    """The autocast context of the run's precision (a no-op context for fp32)."""
    if precision_for(device, precision) == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return _null()


def maybe_compile(model, enabled: bool):
    """torch.compile (inductor) when enabled; the module keeps its state_dict keys via _orig_mod."""
    return torch.compile(model) if enabled else model


def train_stage(params: Params, paths: DataPaths, variant: str, seed: int | None = None, *,
                fresh: bool = False, progress: bool = True, threads: int | None = None,
                require_validation: bool = True, _stop_after: int | None = None) -> Path:
    """Train (or resume) one run; returns the path of its last checkpoint.

    Refuses a variant whose captions have not passed `bindlab validate` unless
    require_validation is False. `_stop_after` ends the loop after that many steps of this call,
    as an interruption would (tests use it to check resuming)."""
    cfg, tp = training_params(params)
    v = params.variant(variant)
    seed = params.seed if seed is None else seed
    if require_validation:
        require_passed(paths, variant)
    spec = model_spec(params)
    tokenizer = make_tokenizer(spec["tokenizer"])
    data = TrainData(params, paths, variant, v, tokenizer)
    h = data.images.shape[1]
    if data.images.shape[1:] != (cfg.vision.image_size, cfg.vision.image_size, 3):
        raise StageError(f"{paths.images(v.scenes)}: images are {h} px but model.configs.{params.model.name}"
                         f".vision.image_size is {cfg.vision.image_size}; make them equal (render.image_size)")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    setup_torch(device, threads or tp.threads)
    run = {"variant": variant, "seed": seed, "batch_size": v.batch_size, "steps": v.steps,
           "hard_negatives": v.hard_negatives, "train": tp.model_dump(), "model": params.model.name}
    model_dir, metrics_dir = paths.model(variant, seed), paths.metrics(variant, seed)
    last = model_dir / "last.pt"
    timing_file = paths.timing(metrics_dir)

    torch.manual_seed(seed)
    model = build_model(spec).to(device)
    opt = _optimizer(model, tp)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, tp.warmup, v.steps, tp.min_lr_ratio))
    loss_fn = make_loss()
    step, rows, train_seconds, times, marks = 0, [], 0.0, [], {}
    if last.exists() and not fresh:
        ck = read_checkpoint(last, f"bindlab train --variant {variant} --seed {seed} --fresh", device, resume=True)
        if ck["run"] != run:
            raise StageError(f"{last}: was made with other settings ({_diff(ck['run'], run)}); "
                             f"delete it or pass --fresh")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng_torch"])
        step, rows = ck["step"], ck["log"]
        before = timing.read(timing_file).get("train", {})  # absent when restored from a DVC cache
        marks = {k: s for k, s in before.get("checkpoints", {}).items() if int(k) <= step}
        times = [r for r in before.get("log", []) if r[0] <= step]
        train_seconds = marks.get(str(step), 0.0)

    def checkpoint() -> None:
        state = {"model": model.state_dict(), "model_spec": spec, "run": run, "step": step}
        with together():  # a checkpoint's files are all new or all as they were
            _save(model_dir / f"weights_step{step:06d}.pt", state)  # small; for accuracy-vs-steps curves
            _save(last, state | {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                 "rng_torch": torch.get_rng_state(), "log": rows})
            _write_tsv(metrics_dir / "train.tsv", rows)
            marks[str(step)] = round(train_seconds, 3)
            timing.update(timing_file, "train", {"seconds": marks[str(step)], "log": times, "checkpoints": marks})

    if step >= v.steps:
        print(f"train {variant} seed {seed}: already complete at step {step} ({last})")
        return last
    print(f"train {variant} seed {seed}: {n_parameters(model) / 1e6:.2f} M parameters, {data.n} images, "
          f"batch {v.batch_size}, steps {step}->{v.steps}, hard negatives {v.hard_negatives}, "
          f"{device}, {torch.get_num_threads()} threads, {precision_for(device, tp.precision)}"
          f"{', compiled' if tp.compile else ''}")
    autocast = autocast_for(device, tp.precision)
    model.train()
    step_model = maybe_compile(model, tp.compile)
    # a terminal gets the tqdm bar; otherwise (a Prefect task reading our output, a log file) one plain
    # line per train.log_every steps. Printed only: nothing here reaches a DVC-hashed output.
    tty = sys.stderr.isatty()
    bar = tqdm(total=v.steps, initial=step, disable=not progress or not tty, unit="step", dynamic_ncols=True)
    acc_loss, acc_n, acc_wait, t_log = 0.0, 0, 0.0, time.perf_counter()
    done_here = 0
    while step < v.steps:
        t0 = time.perf_counter()
        b = data.batch(data.batch_indices(seed, step, v.batch_size))
        t1 = time.perf_counter()
        loss = train_step(step_model, opt, sched, loss_fn, b, device, autocast, tp.grad_clip,
                          trim_text=not tp.compile)
        step += 1
        done_here += 1
        t2 = time.perf_counter()
        train_seconds += t2 - t0
        acc_loss += loss.item()
        acc_n += 1
        acc_wait += t1 - t0
        if step % tp.log_every == 0 or step == v.steps:
            dt = t2 - t_log
            rows.append([step, acc_loss / acc_n, sched.get_last_lr()[0], model.logit_scale.exp().item()])
            times.append([step, round(acc_n * v.batch_size / dt, 1), round(acc_wait / dt, 4),
                          round(train_seconds, 3)])
            bar.set_postfix(loss=f"{acc_loss / acc_n:.3f}", sps=f"{acc_n * v.batch_size / dt:.0f}")
            if progress and not tty:
                print(progress_line(variant, seed, step, v.steps, acc_loss / acc_n, acc_n * v.batch_size / dt,
                                    train_seconds / done_here), flush=True)
            acc_loss, acc_n, acc_wait, t_log = 0.0, 0, 0.0, time.perf_counter()
        bar.update(1)
        if step % tp.checkpoint_every == 0 or step == v.steps:
            checkpoint()
            t_log += time.perf_counter() - t2  # checkpoint time is not step time
        if _stop_after is not None and done_here >= _stop_after:
            break
    bar.close()
    return last


def progress_line(variant: str, seed: int, step: int, steps: int, loss: float, samples_per_s: float,
                  seconds_per_step: float) -> str:
    """`train ideal seed 0: step 200/500 (40%) loss 2.3141, 455 samples/s, ETA 1m 05s`: what the Prefect
    run log shows every train.log_every steps (the ETA from this call's mean step time)."""
    left = round((steps - step) * seconds_per_step)
    return (f"train {variant} seed {seed}: step {step}/{steps} ({100 * step // steps}%) loss {loss:.4f}, "
            f"{samples_per_s:.0f} samples/s, ETA {left // 60}m {left % 60:02d}s")


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in new if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys[:3])
