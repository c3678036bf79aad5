"""Training-step speed: samples/s of the plain PyTorch step, of each optimisation on top, and of the project's step.

`python -m benchmarks.train [--params P] [--data D] [-n TURNS] [--quick]`: steps on the ideal
variant's data under D (rendered and captioned), with params.yaml's model and `train.threads`, CPU
only (a GPU has its own path). Writes nothing.

The reference is the plain PyTorch step on the model as configured: fp32, eager, AdamW and gradient
clipping one tensor at a time, open_clip's default transformer block (torch's MultiheadAttention),
every caption padded to the full context, and denormal floats left on the CPU's slow path. Each
optimisation is a switch on top of it, measured alone and combined; the project's step is the
combination params.yaml configures (what `bindlab train` runs). Columns: samples/s of the median
step, the ratio to the reference, the fraction of time spent building batches (target <= 5%), the
warm-up seconds (compiling included) and the parameter count. Target: the project's step >= 2.0x
the reference. Beside it, the project's step on the CPU kernels torch picks for this machine
(unpinned; bindlab/kernels.py): the cost of the pin. --quick: the reference, the project's step and
its unpinned twin only.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from contextlib import contextmanager

import torch
from benchmarks import common
from bindlab import kernels
from bindlab.errors import StageError
from bindlab.model import build_model, make_tokenizer, model_spec, n_parameters
from bindlab.params import Params, load_params
from bindlab.paths import DataPaths
from bindlab.train import (TrainData, autocast_for, lr_factor, make_loss, maybe_compile, precision_for,
                           train_step, training_params)

# A candidate is a set of switches; {} is the reference step.
#   ftz: flush denormal floats to zero; fused: fused AdamW and one gradient norm over all tensors;
#   block: the transformer block ("default" open_clip's, "custom"); precision: "fp32" or "bf16" autocast;
#   trim: the text tower skips the padding after the batch's longest caption; compile: torch.compile.
REFERENCE = "reference: plain fp32 eager step"
CANDIDATES = {
    REFERENCE: {},
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


def project_switches(params: Params) -> dict:
    """The switches `bindlab train` turns on for params.yaml's model and train settings on the CPU."""
    cfg, tp = training_params(params)
    return {"ftz": True, "fused": True, "block": cfg.vision.block_type, "precision": precision_for("cpu", tp.precision),
            "compile": tp.compile, "trim": not tp.compile}


@contextmanager
def kernel_environment(mode: str):
    """os.environ as a worker of that kernel mode must start with (a spawned worker copies it, and its
    bindlab pins the kernels again unless the mode is native)."""
    saved = dict(os.environ)
    if mode == "native":
        for key in kernels.PINNED:
            os.environ.pop(key, None)
        os.environ[kernels.SWITCH] = "native"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _step_worker(conn, params_file: str, data_root: str, variant: str, cand: dict, threads: int) -> None:
    """One candidate in its own process (flush-to-zero is per thread, compile caches per process):
    builds the model and then runs the steps the parent asks for, answering with their seconds."""
    params = load_params(params_file)
    tp, v = params.train, params.variant(variant)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(bool(cand.get("ftz")))
    conn.send(torch.backends.cpu.get_cpu_capability())
    spec = model_spec(params)
    for tower in ("vision", "text"):
        spec[tower]["block_type"] = cand.get("block", "default")
    try:
        data = TrainData(params, DataPaths(data_root), variant, v, make_tokenizer(spec["tokenizer"]))
    except StageError as e:   # missing data: the parent reports it in one line
        conn.send(e)
        return
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
    conn.send(n_parameters(model))
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
                params_file: str = "params.yaml", quick: bool = False) -> None:
    """Every candidate lives in its own process and they take turns, two steps at a time, so a load on
    the machine falls on all of them alike; the figure is the median step."""
    _, tp = training_params(params)
    v = params.variant(variant)
    rounds = n or 10
    threads = tp.threads
    cands = {k: c for k, c in CANDIDATES.items() if not quick or k == REFERENCE}
    cands[f"project ({params.model.name} as in params.yaml)"] = project_switches(params)
    # the pin's cost: the project's step on the kernels torch picks for this CPU (bindlab/kernels.py)
    cands["project, CPU kernels unpinned"] = project_switches(params) | {"kernels": "native"}
    print(f"bench train: variant {variant} (batch {v.batch_size}), {threads} threads, cpu; "
          f"{len(cands)} candidates in turns of 2 steps, {rounds} timed turns after 2 warm-up turns")
    ctx = mp.get_context("spawn")
    workers = {}
    for label, cand in cands.items():
        a, b = ctx.Pipe()
        proc = ctx.Process(target=_step_worker, args=(b, params_file, str(paths.root), variant, cand, threads),
                           daemon=True)
        with kernel_environment(cand.get("kernels", "pinned")):
            proc.start()
        workers[label] = (proc, a)
    capability = {label: a.recv() for label, (_, a) in workers.items()}
    n_params = {label: a.recv() for label, (_, a) in workers.items()}
    for label, answer in n_params.items():
        if isinstance(answer, StageError):
            raise answer
    times = {label: [] for label in workers}
    warm = {label: 0.0 for label in workers}
    for turn in range(rounds + 2):
        for label, (_, a) in workers.items():
            a.send(2)
            t = a.recv()
            if turn < 2:
                warm[label] += sum(s + d for s, d in t)
            else:
                times[label] += t
    for _, (proc, a) in workers.items():
        a.send(None)
        proc.join()
    base = v.batch_size / statistics.median(t for t, _ in times[REFERENCE])
    print(f"  {'candidate':48s} {'samples/s':>9s} {'ratio':>6s} {'data wait':>9s} {'warm-up s':>9s} {'params':>7s} "
          f"{'kernels':>7s}")
    for label, ts in times.items():
        sps = v.batch_size / statistics.median(t for t, _ in ts)
        wait = sum(d for _, d in ts) / sum(t + d for t, d in ts)
        print(f"  {label:48s} {sps:9.1f} {sps / base:5.2f}x {100 * wait:8.1f}% {warm[label]:9.1f} "
              f"{n_params[label] / 1e6:6.2f}M {capability[label]:>7s}")
    print("  ratio: against the reference step (plain fp32 eager PyTorch, same model); targets: >= 2.0 for "
          "the project's step, data wait <= 5%")


def main(argv: list[str] | None = None) -> int:
    p = common.parser("benchmarks.train", __doc__, "timed turns of 2 steps per candidate (default 10)")
    p.add_argument("--quick", action="store_true",
                   help="only the reference step and the project's (no single switches, no compiling)")

    def body(params: Params, paths: DataPaths, args) -> None:
        bench_train(params, paths, args.n, params_file=args.params, quick=args.quick)

    return common.run(p, argv, body)


if __name__ == "__main__":
    sys.exit(main())
