"""The findings report: one self-contained HTML page and a markdown summary, from the metrics files.

Each of the seven findings of STUDY.md is a comparison between variants that differ only in that
finding's knobs: the variants are grouped by every *other* knob (a group with two or more values of the
property is one line of the plot), so the report needs no list of variant names and a new variant joins
the right comparison by its declaration. Every number carries a 95% bootstrap interval over benchmark
images (and seeds), and a comparison of two variants is a paired bootstrap on the same images
(bindlab/intervals.py, from each run's per_image.parquet). The verdict rules are in `verdict` and the
README (Results). Inputs: `data/metrics/VARIANT/seedS/eval.json` and `per_image.parquet` (the metrics
contract) and params. Outputs: `data/report/index.html`, `summary.md`, `details.json`, `findings.json`
(DVC metrics). No timestamps, so the same metrics give the same bytes.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bindlab import intervals
from bindlab.contracts import read_curve, read_eval, read_per_image
from bindlab.errors import StageError
from bindlab.figures import figure_png, png_uri
from bindlab.io import atomic_path, write_json
from bindlab.params import Params, Variant
from bindlab.paths import DataPaths

KNOBS = tuple(Variant.model_fields)
SHOWN = ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe", "r1_i2t")
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Finding:
    number: int
    title: str
    claim: str
    varies: tuple[str, ...]     # the knobs this finding compares; everything else is held fixed
    xlabel: str
    kind: str                   # how the verdict is computed (see verdict)
    metric: str = "{metric}"    # the eval.json key judged; {metric} is study.metric


FINDINGS = (
    Finding(1, "Attribute density", "Too few or too many attributes per object in the captions hurt "
            "binding: it peaks in between.", ("density",), "attributes per mentioned object", "peak"),
    Finding(2, "Number of objects", "The number of objects per image changes how well binding is learned.",
            ("scenes",), "mean objects per training image", "changes"),
    Finding(3, "Caption completeness", "Captions that mention only some of the objects hurt binding.",
            ("completeness", "objects_mentioned"), "fraction of the objects mentioned (expected)", "hurts_low"),
    Finding(4, "Saliency bias", "Captions biased towards the most salient object hurt binding.",
            ("saliency_bias",), "saliency bias", "hurts_high", "by_saliency.least.{metric}"),
    Finding(5, "Batch size", "Scaling the batch size does not make CLIP learn reliable binding.",
            ("batch_size", "steps"), "batch size (same number of samples seen)", "no_fix"),
    Finding(6, "Hard negatives", "Adding hard negatives (attribute-swapped captions) does not make CLIP "
            "learn reliable binding.", ("hard_negatives",), "hard negatives per caption", "no_fix"),
    Finding(7, "Ideal data", "With dense, complete, unbiased captions CLIP learns almost perfect binding.",
            (), "", "ideal"),
)


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


def property_value(params: Params, finding: Finding, v: Variant) -> float:
    if finding.number == 2:
        dist = params.scene_sets[v.scenes].objects
        return sum(k * p for k, p in dist.items())
    if finding.number == 3:
        if v.objects_mentioned is None and v.completeness == 1:
            return 1.0
        from bindlab.audit import expected_completeness
        return expected_completeness(params, v)
    return float(getattr(v, finding.varies[0]))


def _stats(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, sd


# --- numbers with intervals --------------------------------------------------------------------

@dataclass(frozen=True)
class Est:
    """A number with its bootstrap replicates (bindlab/intervals.py) and 95% interval."""
    point: float
    reps: np.ndarray

    @property
    def ci(self) -> tuple[float, float]:
        lo, hi = intervals.interval(self.reps) or [float("nan")] * 2
        return lo, hi

    @property
    def lo(self) -> float:
        return self.ci[0]

    @property
    def hi(self) -> float:
        return self.ci[1]

    def __sub__(self, other: "Est") -> "Est":
        # the same image resamples on both sides: the paired bootstrap of the difference
        return Est(self.point - other.point, self.reps - other.reps)

    def text(self, signed: bool = False) -> str:
        f = "+.3f" if signed else ".3f"
        return f"{self.point:{f}} [{self.lo:{f}}, {self.hi:{f}}]"


class Numbers:
    """Every run's per-image outcomes (per_image.parquet beside eval.json): a metric of a variant is
    the mean over its seeds, its replicates resample the benchmark images (the same resamples for
    every variant, so differences are paired) and the seeds."""

    def __init__(self, paths: DataPaths, runs: dict, keys: list[str]):
        self.tables: dict[str, dict[int, pl.DataFrame]] = {}
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
                self.tables.setdefault(name, {})[seed] = t
        self.n_images = 0 if ids is None else len(ids)

    def has(self, variant: str, key: str) -> bool:
        return all(f"{key}:num" in t.columns for t in self.tables[variant].values())

    def get(self, variant: str, key: str) -> Est:
        points, reps = [], []
        for seed, t in sorted(self.tables[variant].items()):
            num, den = t[f"{key}:num"].to_numpy(), t[f"{key}:den"].to_numpy()
            points.append(float(num.sum() / den.sum()))
            reps.append(intervals.replicates(num, den))
        return Est(sum(points) / len(points), intervals.seed_mean_replicates(np.stack(reps, 1), variant))

    def seed_values(self, variant: str, key: str) -> list[float]:
        return [float(t[f"{key}:num"].sum() / t[f"{key}:den"].sum()) for _, t in sorted(self.tables[variant].items())]


def finding_metric(params: Params, finding: Finding) -> str:
    """The eval.json key a finding is judged on: study.metric, for finding 4 restricted to the
    items (or probes) that involve the least salient object, the one a salient-first caption leaves out."""
    return finding.metric.format(metric=params.study.metric)


def comparisons(params: Params, finding: Finding, runs: dict, numbers: Numbers | None = None) -> list[list[dict]]:
    """Lines of the finding: groups of variants equal in every knob but `finding.varies`, each point
    {variant, x, values (per seed), mean, sd, lo, hi}, sorted by x; only groups with 2+ distinct x."""
    metric = finding_metric(params, finding)
    groups: dict[tuple, list[dict]] = {}
    for name in runs:
        if name == params.study.ideal_long != params.study.ideal:
            continue  # finding 7's longer run: outside the shared budget of the comparisons
        v = params.variant(name)
        key = tuple((k, getattr(v, k)) for k in KNOBS if k not in finding.varies)
        if numbers is not None:
            e = numbers.get(name, metric)
            values, (lo, hi) = numbers.seed_values(name, metric), e.ci
        else:
            values, lo, hi = [runs[name][s][metric] for s in sorted(runs[name])], None, None
        mean, sd = _stats(values)
        groups.setdefault(key, []).append({"variant": name, "x": property_value(params, finding, v),
                                           "seeds": sorted(runs[name]), "values": values, "mean": mean,
                                           "sd": sd, "lo": lo, "hi": hi})
    lines = []
    for points in groups.values():
        if len({p["x"] for p in points}) >= 2:
            lines.append(sorted(points, key=lambda p: (p["x"], p["variant"])))
    return sorted(lines, key=lambda line: (params.study.ideal not in [p["variant"] for p in line],
                                           line[0]["variant"]))


# --- verdicts ---------------------------------------------------------------------------------

def chance_of(runs: dict, key: str) -> float:
    """The level of a model that learned nothing. Pairwise metrics and the probe: exactly 0.5 (a tie
    counts 1/2). Strict: the untrained model's measured level where eval.json has it (the highest
    over runs), else the computed 1 / (negatives + 1) (which assumes exchangeable scores)."""
    base = key.rsplit(".", 1)[-1]
    if base in ("i2t_pairwise", "t2i_pairwise", "probe"):
        return 0.5
    evals = [r for by_seed in runs.values() for r in by_seed.values()]
    measured = [r["chance_measured"][base] for r in evals if base in r.get("chance_measured", {})]
    if key == "i2t_strict" and measured:
        return max(measured)
    prefix = key[: -len(base)]
    computed = [_lookup(r, f"{prefix}{base}_chance") if base == "i2t_strict" else r.get("chance", {}).get(base)
                for r in evals]
    computed = [c for c in computed if c is not None]
    return max(computed) if computed else 0.0


def _lookup(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _narrower(params: Params, numbers: Numbers) -> str:
    return (f"more benchmark images (benchmark.n, now {numbers.n_images} images) or more seeds "
            f"(study.seeds, now {len(params.study.seeds)}) narrow the interval")


def _longer() -> str:
    return "train longer (base.steps or the variant's steps) or on more scenes, so that the variants learn"


def _result(v: str, d: Est | None, why: str, resolve: str = "") -> dict:
    out = {"verdict": v, "effect": None if d is None else round(d.point, 4),
           "ci": None if d is None else [round(d.lo, 4), round(d.hi, 4)], "why": why}
    return out | ({"resolve": resolve} if resolve else {})


def _effect_verdict(params: Params, numbers: Numbers, d: Est, best: Est, chance: float, why: str) -> dict:
    """The claimed direction is d > 0: reproduced when d's interval lies above min_effect; not
    reproduced when it lies below it and the comparison learned something (else that is uninformative)."""
    m = params.study.min_effect
    why += f"; difference {d.text(signed=True)}, an effect needs > {m}"
    if d.lo > m:
        return _result("reproduced", d, why)
    if best.lo <= chance + m:
        return _result("inconclusive", d, why + f"; no variant of the comparison clearly learned (best "
                       f"{best.text()} vs chance {chance:.3f} + {m})", _longer())
    if d.hi < m:
        return _result("not reproduced", d, why)
    return _result("inconclusive", d, why + f"; the interval contains {m}", _narrower(params, numbers))


def _label(p: dict) -> str:
    return f"{p['variant']} ({p['x']:.3g})"


def _no_fix_line(params: Params, numbers: Numbers, metric: str, ln: list[dict], chance: float) -> dict:
    """One degraded line of finding 5/6: ln[0] is the reference setting, the rest the knob's others."""
    m, ideal = params.study.min_effect, params.study.ideal
    est = {p["variant"]: numbers.get(p["variant"], metric) for p in ln}
    ref = ln[0]
    gains = [(p, est[p["variant"]] - est[ref["variant"]]) for p in ln[1:]]
    parts = [f"{_label(p)} - {_label(ref)}: {g.text(signed=True)}" for p, g in gains]
    idle = [p["variant"] for p in ln if est[p["variant"]].lo <= chance + m]
    if any(g.lo > m for _, g in gains):
        p, g = max(gains, key=lambda pg: pg[1].lo)
        return _result("not reproduced", g, "; ".join(parts) + f"; {p['variant']} improves binding beyond {m}")
    if idle:
        return _result("inconclusive", None, "; ".join(parts) + f"; {', '.join(idle)} not clearly above chance "
                       f"{chance:.3f} + {m}: a 'no fix' on data nothing is learned from says nothing", _longer())
    if ideal not in numbers.tables:
        return _result("inconclusive", None, "; ".join(parts) + f"; no run of the ideal variant {ideal!r}",
                       f"evaluate {ideal}")
    best = max(ln, key=lambda p: est[p["variant"]].point)
    gap = numbers.get(ideal, metric) - est[best["variant"]]
    parts.append(f"gap {ideal} - {best['variant']}: {gap.text(signed=True)}")
    failed = [f"an improvement interval reaches {m}"] if any(g.hi >= m for _, g in gains) else []
    failed += [f"the gap to ideal data is not clearly >= {m}"] if gap.lo < m else []
    if not failed:
        return _result("reproduced", max((g for _, g in gains), key=lambda g: g.point), "; ".join(parts))
    return _result("inconclusive", None, "; ".join(parts) + "; " + " and ".join(failed), _narrower(params, numbers))


