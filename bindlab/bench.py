"""Benchmarks that print figures (throughput); not tests. `bindlab bench WHAT`."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bindlab.params import Params


def bench_render(params: Params, n: int) -> None:
    from bindlab.render import render_to_npy
    from bindlab.scenes import sample_scenes

    n = n or 40_000
    scenes = sample_scenes(params, n, params.scene_sets[next(iter(params.scene_sets))].objects, "bench/render")
    print(f"render: {n} scenes, {params.render.image_size} px, supersample {params.render.supersample}, "
          f"chunk {params.render.chunk}")
    rates, digests = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for write in (False, True):
            for workers in (1, 2):
                out = Path(tmp) / f"w{workers}.npy"
                best = 0.0
                for _ in range(3):  # best of 3: the machine is shared
                    t = time.perf_counter()
                    render_to_npy(params, scenes, out, workers=workers, progress=False, _write=write)
                    best = max(best, n / (time.perf_counter() - t))
                rates[write, workers] = best
                if write:
                    digests[workers] = _digest(out)
            what = "render + write .npy" if write else "render only (no file writes)"
            print(f"  {what:<28} 1 worker {rates[write, 1]:>8,.0f} images/s   2 workers "
                  f"{rates[write, 2]:>8,.0f} images/s   speed-up {rates[write, 2] / rates[write, 1]:.2f}x")
    print("  targets: >= 20,000 images/s with 2 workers, >= 1.7x from 1 to 2 workers")
    print(f"  identical bytes for 1 and 2 workers: {digests[1] == digests[2]}")


def bench_captions(params: Params, n: int) -> None:
    from bindlab.captions import make_captions
    from bindlab.scenes import sample_scenes

    n = n or 100_000
    scenes = sample_scenes(params, n, params.scene_sets[next(iter(params.scene_sets))].objects, "bench/captions")
    print(f"captions: {n} scenes (target >= 50,000 captions/s)")
    for name in params.variants:
        v = params.variant(name)
        if v.hard_negatives:
            continue
        t = time.perf_counter()
        make_captions(params, scenes, v, f"bench/{name}")
        print(f"  {name:<16} {n / (time.perf_counter() - t):>10,.0f} captions/s")
    v = params.variant(next(iter(params.variants))).model_copy(update={"hard_negatives": 2})
    m = min(n, 20_000)
    t = time.perf_counter()
    make_captions(params, scenes.filter(scenes["scene_id"] < m), v, "bench/hard_negatives")
    print(f"  {'+2 hard negatives':<16} {m / (time.perf_counter() - t):>10,.0f} captions/s "
          f"(negatives are checked against the scene one caption at a time)")


def _digest(path: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def bench_validate(params: Params, n: int) -> None:
    from bindlab.bench_validate import bench_validate as run_it
    run_it(params, n)


BENCHES = {"render": bench_render, "captions": bench_captions, "validate": bench_validate}


def run(what: str, params: Params, args) -> None:
    if what in ("train", "eval", "binding"):  # training benchmarks live in bench_train (issue 4)
        from bindlab import bench_train
        return bench_train.run(what, params, args)
    BENCHES[what](params, args.n)
