"""`bindlab report`: the findings report, from the metrics files.

Inputs: `data/metrics/VARIANT/seedS/eval.json` and `per_image.parquet` (the metrics contract), finding
7's `curve.json`, and params. Outputs: `data/report/index.html`, `summary.md`, `details.json`,
`findings.json` (DVC metrics). The comparisons and verdicts are bindlab/findings.py, the pages
bindlab/report_pages.py. No timestamps, so the same metrics give the same bytes.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from bindlab import intervals, timing
from bindlab.contracts import read_curve, read_eval, read_per_image
from bindlab.errors import StageError
from bindlab.findings import (FINDINGS, Numbers, chance_of, comparisons, finding_metric, last_fifth,
                              variant_point, verdict)
from bindlab.heatmap import heatmap_png, merged
from bindlab.io import atomic_path, together, write_json
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.report_pages import RANKS, html_page, markdown
from bindlab.sight import sight, sight_note
from bindlab.verdict_table import LEVEL_OFF_FINDINGS

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
# the converged profile's reports (experiments/converged.py --report), shown beside the default study's
CONVERGED = Path("results/converged")
AT_LEVEL_OFF = LEVEL_OFF_FINDINGS
# the README links to the picture of seeing and binding per type; written beside it, as the README is
HEATMAP = Path("docs/results/seeing-binding.png")


# --- inputs -----------------------------------------------------------------------------------

def load_runs(params: Params, paths: DataPaths) -> tuple[dict[str, dict[int, dict]], list[str]]:
    """variant -> seed -> eval.json, over study.seeds and run_variants (every variant when null); and
    the runs that are missing."""
    runs, missing, first_missing = {}, [], None
    for name in params.run_variants or params.variants:
        for seed in params.study.seeds:
            f = paths.metrics(name, seed) / "eval.json"
            if not f.exists():
                missing.append(f"{name}/seed{seed}")
                first_missing = first_missing or f
                continue
            runs.setdefault(name, {})[seed] = read_eval(f, name, seed, params.study.metric)
    if not runs:
        raise StageError(f"no eval.json under {paths.root / 'metrics'} for any variant and seed "
                         f"{params.study.seeds} (e.g. {first_missing} is missing); run `bindlab train` and `bindlab evaluate` (or `dvc repro`) first")
    return runs, missing


def load_numbers(paths: DataPaths, runs: dict, keys: list[str], seed_sd: float = 0.0) -> Numbers:
    """Every run's per_image.parquet (the columns of `keys` checked), all on the same benchmark images."""
    tables: dict[str, dict[int, pl.DataFrame]] = {}
    ids = None
    for name, by_seed in runs.items():
        for seed in sorted(by_seed):
            f = paths.metrics(name, seed) / "per_image.parquet"
            t = read_per_image(f, name, seed, keys, runs[name][seed].get("n_items"))
            if ids is None:
                ids, first = t["scene_id"], f
            elif not t["scene_id"].equals(ids):
                raise StageError(f"{f}: holds other benchmark images than {first}; evaluate every run on "
                                 f"the same benchmark (`dvc repro` re-runs the evaluate stages)")
            tables.setdefault(name, {})[seed] = t
    return Numbers(tables, 0 if ids is None else len(ids), seed_sd)


def load_curves(params: Params, paths: DataPaths, runs: dict) -> list[dict]:
    """Finding 7's binding-against-training curves (dvc.yaml stage `curve`), one per seed of the judged
    run (study.ideal); none when that run or its curve.json is missing (a run without the curve stage)."""
    name = params.study.ideal
    out = []
    for seed in sorted(runs.get(name, {})):
        f = paths.metrics(name, seed) / "curve.json"
        if f.exists():
            out.append(read_curve(f, name, seed))
    return out


# --- shown beside the verdicts (not used by them) -------------------------------------------------

def own_format_probe(numbers: Numbers, line: list[dict]) -> list[dict]:
    """Finding 1's format check: each density variant's probe at its own density k (`probe_by_k.k`: one
    object, k named attributes, wrongly bound in the false phrase), k >= 1. The benchmark's captions are
    full descriptions, outside the low densities' training format; the probe names as many attributes
    per object as the variant's own captions. Shown beside the verdict, not used by it; a run whose
    benchmark has no probe naming k attributes has no such column and is left out."""
    points = []
    for p in line:
        k, v = p["x"], p["variant"]
        key = f"probe_by_k.{int(k)}"
        if k < 1 or k != int(k) or not numbers.has(v, key):
            continue
        e = numbers.get(v, key)
        points.append({"variant": v, "x": k, "mean": e.point, "lo": e.lo, "hi": e.hi})
    return points


