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

# issue 9: ideal data reaches these within 8 minutes of training on 2 cores
TARGETS = {"ideal": {"i2t_pairwise": (">=", 0.93), "i2t_strict": (">=", 0.80)},
           "one_object": {"i2t_strict": ("<=", 0.35)}}


# Each candidate is the plain step plus some switches; "today" is the step as it was before issue 9
# (fp32, eager, per-tensor AdamW and clipping, torch's MultiheadAttention, no flush-to-zero).
TODAY_PATCH = 8   # the cpu_vit patch size before issue 9
CANDIDATES = {
    "today (fp32 eager)": {},
    "+ flush-to-zero": {"ftz": True},
    "+ fused AdamW, foreach clipping": {"fused": True},
    "+ custom attention": {"block": "custom"},
    "+ bf16 autocast": {"precision": "bf16"},
    "+ text without padding": {"trim": True},
    "+ torch.compile": {"compile": True},
    "ftz + fused + custom + unpadded": {"ftz": True, "fused": True, "block": "custom", "trim": True},
    "ftz + fused + custom + bf16 + compile": {"ftz": True, "fused": True, "block": "custom", "precision": "bf16",
                                              "compile": True},
}


def _step_worker(conn, params_file: str, data_root: str, variant: str, cand: dict, threads: int) -> None:
    """One candidate in its own process (flush-to-zero is per thread, compile caches per process):
    builds the model and then runs the steps the parent asks for, answering with their seconds."""
    import torch
    from bindlab.model import build_model, make_tokenizer, model_spec
    from bindlab.params import load_params
    from bindlab.train import TrainData, autocast_for, lr_factor, make_loss, maybe_compile, train_step
    params = load_params(params_file)
    tp, v = params.train, params.variant(variant)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(bool(cand.get("ftz")))
    spec = model_spec(params)
    for tower in ("vision", "text"):
        spec[tower]["block_type"] = cand.get("block", "default")
        spec[tower].update(cand.get(tower, {}))
    data = TrainData(params, DataPaths(data_root), variant, v, make_tokenizer(spec["tokenizer"]))
    torch.manual_seed(0)
    model = build_model(spec)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tp.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=tp.lr, betas=(0.9, tp.beta2), eps=1e-6, fused=bool(cand.get("fused")),
                            foreach=False if not cand.get("fused") else None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, tp.warmup, v.steps, tp.min_lr_ratio))
    loss_fn, ac = make_loss(), autocast_for("cpu", cand.get("precision", "fp32"))
    step_model = maybe_compile(model, bool(cand.get("compile")))
    step = 0
    conn.send(sum(p.numel() for p in model.parameters()))
    while (n := conn.recv()) is not None:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            b = data.batch(data.batch_indices(0, step, v.batch_size))
            t = time.perf_counter()
            train_step(step_model, opt, sched, loss_fn, b, "cpu", ac, tp.grad_clip,
                       foreach_clip=bool(cand.get("fused")), trim_text=bool(cand.get("trim")))
            times.append((time.perf_counter() - t, t - t0))   # (step, data) seconds
            step += 1
        conn.send(times)