def verdict(params: Params, finding: Finding, lines: list[list[dict]], runs: dict, numbers: Numbers,
            curves: list[dict] = ()) -> dict:
    """{verdict: reproduced | not reproduced | inconclusive, effect, ci, why[, resolve]} from paired
    bootstrap intervals over benchmark images (and seeds): see the README, Results."""
    metric, ideal, m = finding_metric(params, finding), params.study.ideal, params.study.min_effect
    chance = chance_of(runs, metric)
    if finding.kind == "ideal":
        return _ideal_verdict(params, numbers, metric, chance, list(curves))
    if not lines:
        return _result("inconclusive", None, f"no two evaluated variants differ only in {', '.join(finding.varies)}",
                       "declare and run variants that differ only in " + ", ".join(finding.varies))
    if finding.kind == "no_fix":
        degraded = [ln for ln in lines if ideal not in [p["variant"] for p in ln]]
        if not degraded:
            return _result("inconclusive", None, "no comparison on degraded data (every line includes the "
                           "ideal variant)", "declare the knob's variants on degraded data (e.g. density 1)")
        results = [_no_fix_line(params, numbers, metric, ln, chance) for ln in degraded]
        for v in ("not reproduced", "inconclusive"):
            if any(r["verdict"] == v for r in results):
                r = next(r for r in results if r["verdict"] == v)
                return r | {"why": " | ".join(x["why"] for x in results)}
        return results[0] | {"why": " | ".join(x["why"] for x in results)}
    line = lines[0]  # the line through the ideal variant when there is one
    est = {p["variant"]: numbers.get(p["variant"], metric) for p in line}
    best_p = max(line, key=lambda p: est[p["variant"]].point)
    best = est[best_p["variant"]]
    if finding.kind == "peak":
        return _peak_verdict(params, numbers, line, est, chance)
    if finding.kind == "hurts_low":
        low = line[0]
        why = f"{_label(best_p)} {best.text()} vs lowest {_label(low)} {est[low['variant']].text()}"
        return _effect_verdict(params, numbers, best - est[low["variant"]], best, chance, why)
    if finding.kind == "hurts_high":
        a, b = line[0], line[-1]
        why = f"{metric}: {_label(a)} {est[a['variant']].text()} vs {_label(b)} {est[b['variant']].text()}"
        return _effect_verdict(params, numbers, est[a["variant"]] - est[b["variant"]], best, chance, why)
    lo_p = min(line, key=lambda p: est[p["variant"]].point)
    why = f"range from {_label(lo_p)} {est[lo_p['variant']].text()} to {_label(best_p)} {best.text()}"
    return _effect_verdict(params, numbers, best - est[lo_p["variant"]], best, chance, why)