def curve_note(curve: dict, metric: str) -> str:
    """How the judged run ended: the metric over the last fifth of its steps, and its training loss
    there (near zero: the in-batch task is solved)."""
    since, last = last_fifth(curve["points"])
    text = f"its curve (seed {curve['seed']}): {metric} "
    if since is not last:
        text += f"{since[metric]:.3f} at step {since['step']} -> "
    text += f"{last[metric]:.3f} at step {last['step']}"
    if metric != "i2t_strict" and "i2t_strict" in last:
        text += f" (i2t_strict {last['i2t_strict']:.3f})"
    return text + (f", training loss {last['loss']:.3f}" if last.get("loss") is not None else "")


def _point(p: dict) -> dict:
    return {k: p[k] for k in ("variant", "x", "mean", "sd", "lo", "hi", "values", "seeds")}


def build(params: Params, paths: DataPaths) -> dict:
    """Compute every finding's comparison and verdict: the content of findings.json."""
    runs, missing = load_runs(params, paths)
    keys = sorted({finding_metric(params, f) for f in FINDINGS})
    numbers = load_numbers(paths, runs, keys, params.study.seed_sd)
    evals = [r for by in runs.values() for r in by.values()]
    measured = [r["chance_measured"] for r in evals if "chance_measured" in r]
    out = {"metric": params.study.metric, "seeds": params.study.seeds, "profile": params.profile,
           "min_effect": params.study.min_effect, "n_images": numbers.n_images,
           "bootstrap": {"unit": "benchmark image", "resamples": intervals.RESAMPLES, "seed": intervals.SEED,
                         "level": intervals.LEVEL, "seeds": "resampled per variant when several",
                         "seed_sd": params.study.seed_sd},
           "chance": {"i2t_pairwise": 0.5, "i2t_strict_computed": max(r["chance"].get("i2t_strict", 0.0) for r in evals),
                      "i2t_strict_measured": max(m["i2t_strict"] for m in measured) if measured else None},
           "missing_runs": missing, "findings": []}
    for f in FINDINGS:
        metric = finding_metric(params, f)
        lines = comparisons(params, f, runs, numbers) if f.kind != "ideal" else []
        curves = load_curves(params, paths, runs) if f.kind == "ideal" else []
        v = verdict(params, f, lines, runs, numbers, curves)
        entry = {"number": f.number, "title": f.title, "claim": f.claim, "metric": metric,
                 "chance": chance_of(runs, metric), **v, "lines": [[_point(p) for p in line] for line in lines]}
        if f.kind == "ideal":
            entry["variants"] = [_point(variant_point(numbers, n, metric)) for n in sorted(runs)]
            entry["curves"] = curves
            entry["why"] += "".join(f"; {curve_note(c, metric)}" for c in entry["curves"] if metric in c["points"][-1])
        if f.kind == "peak" and lines:
            entry["own_format_probe"] = own_format_probe(numbers, lines[0])
        if f.kind == "hurts_high" and lines:   # binding by saliency rank: where the bias acts, and where not
            names = [p["variant"] for p in lines[0]] + [n for n in [params.study.ideal] if n in numbers.tables]
            entry["by_rank"] = {n: {g: _point(variant_point(numbers, n, f"by_saliency.{g}.{params.study.metric}"))
                                    for g in RANKS if numbers.has(n, f"by_saliency.{g}.{params.study.metric}")}
                                for n in dict.fromkeys(names)}
        # perception beside binding for the variants the finding compares (runs with replace items)
        compared = [params.study.ideal] if f.kind == "ideal" else [p["variant"] for ln in lines for p in ln]
        table = sight(numbers, [n for n in compared if n in numbers.tables])
        if table:
            entry["sight"], entry["sight_note"] = table, sight_note(table, params.study.sees)
        if params.study.ideal in runs:
            entry["ideal_reference"] = _point(variant_point(numbers, params.study.ideal, metric))
        out["findings"].append(entry)
    return out | {"_numbers": numbers}


def load_converged(folder: Path) -> dict | None:
    """Findings 1, 4 and 7 of the converged profile's reports (full descriptions, and finding 1 with each
    density in its own format) and the record of its run; None when it has not been run."""
    if not (folder / "run.json").exists():
        return None
    rows = []
    for name, numbers in (("full", AT_LEVEL_OFF), ("own_format", (1,))):
        f = folder / name / "details.json"
        try:
            found = {x["number"]: x for x in json.loads(f.read_text())["findings"]}
            rows += [{"number": n, "title": found[n]["title"], "format": name.replace("_", " "),
                      **{k: found[n][k] for k in ("verdict", "effect", "ci", "why")}} for n in numbers]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise StageError(f"{f}: unreadable ({e!r}); write it again with `python -m experiments.converged "
                             f"--report TARBALL`") from e
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError) as e:
        raise StageError(f"{folder / 'run.json'}: unreadable ({e}); write it again with `python -m "
                         f"experiments.converged --report TARBALL`") from e
    runs = record.get("runs", [])
    return {"steps": record.get("steps"), "runs": runs,
            "unfinished": [r for r in record.get("planned", runs) if r not in runs], "findings": rows}


