"""Rendering throughput: images/s with 1 and 2 workers, rendering only and rendering with the .npy write.

`python -m benchmarks.render [--params P] [-n SCENES]` (default 40,000 scenes of the first scene set's
object counts). The reference is one worker: the 2-worker figure is printed beside it with the
speed-up, and both runs' files must hold the same bytes. Each figure is the best of 3 runs, since
the machine may be shared. Targets: >= 20,000 images/s with 2 workers, >= 1.7x from 1 to 2 workers.
"""
from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.render import render_to_npy
from bindlab.scenes import sample_scenes


def bench_render(params: Params, n: int | None) -> None:
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
                for _ in range(3):
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


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = common.parser("benchmarks.render", __doc__, "scenes to render (default 40,000)")

    def body(params: Params, paths: DataPaths, args) -> None:
        bench_render(params, args.n)

    return common.run(p, argv, body)


if __name__ == "__main__":
    sys.exit(main())
