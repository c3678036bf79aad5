"""Training and evaluation benchmarks: `bindlab bench train | eval | binding`. They print figures;
`train` and `eval` write nothing, `binding` reads the runs' eval.json and checkpoints.

  train    samples/s of a training step with 1 and 2 threads, and the fraction of step time spent
           waiting for data (target <= 5%), on the default model and the ideal variant's data;
  eval     images/s of the image tower and the seconds of one full benchmark evaluation;
  binding  the study-level figure: ideal vs one_object after their configured training, against
           the issue's targets, and accuracy against training steps/minutes from the snapshots.
"""
from __future__ import annotations

import json
import time

from bindlab.params import Params
from bindlab.paths import DataPaths

TARGETS = {"ideal": {"i2t_pairwise": (">=", 0.90), "i2t_strict": (">=", 0.80)},
           "one_object": {"i2t_strict": ("<=", 0.35)}}


def bench_train(params: Params, paths: DataPaths, n: int | None, variant: str = "ideal") -> None:
    import torch
    from bindlab.model import build_model, make_tokenizer, model_spec, n_parameters
    from bindlab.train import (TrainData, _optimizer, autocast_for, lr_factor, make_loss, train_step,
                               training_params)
    cfg, tp = training_params(params)
    v = params.variant(variant)
    steps = n or 12
    spec = model_spec(params)
    data = TrainData(params, paths, variant, v, make_tokenizer(spec["tokenizer"]))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"bench train: model {params.model.name} ({cfg.vision.image_size} px), variant {variant}, "
          f"batch {v.batch_size}, {steps} timed steps after 3 warm-up steps, {device}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build_model(spec).to(device)
        opt = _optimizer(model, tp)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, tp.warmup, v.steps, tp.min_lr_ratio))
        loss_fn, ac = make_loss(), autocast_for(device)
        wait = total = 0.0
        for step in range(steps + 3):
            t0 = time.perf_counter()
            b = data.batch(data.batch_indices(0, step, v.batch_size))
            t1 = time.perf_counter()
            train_step(model, opt, sched, loss_fn, b, device, ac, tp.grad_clip)
            if device == "cuda":
                torch.cuda.synchronize()
            if step >= 3:
                wait += t1 - t0
                total += time.perf_counter() - t0
        print(f"  {threads} thread{'s' if threads > 1 else ' '}: {steps * v.batch_size / total:7.1f} samples/s  "
              f"{total / steps:5.2f} s/step  data wait {100 * wait / total:4.1f}% of step time "
              f"({n_parameters(model) / 1e6:.2f} M parameters)")
    print("  targets: data wait <= 5%; the spike reached ~225 samples/s with 2 threads at batch 256")


def bench_eval(params: Params, paths: DataPaths, n: int | None, variant: str = "ideal") -> None:
    import torch
    from bindlab.evaluate import Encoder, bindlab_encoder, load_benchmark, score_benchmark
    from bindlab.model import build_model, make_tokenizer, model_spec
    from bindlab.train import images_to_tensor, training_params
    _, tp = training_params(params)
    bench = load_benchmark(paths.benchmark)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    last = paths.model(variant, params.seed) / "last.pt"
    for threads in (1, 2):
        torch.set_num_threads(threads)
        if last.exists():
            enc, _ = bindlab_encoder(last, device, tp.eval_batch)
        else:  # timing only: an untrained model of the configured size is as fast
            spec = model_spec(params)
            enc = Encoder(build_model(spec).eval().to(device), make_tokenizer(spec["tokenizer"]),
                          lambda x: images_to_tensor(x, device), device, tp.eval_batch)
        imgs = bench["images"][: n or len(bench["images"])]
        enc.images(imgs[:64])  # warm-up
        t = time.perf_counter()
        enc.images(imgs)
        img_rate = len(imgs) / (time.perf_counter() - t)
        t = time.perf_counter()
        s = score_benchmark(enc, bench)
        full = time.perf_counter() - t
        print(f"bench eval ({threads} thread{'s' if threads > 1 else ''}): image tower {img_rate:,.0f} images/s; "
              f"full benchmark ({s['n_images_encoded']} images, {len(bench['items'])} items, "
              f"{len(bench['probes'])} probes) in {full:.1f} s")


def _check(value: float, rule: tuple[str, float]) -> str:
    op, target = rule
    ok = value >= target if op == ">=" else value <= target
    return f"{'PASS' if ok else 'FAIL'} (target {op} {target:.2f})"


