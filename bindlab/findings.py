"""The findings and their verdict rules, on plain data: a study's runs (eval.json dicts), their
per-image outcomes (`Numbers`) and params in, comparisons and verdicts out (testable without files).

Each of the seven findings of STUDY.md is a comparison between variants that differ only in that
finding's knobs: the variants are grouped by every *other* knob (a group with two or more values of the
property is one line of the plot), so the report needs no list of variant names and a new variant joins
the right comparison by its declaration. Every number carries a 95% bootstrap interval over benchmark
images (and seeds), and a comparison of two variants is a paired bootstrap on the same images
(bindlab/intervals.py). The verdict rules are in `verdict` and the README (Results).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from bindlab import intervals
from bindlab.captions import expected_completeness
from bindlab.params import Params, Variant
from bindlab.sight import sight, sight_reason

KNOBS = tuple(Variant.model_fields)


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
            ("saliency_bias",), "saliency bias", "hurts_high", "by_saliency.least_pair.{metric}"),
    Finding(5, "Batch size", "Scaling the batch size does not make CLIP learn reliable binding.",
            ("batch_size", "steps"), "batch size (same number of samples seen)", "no_fix"),
    Finding(6, "Hard negatives", "Adding hard negatives (attribute-swapped captions) does not make CLIP "
            "learn reliable binding.", ("hard_negatives",), "hard negatives per caption", "no_fix"),
    Finding(7, "Ideal data", "With dense, complete, unbiased captions CLIP learns almost perfect binding.",
            (), "", "ideal"),
)


def property_value(params: Params, finding: Finding, v: Variant) -> float:
    if finding.number == 2:
        dist = params.scene_sets[v.scenes].objects
        return sum(k * p for k, p in dist.items())
    if finding.number == 3:
        if v.objects_mentioned is None and v.completeness == 1:
            return 1.0
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

    lo = property(lambda self: self.ci[0])
    hi = property(lambda self: self.ci[1])

    def __sub__(self, other: "Est") -> "Est":
        # the same image resamples on both sides: the paired bootstrap of the difference
        return Est(self.point - other.point, self.reps - other.reps)

    def text(self, signed: bool = False) -> str:
        f = "+.3f" if signed else ".3f"
        return f"{self.point:{f}} [{self.lo:{f}}, {self.hi:{f}}]"


class Numbers:
    """Every run's per-image outcomes (per_image.parquet beside eval.json, as report.load_numbers reads
    them): variant -> seed -> table, and the number of benchmark images they share. A metric of a
    variant is the mean over its seeds, its replicates resample the benchmark images (the same resamples
    for every variant, so differences are paired) and the seeds."""

    def __init__(self, tables: dict[str, dict[int, pl.DataFrame]], n_images: int, seed_sd: float = 0.0):
        self.tables = tables
        self.n_images = n_images
        self.seed_sd = seed_sd   # added to a one-seed variant's replicates: what its single run cannot show

    def has(self, variant: str, key: str) -> bool:
        return all(f"{key}:num" in t.columns for t in self.tables[variant].values())

    def get(self, variant: str, key: str) -> Est:
        points, reps = [], []
        for seed, t in sorted(self.tables[variant].items()):
            num, den = t[f"{key}:num"].to_numpy(), t[f"{key}:den"].to_numpy()
            points.append(float(num.sum() / den.sum()))
            reps.append(intervals.replicates(num, den))
        rep = intervals.seed_mean_replicates(np.stack(reps, 1), variant)
        if len(points) == 1 and self.seed_sd:
            rep = rep + intervals.seed_noise(len(rep), self.seed_sd, variant)
        return Est(points[0] if len(points) == 1 else sum(points) / len(points), rep)

    def seed_values(self, variant: str, key: str) -> list[float]:
        return [float(t[f"{key}:num"].sum() / t[f"{key}:den"].sum()) for _, t in sorted(self.tables[variant].items())]


LEAST_SEEN = "replace_least.i2t_pairwise"   # perception on the least salient objects, beside finding 4


def finding_metric(params: Params, finding: Finding) -> str:
    """The eval.json key a finding is judged on: study.metric, for finding 4 restricted to the swaps
    between the two least salient objects of 3-4-object images, which a salient-first caption leaves
    out and no salient object can give away."""
    return finding.metric.format(metric=params.study.metric)


def comparisons(params: Params, finding: Finding, runs: dict, numbers: Numbers | None = None) -> list[list[dict]]:
    """Lines of the finding: groups of variants equal in every knob but `finding.varies`, each point
    {variant, x, values (per seed), mean, sd, lo, hi}, sorted by x; only groups with 2+ distinct x."""
    metric = finding_metric(params, finding)
    groups: dict[tuple, list[dict]] = {}
    for name in runs:
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
    bootstrap intervals over benchmark images (and seeds): see the README, Results. A variant with one
    seed has its interval widened by the measured seed spread (study.seed_sd), and the reason says so."""
    out = _verdict(params, finding, lines, runs, numbers, curves)
    used = {p["variant"] for ln in lines for p in ln} | ({params.study.ideal} if finding.kind == "ideal" else set())
    single = sorted(v for v in used if len(numbers.tables.get(v, {})) == 1)
    if single and numbers.seed_sd:
        out["why"] += (f"; one seed per variant: intervals widened by the measured seed sd {numbers.seed_sd} "
                       f"(study.seed_sd; three seeds: -S 'study.seeds=[0,1,2]')")
    return out