FEW_MAX = 1.0  # "too few": the noun only or one attribute (the paper's examples), densities <= this


def _half_verdict(params: Params, numbers: Numbers, d: Est, best: Est, chance: float, why: str) -> dict:
    """One half of finding 1. d = peak - the half's reference (>= 0 at the point): reproduced when its
    interval lies above min_effect; not reproduced when it lies within +-min_effect (on data the model
    learns from); otherwise inconclusive, with the reason."""
    m = params.study.min_effect
    why += f": {d.text(signed=True)}, an effect needs > {m}"
    if d.lo > m:
        return _result("reproduced", d, why)
    if best.lo <= chance + m:
        return _result("inconclusive", d, why + f"; no density clearly learned (peak {best.text()} vs chance "
                       f"{chance:.3f} + {m})", _longer())
    if -m < d.lo and d.hi < m:
        return _result("not reproduced", d, why + f"; the interval lies within +-{m}")
    return _result("inconclusive", d, why + f"; the interval straddles {m if d.hi >= m else -m}",
                   _narrower(params, numbers))


def _peak_verdict(params: Params, numbers: Numbers, line: list[dict], est: dict, chance: float) -> dict:
    """Finding 1 on the density line (0 .. attribute types): the peak (highest point) against the best
    of the 'too few' densities (<= FEW_MAX; the lowest density if none) and against the highest density.
    A peak at either end gives a difference of exactly 0 on that side: that half is not reproduced."""
    peak = max(line, key=lambda p: est[p["variant"]].point)
    few = [p for p in line if p["x"] <= FEW_MAX] or [line[0]]
    few_ref = max(few, key=lambda p: est[p["variant"]].point)
    top = line[-1]
    best = est[peak["variant"]]
    halves = {
        "too_few": _half_verdict(params, numbers, best - est[few_ref["variant"]], best, chance,
                                 f"too few: peak {_label(peak)} - {_label(few_ref)}"),
        "too_many": _half_verdict(params, numbers, best - est[top["variant"]], best, chance,
                                  f"too many: peak {_label(peak)} - highest {_label(top)}"),
    }
    verdicts = [h["verdict"] for h in halves.values()]
    if verdicts.count("reproduced") == 2:
        overall = "reproduced"
    elif "reproduced" in verdicts:
        overall = "partly reproduced"
    elif verdicts.count("not reproduced") == 2:
        overall = "not reproduced"
    else:
        overall = "inconclusive"
    why = (f"peak at {_label(peak)} {best.text()} | "
           + " | ".join(f"{h['why']} -> {h['verdict']}" for h in halves.values()))
    resolve = "; ".join(dict.fromkeys(h["resolve"] for h in halves.values() if h.get("resolve")))
    first = halves["too_few"]
    out = {"verdict": overall, "effect": first["effect"], "ci": first["ci"], "why": why,
           "peak": {"variant": peak["variant"], "x": peak["x"]}, "halves": halves}
    return out | ({"resolve": resolve} if resolve else {})


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


