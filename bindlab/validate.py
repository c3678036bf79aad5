"""`bindlab validate`: each variant's captions must have the properties it declares; the scene sets and
the benchmark are checked likewise.

The checks come from bindlab/suites.py (built from params.yaml's declarations) and run with Great
Expectations (bindlab/expectations.py) on statistics computed with polars (bindlab/stats.py). Each
target writes, under `data/validation/TARGET/`: `results.json` (every expectation: table, column,
expected, observed, pass; the Data Docs page of each table) and, only when everything passed,
`passed.json`, the marker training requires (`contracts.require_passed`). The folder is built aside
and moved into place, so a stale marker never survives a failed run. GX's own output carries run
times, so it goes to the run record `data/runs/validation/TARGET/` (`DataPaths.record`, not hashed by
DVC): `gx_results.json` and `docs/` (Data Docs).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from bindlab import datadocs
from bindlab.contracts import captions_of, images_of, read_benchmark, scenes_of
from bindlab.errors import StageError
from bindlab.expectations import run_suites
from bindlab.io import atomic_dir, together, write_json, writing
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.stats import caption_stats, mention_stats
from bindlab.suites import BENCHMARK_PARTS, Suite, benchmark_suite, caption_suite, scene_suite

RESERVED = ("scenes", "benchmark")  # folder names under data/validation/ that are not variants


def md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _write_results(suite: Suite, out: Path, record: Path, validated: dict | None = None) -> dict:
    """Run the suite; build the result folder aside and move it over `out`; GX's run-dependent output
    (results with run times, Data Docs) likewise to `record`. -> results."""
    with together(), atomic_dir(out) as tmp, atomic_dir(record) as gx_tmp:
        rows, raw, pages = run_suites(suite, gx_tmp / "docs")
        if not datadocs.make_offline(gx_tmp / "docs"):
            print("Data Docs keep their CDN links (the pages need a network): "
                  "run `python -m bindlab.datadocs install` to ship their scripts and styles", file=sys.stderr)
        failed = [r for r in rows if not r["success"]]
        results = {"target": suite.name, "success": not failed, "evaluated": len(rows), "failed": len(failed),
                   "docs": pages, "expectations": rows}
        write_json(tmp / "results.json", results)
        with writing(gx_tmp / "gx_results.json"):
            (gx_tmp / "gx_results.json").write_text(json.dumps(raw, indent=1, sort_keys=True, default=str) + "\n")
        if not failed:
            write_json(tmp / "passed.json", {"target": suite.name, "expectations": len(rows)}
                       | ({"validated": validated} if validated else {}))
    return results


def _run(suite: Suite, paths: DataPaths, out: Path, validated: dict | None = None) -> dict:
    results = _write_results(suite, out, paths.record(out), validated)
    _report(results, out, paths.record(out))
    return results


def _report(results: dict, out: Path, record: Path) -> None:
    """Print the verdict; raise (exit status 2) with every failed expectation when any failed."""
    if results["success"]:
        print(f"validation of {results['target']}: all {results['evaluated']} expectations passed -> {out}")
        return
    lines = [f"validation of {results['target']} FAILED: {results['failed']} of {results['evaluated']} "
             f"expectations (details {out / 'results.json'}, Data Docs {record / 'docs' / 'index.html'})"]
    for r in results["expectations"]:
        if not r["success"]:
            lines.append(f"  {r['table']}.{r['column']}: {r['expectation']} expected {r['expected']}, "
                         f"observed {r['observed']}" + (f" ({r['why']})" if r["why"] else ""))
    raise StageError("\n".join(lines))


def validate_variant(params: Params, paths: DataPaths, variant: str) -> dict:
    if variant in RESERVED:
        raise StageError(f"variant name {variant!r} is reserved under {paths.root / 'validation'}; rename it")
    v = params.variant(variant)
    captions = captions_of(params, paths, variant)
    scenes = scenes_of(params, paths, v.scenes)
    n_images = len(images_of(params, paths, v.scenes))
    mentions = mention_stats(params, captions, scenes)
    cstats = caption_stats(params, captions, scenes, mentions)
    suite = caption_suite(params, v, f"variant_{variant}", cstats, mentions,
                          n_scenes=scenes["scene_id"].n_unique(), n_images=n_images, scenes=scenes)
    # the verdict names the bytes it passed: training depends on passed.json alone, and reruns exactly
    # when the captions or the images it would read have changed
    validated = {f.relative_to(paths.root).as_posix(): md5(f) for f in (paths.captions(variant), paths.images(v.scenes))}
    return _run(suite, paths, paths.validation(variant), validated)


def validate_scenes(params: Params, paths: DataPaths, scene_set: str) -> dict:
    if scene_set not in params.scene_sets:
        raise StageError(f"unknown scene set {scene_set!r}; params.yaml scene_sets defines: "
                         f"{', '.join(params.scene_sets)}")
    spec = params.scene_sets[scene_set]
    scenes = scenes_of(params, paths, scene_set)
    n_images = len(images_of(params, paths, scene_set))
    suite = scene_suite(params, f"scenes_{scene_set}", scenes, spec.objects, spec.n, n_images, training=True)
    return _run(suite, paths, paths.validation("scenes") / scene_set)


def validate_benchmark(params: Params, paths: DataPaths) -> dict:
    bench = read_benchmark(paths.benchmark, params.benchmark.n, BENCHMARK_PARTS)
    suite = benchmark_suite(params, bench)
    return _run(suite, paths, paths.validation("benchmark"))

