"""Caption throughput: captions/s of every variant without hard negatives, and with 2 hard negatives.

`python -m benchmarks.captions [--params P] [-n SCENES]` (default 100,000 scenes of the first scene
set's object counts; hard negatives on at most 20,000 of them). Target: >= 50,000 captions/s. With
hard negatives each one is checked against the scene, one caption at a time: its figure is printed
beside the variants' for comparison, not held to the target.
"""
from __future__ import annotations

import sys
import time

from benchmarks import common
from bindlab.captions import make_captions
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.scenes import sample_scenes


def bench_captions(params: Params, n: int | None) -> None:
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


def main(argv: list[str] | None = None) -> int:
    p = common.parser("benchmarks.captions", __doc__, "scenes to caption (default 100,000)")

    def body(params: Params, paths: DataPaths, args) -> None:
        bench_captions(params, args.n)

    return common.run(p, argv, body)


if __name__ == "__main__":
    sys.exit(main())