def _own_format_text(points: list[dict]) -> str:
    return ("probe at the variant's own density (one object, k attributes; not used by the verdict): "
            + ", ".join(f"{p['x']:g}: {_ci_text(p['mean'], p['lo'], p['hi'])}" for p in points))


def levelled_gain(curves: list[dict], metric: str) -> float | None:
    """The largest gain of `metric` over the last fifth of the judged run's steps, over its seeds' curves;
    None when no curve has a snapshot in that fifth before its last (nothing to tell a plateau by)."""
    gains = []
    for c in curves:
        points = [p for p in c["points"] if metric in p]
        if not points:
            return None
        since, last = last_fifth(points)
        if since is last:
            return None
        gains.append(last[metric] - since[metric])
    return max(gains) if gains else None


def _ideal_verdict(params: Params, numbers: Numbers, metric: str, chance: float, curves: list[dict]) -> dict:
    """Judged on study.ideal_long (the ideal data trained longer) when it ran, else on study.ideal;
    'ideal data is not the best' compares study.ideal with the other variants at their shared budget.
    Below 'almost perfect', the run's curve decides: still rising -> train longer (inconclusive);
    levelled off (the last fifth of its steps gained less than min_effect) -> not reproduced at this model."""
    ideal, near, m = params.study.ideal, params.study.near_perfect, params.study.min_effect
    judged = params.study.ideal_long if params.study.ideal_long in numbers.tables else ideal
    if judged not in numbers.tables:
        return _result("inconclusive", None, f"no run of the ideal variant {ideal!r}", f"evaluate {ideal}")
    e = numbers.get(judged, metric)
    v = params.variant(judged)
    why = (f"{judged} ({v.steps} steps x batch {v.batch_size}): {metric} {e.text()} (chance {chance:.3f}); "
           f"'almost perfect' >= {near}")
    if e.lo >= near:
        return _result("reproduced", e, why)
    others = {n: numbers.get(n, metric) for n in numbers.tables if n not in (ideal, judged)}
    if others and ideal in numbers.tables:
        name = max(others, key=lambda n: others[n].point)
        d = others[name] - numbers.get(ideal, metric)
        why += f"; best other variant {name} {others[name].text()}, {d.text(signed=True)} above {ideal}"
        if d.lo > m:
            return _result("not reproduced", e, why + f" (beyond {m}): ideal data is not the best")
    if e.hi < near:
        gain = levelled_gain(curves, metric) if judged == params.study.ideal_long else None
        if gain is not None and gain < m:
            return _result("not reproduced", e, why + f"; below 'almost perfect' and levelled off: {gain:+.3f} "
                           f"over the last fifth of its steps (< {m}), so more steps of this model "
                           f"({params.model.name}) will not reach it; a larger model might")
        return _result("inconclusive", e, why + "; below 'almost perfect' at this model and training size",
                       f"train {judged} longer (variants.{judged}.steps) or a larger model (model.name)")
    return _result("inconclusive", e, why + f"; the interval contains {near}", _narrower(params, numbers))