def load_level_off(folder: Path) -> dict[int, dict]:
    """Findings 1, 4 and 7 in full from the converged profile's report on full descriptions: the verdict
    table's effect and short reason for them come from these (shown, not stored in details.json)."""
    found = json.loads((folder / "full" / "details.json").read_text())["findings"]
    return {f["number"]: f for f in found if f["number"] in AT_LEVEL_OFF}


def curve_minutes(params: Params, paths: DataPaths) -> dict | None:
    """Finding 7's run (first seed): checkpoint step -> training seconds, from its timing record."""
    record = timing.read(paths.timing(paths.metrics(params.study.ideal, params.study.seeds[0])))
    return record.get("train", {}).get("checkpoints") or None


def training_minutes(params: Params, paths: DataPaths) -> float | None:
    """Training minutes of the study's runs from their timing records (undeclared, so they stay out of
    the hashed report); None when no run has one (e.g. every run restored from a DVC cache)."""
    seconds = [timing.train_seconds(paths.timing(paths.metrics(v, s)))
               for v in params.variants for s in params.study.seeds]
    seconds = [x for x in seconds if x is not None]
    return round(sum(seconds) / 60, 1) if seconds else None


def update_readme(readme: Path, summary: str) -> None:
    """Replace the text between the results markers of the README with the summary."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise StageError(f"{readme}: has no {README_START} ... {README_END} markers for the results")
    new = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END),
                 lambda _: f"{README_START}\n{summary}{README_END}", text, flags=re.S)
    with atomic_path(readme) as tmp:
        tmp.write_text(new)


def write_readme_heatmap(readme: Path, sights: list[dict], bar: float) -> str | None:
    """The picture of seeing and binding per type for every compared variant, at HEATMAP beside the
    README; -> its path relative to the README, or None when no run has replace items."""
    if not sights:
        return None
    with atomic_path(readme.parent / HEATMAP) as tmp:
        tmp.write_bytes(heatmap_png(merged(sights), bar, "seeing and binding per type, every compared variant"))
    return HEATMAP.as_posix()


def report_stage(params: Params, paths: DataPaths, readme: str | Path | None = None,
                 converged: Path = CONVERGED) -> dict:
    result = build(params, paths)
    if params.profile == "default":
        result["converged"] = load_converged(converged)
        if result["converged"] is not None:
            result["_level_off"] = load_level_off(converged)
    out = paths.report
    sights = [f["sight"] for f in result["findings"] if f.get("sight")]
    summary = markdown(result, heatmap="index.html#seeing" if sights else None)
    page = html_page(params, result)
    with together():
        with atomic_path(out / "index.html") as tmp:
            tmp.write_text(page)
        with atomic_path(out / "summary.md") as tmp:
            tmp.write_text(summary)
        # keys with a leading underscore are for the pages only (the runs' numbers, the level-off in full)
        findings = {k: v for k, v in result.items() if not k.startswith("_")}
        write_json(out / "details.json", findings)
        # findings.json: finding -> effect and verdict (flat, for `dvc diff`-style tools and scripts)
        write_json(out / "findings.json", {
            f"{f['number']}_{f['title'].lower().replace(' ', '_')}": {
                "effect": f["effect"], "effect_low": f["ci"][0] if f["ci"] else None,
                "effect_high": f["ci"][1] if f["ci"] else None, "verdict": f["verdict"],
                **{f"{half}_{k}": h[k] for half, h in f.get("halves", {}).items() for k in ("verdict", "effect")}}
            for f in result["findings"]})
        if readme and params.profile != "default":   # the README's results are the default study's
            print(f"{readme}: left as it is (profile {params.profile!r}; only the default study writes its results)")
        elif readme:
            picture = write_readme_heatmap(Path(readme), sights, params.study.sees)
            update_readme(Path(readme), markdown(result, training_minutes(params, paths), curve_minutes(params, paths),
                                                 heatmap=picture))
    for f in result["findings"]:
        print(f"finding {f['number']} {f['title']}: {f['verdict']} ({f['why']})")
    print(f"report -> {out / 'index.html'}")
    return findings