def _verdict(params: Params, finding: Finding, lines: list[list[dict]], runs: dict, numbers: Numbers,
             curves: list[dict] = ()) -> dict:
    metric, ideal = finding_metric(params, finding), params.study.ideal
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
        # the first line with the weakest verdict speaks for the finding; every line's reason is kept
        worst = min(results, key=lambda r: ("not reproduced", "inconclusive", "reproduced").index(r["verdict"]))
        return worst | {"why": " | ".join(x["why"] for x in results)}
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
        if ideal in numbers.tables and ideal not in est:  # the same items without any bias or omission
            why += f" (no-bias reference {ideal} {numbers.get(ideal, metric).text()})"
        seen = [f"{v} {numbers.get(v, LEAST_SEEN).text()}" for v in (a["variant"], b["variant"]) if numbers.has(v, LEAST_SEEN)]
        why += f"; the eye on those objects ({LEAST_SEEN}): {', '.join(seen)}" if len(seen) == 2 else ""
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
    """Judged on study.ideal; 'ideal data is not the best' compares it with the other variants.
    Below 'almost perfect', on a run trained to its level-off (study.level_off) the curve decides: still
    rising -> train longer (inconclusive); levelled off (the last fifth of its steps gained less than
    min_effect) -> not reproduced at this model. At the shared budget it stays inconclusive.
    Below the bar, runs with replace items say per type whether the model falls short in seeing or binding."""
    ideal, near, m = params.study.ideal, params.study.near_perfect, params.study.min_effect
    if ideal not in numbers.tables:
        return _result("inconclusive", None, f"no run of the ideal variant {ideal!r}", f"evaluate {ideal}")
    e = numbers.get(ideal, metric)
    v = params.variant(ideal)
    why = (f"{ideal} ({v.steps} steps x batch {v.batch_size}): {metric} {e.text()} (chance {chance:.3f}); "
           f"'almost perfect' >= {near}")
    if e.lo >= near:
        return _result("reproduced", e, why)
    rows = sight(numbers, [ideal]).get(ideal)
    reason = f"; {sight_reason(rows, params.study.sees, m)}" if rows and e.point < near else ""
    others = {n: numbers.get(n, metric) for n in numbers.tables if n != ideal}
    if others:
        name = max(others, key=lambda n: others[n].point)
        d = others[name] - numbers.get(ideal, metric)
        why += f"; best other variant {name} {others[name].text()}, {d.text(signed=True)} above {ideal}"
        if d.lo > m:
            return _result("not reproduced", e, why + f" (beyond {m}): ideal data is not the best{reason}")
    if e.hi < near and not params.study.level_off:
        return _result("inconclusive", e, why + "; below 'almost perfect' at the shared budget, where it may "
                       "still rise (study.level_off false)" + reason,
                       "the converged profile judges it at its level-off (results/converged)")
    if e.hi < near:
        gain = levelled_gain(curves, metric)
        if gain is not None and gain < m:
            return _result("not reproduced", e, why + f"; below 'almost perfect' and levelled off: {gain:+.3f} "
                           f"over the last fifth of its steps (< {m}), so more steps of this model "
                           f"({params.model.name}) will not reach it" + (reason or "; a larger model might"))
        return _result("inconclusive", e, why + "; below 'almost perfect' at this model and training size" + reason,
                       f"train {ideal} longer (variants.{ideal}.steps) or a larger model (model.name)")
    return _result("inconclusive", e, why + f"; the interval contains {near}{reason}", _narrower(params, numbers))


def last_fifth(points: list[dict]) -> tuple[dict, dict]:
    """(first snapshot in the last fifth of the run's steps, last snapshot): how a run ended."""
    last = points[-1]
    return next(p for p in points if p["step"] >= 0.8 * last["step"]), last


def variant_point(numbers: Numbers, name: str, metric: str) -> dict:
    e, values = numbers.get(name, metric), numbers.seed_values(name, metric)
    mean, sd = _stats(values)
    return {"variant": name, "x": 0.0, "mean": mean, "sd": sd, "lo": e.lo, "hi": e.hi, "values": values,
            "seeds": sorted(numbers.tables[name])}