# --- rendering --------------------------------------------------------------------------------

def _errorbar(ax, xs, points: list[dict], **kw):
    means = np.array([p["mean"] for p in points])
    lo = np.array([p["lo"] for p in points])
    hi = np.array([p["hi"] for p in points])
    return ax.errorbar(xs, means, yerr=[means - lo, hi - means], capsize=3, **kw)


def _plot(params: Params, finding: Finding, lines: list[list[dict]], result: dict) -> str:
    """PNG data URI: the metric against the property, a line per comparison with 95% interval bars,
    a dot per seed; chance (and for 5/6 the ideal variant) as horizontal lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, ideal, chance = result["metric"], params.study.ideal, result["chance"]
    curves = result.get("curves") or []
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(10.4 if curves else 5.6, 3.4), squeeze=False)
    ax = axes[0][0]
    if curves:
        _curve_plot(axes[0][1], params, curves, chance)
    if finding.kind == "ideal":
        rows = sorted(result["variants"], key=lambda r: r["mean"])
        ys = np.arange(len(rows))
        means = np.array([r["mean"] for r in rows])
        green = {ideal, params.study.ideal_long}
        ax.barh(ys, means, color=["tab:green" if r["variant"] in green else "tab:gray" for r in rows],
                xerr=[means - [r["lo"] for r in rows], np.array([r["hi"] for r in rows]) - means], capsize=2)
        for i, r in enumerate(rows):
            ax.plot(r["values"], [i] * len(r["values"]), "k.", ms=4)
        ax.set_yticks(ys, [r["variant"] for r in rows])
        ax.axvline(chance, color="k", ls="--", lw=1, label="chance")
        ax.axvline(params.study.near_perfect, color="tab:green", ls=":", lw=1, label="almost perfect")
        ax.set_xlim(0, 1)
        ax.set_xlabel(metric)
        ax.tick_params(axis="y", labelsize=7)
    else:
        for line in lines:
            xs = [p["x"] for p in line]
            label = ("ideal data" if ideal in [p["variant"] for p in line]
                     else "degraded: " + ", ".join(p["variant"] for p in line[:2]) + ("..." if len(line) > 2 else ""))
            h = _errorbar(ax, xs, line, fmt="-o", label=label)
            color = h.lines[0].get_color()
            for p in line:
                ax.plot([p["x"]] * len(p["values"]), p["values"], ".", color=color, alpha=0.5)
                ax.annotate(p["variant"], (p["x"], p["mean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if finding.kind == "peak" and result.get("peak"):
            ax.axvline(result["peak"]["x"], color="tab:green", ls=":", lw=1, label="peak")
        if result.get("own_format_probe"):
            own = result["own_format_probe"]
            _errorbar(ax, [p["x"] for p in own], own, fmt="--s", ms=3, color="tab:purple", alpha=0.8,
                      label="probe at own density")
        ref = result.get("ideal_reference")
        if finding.kind == "no_fix" and ref:
            ax.axhspan(ref["lo"], ref["hi"], color="tab:green", alpha=0.15)
            ax.axhline(ref["mean"], color="tab:green", ls=":", lw=1, label=f"{ideal}")
        ax.axhline(chance, color="k", ls="--", lw=1, label="chance")
        if finding.number == 5:
            ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1)
        ax.set_xlabel(finding.xlabel)
        ax.set_ylabel(metric, fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title(f"{finding.number}. {finding.title} (bars: 95% intervals)", fontsize=10)
    fig.tight_layout()
    return png_uri(figure_png(fig, dpi=90))


def _curve_plot(ax, params: Params, curves: list[dict], chance: float) -> None:
    """Finding 7's run against samples seen: pairwise and strict with 95% interval bars, per seed; the
    comparisons' shared budget (study.ideal's samples) as a dotted line."""
    for c in curves:
        xs = [p["samples"] / 1000 for p in c["points"]]
        for key, color in (("i2t_pairwise", "tab:green"), ("i2t_strict", "tab:blue")):
            pts = [dict(zip(("mean", "lo", "hi"), [p[key], *(p[f"{key}_ci"] or [p[key]] * 2)]))
                   for p in c["points"]]
            _errorbar(ax, xs, pts, fmt="-o", ms=3, color=color,
                      label=f"{key}" + (f" (seed {c['seed']})" if len(curves) > 1 else ""))
    shared = params.variant(params.study.ideal)
    ax.axvline(shared.steps * shared.batch_size / 1000, color="k", ls=":", lw=1,
               label=f"{params.study.ideal}'s budget")
    ax.axhline(params.study.near_perfect, color="tab:green", ls=":", lw=1, label="almost perfect")
    ax.axhline(chance, color="k", ls="--", lw=1, label="chance (pairwise)")
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"thousands of samples seen ({curves[0]['variant']}, batch {curves[0]['batch_size']})")
    ax.set_title("binding against training", fontsize=10)
    ax.legend(fontsize=7)


def _ci_text(mean: float, lo, hi) -> str:
    return f"{mean:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]")


def _variant_rows(names: list[str], numbers: Numbers, x: dict | None = None) -> str:
    """Per variant: every shown metric with its 95% interval (images and seeds resampled)."""
    rows = []
    for n in names:
        cells = "".join(f"<td>{numbers.get(n, k).text() if numbers.has(n, k) else '-'}</td>" for k in SHOWN)
        xcell = f"<td>{x[n]:g}</td>" if x else ""
        seeds = ", ".join(str(s) for s in sorted(numbers.tables[n]))
        rows.append(f'<tr><td><a href="../audit/{html.escape(n)}/index.html">{html.escape(n)}</a></td>'
                    f"{xcell}<td>{seeds}</td>{cells}</tr>")
    head = "<th>variant</th>" + ("<th>x</th>" if x else "") + "<th>seeds</th>" + "".join(f"<th>{k}</th>" for k in SHOWN)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _curve_rows(curve: dict) -> str:
    """Finding 7's curve as a table: binding at each weight snapshot of the run."""
    def cell(p: dict, key: str) -> str:
        ci = p[f"{key}_ci"]
        return f"<td>{_ci_text(p[key], *(ci or [None, None]))}</td>"
    def loss(p: dict) -> str:
        return "" if p["loss"] is None else f"{p['loss']:.3f}"
    rows = "".join(f"<tr><td>{p['step']}</td><td>{p['samples']:,}</td><td>{loss(p)}</td>"
                   f"{cell(p, 'i2t_pairwise')}{cell(p, 'i2t_strict')}</tr>" for p in curve["points"])
    return (f"<p class=\"small\">{html.escape(curve['variant'])} seed {curve['seed']}, binding against training "
            f"(every weight snapshot scored on the benchmark; the training loss at that step):</p><table><tr>"
            f"<th>step</th><th>samples seen</th><th>training loss</th><th>i2t_pairwise</th><th>i2t_strict</th>"
            f"</tr>{rows}</table>")


