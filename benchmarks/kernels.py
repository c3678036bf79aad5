"""CPU kernels: the training bytes and the step time of each kernel configuration on this CPU.

Each configuration trains the study's model from its seed for a few steps of the study's training step
(bindlab/train.py, the study's thread count) in its own process, and prints the md5 of the weights
(the fingerprint) beside the median step time. On one machine it shows which variables change the
bytes and what each costs; run on two machines, equal fingerprints in a row mean that configuration
gives those machines the same training bytes (docs/training.md keeps the machines measured).

    python -m benchmarks.kernels [-n STEPS] [--variant ideal]
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import statistics
import sys
import time

import torch

from benchmarks import common
from benchmarks.train import kernel_environment
from bindlab import kernels
from bindlab.errors import StageError
from bindlab.model import build_model, make_tokenizer, model_spec
from bindlab.params import Params, load_params
from bindlab.paths import DataPaths
from bindlab.train import (TrainData, _optimizer, autocast_for, lr_factor, make_loss, maybe_compile, setup_torch,
                           train_step, training_params)

# name -> (mode, variables set on top, oneDNN on): "pinned" is what every stage computes with. The last
# row is the candidate for the same bytes on Intel and AMD: MKL's COMPATIBLE branch is the one Intel
# documents as giving the same results on Intel and compatible CPUs, and without oneDNN (whose JIT
# kernels may block by cache size) the patch embedding's convolution is ATen's im2col and an MKL product.
CONFIGS = {
    "pinned (the study's)": ("pinned", {}, True),
    "unpinned (torch's choice)": ("native", {}, True),
    "pinned, MKL AUTO": ("native", {**kernels.PINNED, "MKL_CBWR": "AUTO"}, True),
    "pinned, MKL COMPATIBLE": ("native", {**kernels.PINNED, "MKL_CBWR": "COMPATIBLE"}, True),
    "pinned, MKL COMPATIBLE, no oneDNN": ("native", {**kernels.PINNED, "MKL_CBWR": "COMPATIBLE"}, False),
}


def cpu_name() -> str:
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return "unknown CPU"
    return next((ln.partition(":")[2].strip() for ln in lines if ln.startswith("model name")), "unknown CPU")


def _worker(conn, params_file: str, data_root: str, variant: str, steps: int, onednn: bool) -> None:
    """The first `steps` training steps of `variant` with the study's seed, as `bindlab train` takes them."""
    params = load_params(params_file)
    _, tp = training_params(params)
    v = params.variant(variant)
    spec = model_spec(params)
    try:
        data = TrainData(params, DataPaths(data_root), variant, v, make_tokenizer(spec["tokenizer"]))
    except StageError as e:   # missing data: the parent reports it in one line
        conn.send(e)
        return
    setup_torch("cpu", tp.threads)
    torch.backends.mkldnn.enabled = onednn
    torch.manual_seed(params.seed)
    model = build_model(spec)
    opt = _optimizer(model, tp)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, tp.warmup, v.steps, tp.min_lr_ratio))
    loss_fn, autocast = make_loss(), autocast_for("cpu", tp.precision)
    model.train()
    step_model = maybe_compile(model, tp.compile)
    times = []
    for step in range(steps):
        b = data.batch(data.batch_indices(params.seed, step, v.batch_size))
        t = time.perf_counter()
        train_step(step_model, opt, sched, loss_fn, b, "cpu", autocast, tp.grad_clip, trim_text=not tp.compile)
        times.append(time.perf_counter() - t)
    h = hashlib.md5()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    conn.send((torch.backends.cpu.get_cpu_capability(), h.hexdigest(), statistics.median(times[1:] or times)))


def bench_kernels(params: Params, paths: DataPaths, steps: int, variant: str, params_file: str) -> None:
    _, tp = training_params(params)
    print(f"bench kernels: {cpu_name()}; {variant} (batch {params.variant(variant).batch_size}), "
          f"{tp.threads} threads, {steps} steps from seed {params.seed} per configuration")
    print(f"  {'configuration':36s} {'kernels':>7s} {'weights md5':>32s} {'ms/step':>8s} {'ratio':>6s}")
    ctx, base = mp.get_context("spawn"), None
    for label, (mode, extra, onednn) in CONFIGS.items():
        a, b = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(b, params_file, str(paths.root), variant, steps, onednn),
                           daemon=True)
        with kernel_environment(mode):
            os.environ.update(extra)
            proc.start()
        answer = a.recv()
        proc.join()
        if isinstance(answer, StageError):
            raise answer
        capability, md5, step_s = answer
        base = base or step_s
        print(f"  {label:36s} {capability:>7s} {md5:>32s} {1000 * step_s:8.0f} {step_s / base:5.2f}x")
    print("  ratio: step time against the pinned step; equal md5 in a row on two machines: the same bytes there")


def main(argv: list[str] | None = None) -> int:
    p = common.parser("benchmarks.kernels", __doc__, "training steps per configuration (default 3)")
    p.add_argument("--variant", default="ideal")

    def body(params: Params, paths: DataPaths, args) -> None:
        bench_kernels(params, paths, args.n or 3, args.variant, args.params)

    return common.run(p, argv, body)


if __name__ == "__main__":
    sys.exit(main())
