"""`bindlab bench validate`: the time to validate 100k captions, GX's import included (target < 30 s).

The captions and scenes are made in memory first (not timed); the timed part is what
`bindlab validate --variant` does after reading its inputs: statistics with polars, the suite from the
declaration, importing GX, running it and writing results and Data Docs.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bindlab.params import Params


def bench_validate(params: Params, n: int | None) -> None:
    from bindlab.captions import make_captions
    from bindlab.scenes import sample_scenes
    from bindlab.stats import caption_stats, mention_stats
    from bindlab.validate import _write_results, caption_suite

    n = n or 100_000
    name = "density_2" if "density_2" in params.variants else next(iter(params.variants))
    v = params.variant(name)
    if "great_expectations" in sys.modules:
        print("  note: great_expectations was already imported; its import time is not included")
    scenes = sample_scenes(params, n, params.scene_sets[v.scenes].objects, "bench/validate")
    captions = make_captions(params, scenes, v, f"bench/validate/{name}")
    print(f"validate: {n:,} captions of variant {name!r} (target < 30 s including GX's import)")

    t0 = time.perf_counter()
    mentions = mention_stats(params, captions, scenes)
    cstats = caption_stats(params, captions, scenes, mentions)
    suite = caption_suite(params, v, f"variant_{name}", cstats, mentions, n_scenes=n, n_images=n)
    t1 = time.perf_counter()
    import great_expectations  # noqa: F401  (timed on its own: the slow part of a cold start)
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = _write_results(suite, Path(tmp) / name)
    t3 = time.perf_counter()
    print(f"  statistics (polars) + suite    {t1 - t0:6.2f} s")
    print(f"  import great_expectations      {t2 - t1:6.2f} s")
    print(f"  GX validation + Data Docs      {t3 - t2:6.2f} s   ({results['evaluated']} expectations, "
          f"{'all passed' if results['success'] else str(results['failed']) + ' FAILED'})")
    print(f"  total                          {t3 - t0:6.2f} s   ({n / (t3 - t0):,.0f} captions/s)")