def bench_train(params: Params, paths: DataPaths, n: int | None, variant: str = "ideal",
                params_file: str = "params.yaml", only: list[str] | None = None) -> None:
    """`only`: labels of CANDIDATES to run (today's step and the project's always run); [] = none."""
    """samples/s of the training step: today's plain fp32 eager step, each switch alone and together,
    and the project's step (params.yaml's model and train settings), side by side. Every candidate
    lives in its own process and they take turns, two steps at a time, so a load on the machine
    falls on all of them alike; the figure is the median step. CPU only (a GPU has its own path)."""
    import multiprocessing as mp
    import statistics
    from bindlab.train import precision_for, training_params
    cfg, tp = training_params(params)
    v = params.variant(variant)
    rounds = n or 10
    threads = tp.threads
    project = {"ftz": True, "fused": True, "block": cfg.vision.block_type, "precision": precision_for("cpu", tp.precision),
               "compile": tp.compile, "trim": not tp.compile}
    # the switches are measured on today's model (params.yaml's, with the patch size it had)
    today_model = {"vision": {"patch_size": TODAY_PATCH}}
    cands = {k: c | today_model for k, c in CANDIDATES.items()
             if only is None or k in only or k.startswith("today")}
    if cfg.vision.patch_size != TODAY_PATCH:
        cands[f"project switches on today's model (patch {TODAY_PATCH})"] = project | today_model
    cands[f"project ({params.model.name} as in params.yaml, patch {cfg.vision.patch_size})"] = project
    print(f"bench train: variant {variant} (batch {v.batch_size}), {threads} threads, cpu; "
          f"{len(cands)} candidates in turns of 2 steps, {rounds} timed turns after 2 warm-up turns")
    ctx = mp.get_context("spawn")
    workers = {}
    for label, cand in cands.items():
        a, b = ctx.Pipe()
        proc = ctx.Process(target=_step_worker, args=(b, params_file, str(paths.root), variant, cand, threads),
                           daemon=True)
        proc.start()
        workers[label] = (proc, a)
    n_params = {label: a.recv() for label, (_, a) in workers.items()}
    times = {label: [] for label in workers}
    warm = {label: 0.0 for label in workers}
    for turn in range(rounds + 2):
        for label, (_, a) in workers.items():
            a.send(2)
            t = a.recv()
            if turn < 2:
                warm[label] += sum(a + b for a, b in t)
            else:
                times[label] += t
    for _, (proc, a) in workers.items():
        a.send(None)
        proc.join()
    base = v.batch_size / statistics.median(t for t, _ in times[next(iter(times))])
    print(f"  {'candidate':48s} {'samples/s':>9s} {'ratio':>6s} {'data wait':>9s} {'warm-up s':>9s} {'params':>7s}")
    for label, ts in times.items():
        sps = v.batch_size / statistics.median(t for t, _ in ts)
        wait = sum(d for _, d in ts) / sum(t + d for t, d in ts)
        print(f"  {label:48s} {sps:9.1f} {sps / base:5.2f}x {100 * wait:8.1f}% {warm[label]:9.1f} "
              f"{n_params[label] / 1e6:6.2f}M")
    print("  ratio: against today's fp32 eager step on today's model; targets: >= 2.0 for the project's step, "
          "data wait <= 5%")


class _PaddedTexts:
    """The text path before issue 10: every text in the caller's order, padded to the full context
    (the baseline `bench eval` prints beside today's)."""

    def __init__(self, enc):
        self.enc = enc

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def texts(self, texts: list[str]):
        import numpy as np
        import torch
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.enc.batch):
                t = torch.as_tensor(np.asarray(self.enc.tokenizer(texts[i:i + self.enc.batch])), device=self.enc.device)
                out.append(self.enc.model.encode_text(t, normalize=True).float().cpu().numpy())
        return np.concatenate(out)


def bench_eval(params: Params, paths: DataPaths, n: int | None, variant: str = "ideal") -> None:
    import torch
    from bindlab.evaluate import Encoder, bindlab_encoder, load_benchmark, score_benchmark
    from bindlab.model import build_model, encode_text_unpadded, make_tokenizer, model_spec
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
                          lambda x: images_to_tensor(x, device), device, tp.eval_batch, encode_text_unpadded)
        imgs = bench["images"][: n or len(bench["images"])]
        enc.images(imgs[:64])  # warm-up
        t = time.perf_counter()
        enc.images(imgs)
        img_rate = len(imgs) / (time.perf_counter() - t)
        full = {}
        for name, e in (("before", _PaddedTexts(enc)), ("now", enc)):  # scored alike, one after the other
            t = time.perf_counter()
            s = score_benchmark(e, bench)
            full[name] = time.perf_counter() - t
        print(f"bench eval ({threads} thread{'s' if threads > 1 else ''}): image tower {img_rate:,.0f} images/s; "
              f"full benchmark ({s['n_images_encoded']} images, {len(bench['items'])} items, "
              f"{len(bench['probes'])} probes): {full['before']:.1f} s with every text padded to the context "
              f"(before), {full['now']:.1f} s with each distinct text once, padding cut (now): "
              f"{full['before'] / full['now']:.2f}x")


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
        if variant == "ideal":
            minutes = r["train_seconds"] / 60
            print(f"      trained {minutes:.1f} min: {'PASS' if minutes <= 8 else 'FAIL'} (target <= 8 min)")
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
    if what == "train":
        bench_train(params, paths, args.n, params_file=args.params, only=[] if args.quick else None)
    else:
        {"eval": bench_eval, "binding": bench_binding}[what](params, paths, args.n)