def _trained_counts(params: Params, variant: str) -> set[int]:
    """Object counts of the variant's training scenes (the benchmark also has others)."""
    spec = params.scene_sets[params.variant(variant).scenes].objects
    return {k for k, p in spec.items() if p > 0}


def bench_binding(params: Params, paths: DataPaths, n: int | None, curve: bool = True) -> None:
    """Reads data/metrics/V/seedS/eval.json of ideal and one_object; evaluates their weight snapshots
    for the accuracy-vs-training curve (not written anywhere)."""
    from bindlab import timing
    from bindlab.errors import StageError
    from bindlab.evaluate import bindlab_encoder, binding_metrics, load_benchmark, score_benchmark
    from bindlab.train import training_params
    _, tp = training_params(params)
    seed = params.seed
    bench = load_benchmark(paths.benchmark) if curve else None
    print(f"bench binding (seed {seed}): binding after training, on the shared benchmark "
          f"({paths.benchmark})")
    for variant in ("ideal", "one_object"):
        f = paths.metrics(variant, seed) / "eval.json"
        if not f.exists():
            if variant == "ideal":
                raise StageError(f"{f} is missing; run `bindlab train --variant {variant}` and "
                                 f"`bindlab evaluate --variant {variant}` first")
            print(f"  {variant}: not run ({f} is missing)")
            continue
        r = json.loads(f.read_text())
        r["train_seconds"] = timing.train_seconds(paths.timing(f.parent)) or float("nan")  # nan: not recorded
        print(f"  {variant}: {r['steps']} steps x batch {r['batch_size']} in {r['train_seconds'] / 60:.1f} min "
              f"of training: i2t pairwise {r['i2t_pairwise']:.3f}  strict {r['i2t_strict']:.3f} "
              f"(chance {r['chance']['i2t_strict']:.3f})  t2i {r['t2i_pairwise']:.3f}  probe {r['probe']:.3f}  "
              f"R@1 {r['r1_i2t']:.3f}")
        for key, rule in TARGETS[variant].items():
            print(f"      {key} {r[key]:.3f}  {_check(r[key], rule)}")
        print("      by swap (i2t pairwise): " + "  ".join(f"{s} {d['i2t_pairwise']:.3f}"
                                                           for s, d in r["by_swap"].items()))
        print("      by objects:  " + "  ".join(f"{k}: pairwise {d['i2t_pairwise']:.3f} strict {d['i2t_strict']:.3f}"
                                                 for k, d in r["by_n_objects"].items()))
        trained = _trained_counts(params, variant)
        sub = [d for k, d in r["by_n_objects"].items() if int(k) in trained]
        if sub and len(sub) < len(r["by_n_objects"]):
            pw = sum(d["i2t_pairwise"] * d["n_items"] for d in sub) / sum(d["n_items"] for d in sub)
            st = sum(d["i2t_strict"] * d["n_images"] for d in sub) / sum(d["n_images"] for d in sub)
            t = TARGETS[variant]
            print(f"      on the object counts it was trained on ({', '.join(map(str, sorted(trained)))}): "
                  f"pairwise {pw:.3f} {_check(pw, t['i2t_pairwise']) if 'i2t_pairwise' in t else ''}  "
                  f"strict {st:.3f} {_check(st, t['i2t_strict'])}")
        if curve:
            snaps = sorted(paths.model(variant, seed).glob("weights_step*.pt"))
            print(f"      {'step':>6} {'minutes':>8} {'pairwise':>9} {'strict':>7} {'t2i':>6} {'probe':>6}")
            for snap in snaps:
                enc, ck = bindlab_encoder(snap, "cpu", tp.eval_batch)
                s = score_benchmark(enc, bench)
                m = binding_metrics(bench["items"], bench["probes"], s["s_true"], s["s_neg"], s["s_cf"],
                                    s["p_true"], s["p_false"], s["sim"])
                minutes = (timing.train_seconds(paths.timing(paths.metrics(variant, seed)), ck["step"])
                           or float("nan")) / 60
                print(f"      {ck['step']:>6} {minutes:>8.1f} {m['i2t_pairwise']:>9.3f} "
                      f"{m['i2t_strict']:>7.3f} {m['t2i_pairwise']:>6.3f} {m['probe']:>6.3f}")


def run(what: str, params: Params, args) -> None:
    paths = DataPaths(getattr(args, "data", "data"))
    {"train": bench_train, "eval": bench_eval, "binding": bench_binding}[what](params, paths, args.n)
