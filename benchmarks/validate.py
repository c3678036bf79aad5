"""Validation time: the seconds to validate a variant's captions, GX's import included (target < 30 s).

`python -m benchmarks.validate [--params P] [-n CAPTIONS]` (default 100,000 captions of density_2, or
of the first variant). The captions and scenes are made in memory first (not timed); the timed part
is what `bindlab validate --variant` does after reading its inputs: statistics with polars, the suite
from its declaration, running it with GX and writing the results and Data Docs. GX's import, the
slow part of a cold start, is timed in a fresh interpreter (with numpy and polars already imported,
as in the stage), so the figure does not depend on what this process imported before.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import great_expectations  # noqa: F401  (imported here so the timed validation does not include it)
from benchmarks import common
from bindlab.captions import make_captions
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.scenes import sample_scenes
from bindlab.stats import caption_stats, mention_stats
from bindlab.suites import caption_suite
from bindlab.validate import _write_results

GX_IMPORT = ("import time, numpy, polars\n"
             "t = time.perf_counter()\nimport great_expectations\nprint(time.perf_counter() - t)")


def gx_import_seconds() -> float:
    """Seconds to import great_expectations in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", GX_IMPORT], check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def bench_validate(params: Params, n: int | None) -> None:
    n = n or 100_000
    name = "density_2" if "density_2" in params.variants else next(iter(params.variants))
    v = params.variant(name)
    scenes = sample_scenes(params, n, params.scene_sets[v.scenes].objects, "bench/validate")
    captions = make_captions(params, scenes, v, f"bench/validate/{name}")
    print(f"validate: {n:,} captions of variant {name!r} (target < 30 s including GX's import)")

    gx_import = gx_import_seconds()
    t0 = time.perf_counter()
    mentions = mention_stats(params, captions, scenes)
    cstats = caption_stats(params, captions, scenes, mentions)
    suite = caption_suite(params, v, f"variant_{name}", cstats, mentions, n_scenes=n, n_images=n)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = _write_results(suite, Path(tmp) / name, Path(tmp) / "runs" / name)
    t2 = time.perf_counter()
    total = (t2 - t0) + gx_import
    print(f"  statistics (polars) + suite    {t1 - t0:6.2f} s")
    print(f"  import great_expectations      {gx_import:6.2f} s   (in a fresh interpreter)")
    print(f"  GX validation + Data Docs      {t2 - t1:6.2f} s   ({results['evaluated']} expectations, "
          f"{'all passed' if results['success'] else str(results['failed']) + ' FAILED'})")
    print(f"  total                          {total:6.2f} s   ({n / total:,.0f} captions/s)")


def main(argv: list[str] | None = None) -> int:
    p = common.parser("benchmarks.validate", __doc__, "captions to validate (default 100,000)")

    def body(params: Params, paths: DataPaths, args) -> None:
        bench_validate(params, args.n)

    return common.run(p, argv, body)


if __name__ == "__main__":
    sys.exit(main())