CSS = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
       ".reproduced{color:#070}.partly{color:#06a}.not{color:#a00}.inconclusive{color:#a60}.small{font-size:12px;color:#555}"
       ".howto{background:#f6f6f6;padding:.5em 1em;font-size:13px}")


def _point(p: dict) -> dict:
    return {k: p[k] for k in ("variant", "x", "mean", "sd", "lo", "hi", "values", "seeds")}


def build(params: Params, paths: DataPaths) -> dict:
    """Compute every finding's comparison and verdict: the content of findings.json."""
    runs, missing = load_runs(params, paths)
    keys = sorted({finding_metric(params, f) for f in FINDINGS})
    numbers = Numbers(paths, runs, keys)
    evals = [r for by in runs.values() for r in by.values()]
    measured = [r["chance_measured"] for r in evals if "chance_measured" in r]
    out = {"metric": params.study.metric, "seeds": params.study.seeds, "profile": params.profile,
           "min_effect": params.study.min_effect, "n_images": numbers.n_images,
           "bootstrap": {"unit": "benchmark image", "resamples": intervals.RESAMPLES, "seed": intervals.SEED,
                         "level": intervals.LEVEL, "seeds": "resampled per variant when several"},
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
            entry["variants"] = [_point(_variant_point(numbers, n, metric)) for n in sorted(runs)]
            entry["curves"] = curves
            entry["why"] += "".join(f"; {curve_note(c, metric)}" for c in entry["curves"] if metric in c["points"][-1])
        if f.kind == "peak" and lines:
            entry["own_format_probe"] = own_format_probe(numbers, lines[0])
        if params.study.ideal in runs:
            entry["ideal_reference"] = _point(_variant_point(numbers, params.study.ideal, metric))
        out["findings"].append(entry)
    return out | {"_numbers": numbers}


def load_curves(params: Params, paths: DataPaths, runs: dict) -> list[dict]:
    """Finding 7's binding-against-training curves (dvc.yaml stage `curve`), one per seed of the judged
    run; none when that run or its curve.json is missing (a run without the curve stage)."""
    name = params.study.ideal_long
    out = []
    for seed in sorted(runs.get(name, {})):
        f = paths.metrics(name, seed) / "curve.json"
        if f.exists():
            out.append(read_curve(f, name, seed))
    return out


def last_fifth(points: list[dict]) -> tuple[dict, dict]:
    """(first snapshot in the last fifth of the run's steps, last snapshot): how a run ended."""
    last = points[-1]
    return next(p for p in points if p["step"] >= 0.8 * last["step"]), last


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


def curve_minutes(params: Params, paths: DataPaths) -> dict | None:
    """Finding 7's run (first seed): checkpoint step -> training seconds, from its timing record."""
    from bindlab import timing
    record = timing.read(paths.timing(paths.metrics(params.study.ideal_long, params.study.seeds[0])))
    return record.get("train", {}).get("checkpoints") or None


def training_minutes(params: Params, paths: DataPaths) -> float | None:
    """Training minutes of the study's runs from their timing records (undeclared, so they stay out of
    the hashed report); None when no run has one (e.g. every run restored from a DVC cache)."""
    from bindlab import timing
    seconds = [timing.train_seconds(paths.timing(paths.metrics(v, s)))
               for v in params.variants for s in params.study.seeds]
    seconds = [x for x in seconds if x is not None]
    return round(sum(seconds) / 60, 1) if seconds else None


def _variant_point(numbers: Numbers, name: str, metric: str) -> dict:
    e, values = numbers.get(name, metric), numbers.seed_values(name, metric)
    mean, sd = _stats(values)
    return {"variant": name, "x": 0.0, "mean": mean, "sd": sd, "lo": e.lo, "hi": e.hi, "values": values,
            "seeds": sorted(numbers.tables[name])}


def _effect_cell(f: dict) -> str:
    if f["effect"] is None:
        return "-"
    return f"{f['effect']:+.3f} [{f['ci'][0]:+.3f}, {f['ci'][1]:+.3f}]"


def markdown(result: dict, minutes: float | None = None, checkpoint_seconds: dict | None = None) -> str:
    """The summary; `minutes` (training time) and `checkpoint_seconds` (finding 7's run: step ->
    training seconds, from curve_minutes), for the README, are left out of the hashed report files."""
    strict = result["chance"]["i2t_strict_measured"]
    lines = [f"Findings of the last study (profile `{result['profile']}`, seeds {result['seeds']}, "
             f"metric `{result['metric']}`"
             + (f", {minutes:.1f} min of training in all" if minutes is not None else "") + "); "
             f"generated by `bindlab report` from `data/metrics/*/seed*/eval.json` and `per_image.parquet`. "
             f"Numbers in brackets are 95% bootstrap intervals over the {result['n_images']} benchmark images "
             f"(and seeds); a verdict needs the interval of the difference beyond "
             f"`study.min_effect` = {result['min_effect']}. Chance: pairwise 0.5, strict "
             f"{result['chance']['i2t_strict_computed']:.3f} computed"
             + (f", {strict:.3f} measured on the untrained model." if strict is not None else "."), "",
             "| # | finding | verdict | effect [95% CI] | the numbers | to resolve |", "|---|---|---|---|---|---|"]
    for f in result["findings"]:
        why = f["why"] + (" | " + _own_format_text(f["own_format_probe"]) if f.get("own_format_probe") else "")
        lines.append(f"| {f['number']} | {f['title']} | **{f['verdict']}** | {_effect_cell(f)} | {why} "
                     f"| {f.get('resolve', '')} |")
    curves = result["findings"][-1].get("curves") or []
    if curves and checkpoint_seconds:
        c = curves[0]
        at = [(p, checkpoint_seconds[str(p["step"])]) for p in c["points"] if str(p["step"]) in checkpoint_seconds]
        lines += ["", f"Finding 7's run `{c['variant']}` (seed {c['seed']}) against training minutes: "
                  + "; ".join(f"{s / 60:.1f} min (step {p['step']}): {p['i2t_pairwise']:.3f} pairwise, "
                              f"{p['i2t_strict']:.3f} strict" for p, s in at) + "."]
    if result["missing_runs"]:
        lines += ["", f"Missing runs (not in the report): {', '.join(result['missing_runs'])}."]
    return "\n".join(lines) + "\n"


HOW_TO_READ = (
    "<div class='howto'><b>How to read this.</b> Each finding compares variants that differ only in its "
    "knobs (the others equal), so every line is a controlled comparison. Every number is the mean over "
    "seeds with its 95% interval in brackets (and as bars in the plots): the benchmark images are resampled "
    "{resamples} times, each image with all its items and probes, and the seeds as well when there are "
    "several. A difference between two variants is bootstrapped on the <i>same</i> resampled images "
    "(paired), so it is much tighter than the two intervals side by side. Verdicts: <b>reproduced</b> when "
    "the difference's interval lies beyond study.min_effect = {m} in the claimed direction (for 5 and 6, "
    "'no fix': the variants clearly learn, every improvement's interval lies below {m}, and the gap to ideal "
    "data stays above {m}); <b>not reproduced</b> when it lies on the other side of {m} on data the model "
    "learns from; <b>inconclusive</b> otherwise, with the condition that failed and the setting that would "
    "resolve it. Finding 1 has two halves, each with its own verdict: <b>too few</b> compares the peak of the "
    "density curve with the best density of at most one attribute, <b>too many</b> the peak with the highest "
    "density; a half is reproduced when the interval of that difference lies above {m}, not reproduced when it "
    "lies within &plusmn;{m}; the finding is <b>partly reproduced</b> when one half is. Chance: 0.5 for pairwise metrics and the probe (exact: a tie counts 1/2); strict binding's "
    "'1/(negatives+1)' assumes exchangeable scores, so the untrained model (the run's initialisation) is "
    "scored as well and shown as the measured chance. Finding 4 is judged on the items that involve the "
    "least salient object: the one a salient-first caption never names.</div>")


def html_page(params: Params, result: dict) -> str:
    numbers = result["_numbers"]
    parts = [f"<h1>bindlab: the findings</h1><p>{markdown_to_html_intro(result)}</p>",
             HOW_TO_READ.format(resamples=intervals.RESAMPLES, m=params.study.min_effect),
             '<p class="small">Variant names link to their data audit pages; '
             '<a href="../audit/index.html">audit overview</a>.</p>']
    summary = "".join(
        f"<tr><td>{f['number']}</td><td>{html.escape(f['title'])}</td>"
        f"<td class=\"{f['verdict'].split()[0]}\"><b>{f['verdict']}</b></td>"
        f"<td>{_effect_cell(f)}</td></tr>" for f in result["findings"])
    parts.append(f"<table><tr><th>#</th><th>finding</th><th>verdict</th><th>effect [95% CI]</th></tr>{summary}</table>")
    for f, spec in zip(result["findings"], FINDINGS):
        lines = [[dict(p) for p in line] for line in f["lines"]]
        resolve = f"<br>To resolve: {html.escape(f['resolve'])}." if f.get("resolve") else ""
        parts.append(f"<h2>{f['number']}. {html.escape(f['title'])}</h2>"
                     f"<p><b>The paper's claim:</b> <i>{html.escape(f['claim'])}</i></p>"
                     f"<p class=\"small\">metric <code>{html.escape(f['metric'])}</code>, chance {f['chance']:.3f}</p>"
                     f"<p class=\"{f['verdict'].split()[0]}\"><b>{f['verdict']}</b>: {html.escape(f['why'])}{resolve}</p>")
        if f.get("own_format_probe"):
            parts.append(f"<p class=\"small\">{html.escape(_own_format_text(f['own_format_probe']))}. The benchmark's "
                         "captions are full descriptions, outside the format of the low densities' training captions; "
                         "the probe names as many attributes per object as their own captions.</p>")
        parts.append(f'<img src="{_plot(params, spec, lines, f)}" alt="{html.escape(f["title"])}">')
        if spec.kind == "ideal":
            parts.append(_variant_rows(sorted(numbers.tables), numbers))
            parts += [_curve_rows(c) for c in f.get("curves") or []]
        for line in lines:
            parts.append(_variant_rows([p["variant"] for p in line], numbers, {p["variant"]: p["x"] for p in line}))
    if result["missing_runs"]:
        parts.append(f"<p class=\"small\">Missing runs: {html.escape(', '.join(result['missing_runs']))}</p>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>bindlab findings</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def markdown_to_html_intro(result: dict) -> str:
    return html.escape(markdown(result).splitlines()[0]).replace("`", "")


def update_readme(readme: Path, summary: str) -> None:
    """Replace the text between the results markers of the README with the summary."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise StageError(f"{readme}: has no {README_START} ... {README_END} markers for the results")
    new = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END),
                 lambda _: f"{README_START}\n{summary}{README_END}", text, flags=re.S)
    with atomic_path(readme) as tmp:
        tmp.write_text(new)


def report_stage(params: Params, paths: DataPaths, readme: str | Path | None = None) -> dict:
    result = build(params, paths)
    out = paths.report
    summary = markdown(result)
    page = html_page(params, result)
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(page)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary)
    findings = {k: v for k, v in result.items() if k != "_numbers"}
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
        update_readme(Path(readme), markdown(result, training_minutes(params, paths), curve_minutes(params, paths)))
    for f in result["findings"]:
        print(f"finding {f['number']} {f['title']}: {f['verdict']} ({f['why']})")
    print(f"report -> {out / 'index.html'}")
    return findings
