"""The findings report: one self-contained HTML page and a markdown summary, from the metrics files.

Each of the seven findings of STUDY.md is a comparison between variants that differ only in that
finding's knobs: the variants are grouped by every *other* knob (a group with two or more values of the
property is one line of the plot), so the report needs no list of variant names and a new variant joins
the right comparison by its declaration. The verdict is computed from the numbers (`study.metric`,
mean over seeds): an effect counts when it exceeds max(`study.min_effect`, 2 x the largest seed spread
in the comparison). Inputs: `data/metrics/VARIANT/seedS/eval.json` (the metrics contract) and params.
Outputs: `data/report/index.html`, `summary.md`, `findings.json`. No timestamps, so the
same metrics give the same bytes.
"""
from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

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
    kind: str                   # how the verdict is computed (see _verdict)


FINDINGS = (
    Finding(1, "Attribute density", "Too few attributes per object in the captions hurt binding "
            "(too many may hurt as well).", ("density",), "attributes per mentioned object", "hurts_low"),
    Finding(2, "Number of objects", "The number of objects per image changes how well binding is learned.",
            ("scenes",), "mean objects per training image", "changes"),
    Finding(3, "Caption completeness", "Captions that mention only some of the objects hurt binding.",
            ("completeness", "objects_mentioned"), "fraction of the objects mentioned (expected)", "hurts_low"),
    Finding(4, "Saliency bias", "Captions biased towards the most salient object hurt binding.",
            ("saliency_bias",), "saliency bias", "hurts_high"),
    Finding(5, "Batch size", "Scaling the batch size does not make CLIP learn reliable binding.",
            ("batch_size", "steps"), "batch size (same number of samples seen)", "no_fix"),
    Finding(6, "Hard negatives", "Adding hard negatives (attribute-swapped captions) does not make CLIP "
            "learn reliable binding.", ("hard_negatives",), "hard negatives per caption", "no_fix"),
    Finding(7, "Ideal data", "With dense, complete, unbiased captions CLIP learns almost perfect binding.",
            (), "", "ideal"),
)


# --- inputs -----------------------------------------------------------------------------------

def load_runs(params: Params, paths: DataPaths) -> tuple[dict[str, dict[int, dict]], list[str]]:
    """variant -> seed -> eval.json, over study.seeds; and the runs that are missing."""
    runs, missing = {}, []
    for name in params.variants:
        for seed in params.study.seeds:
            f = paths.metrics(name, seed) / "eval.json"
            if not f.exists():
                missing.append(f"{name}/seed{seed}")
                continue
            try:
                result = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                raise StageError(f"{f}: not valid JSON ({e})") from None
            if params.study.metric not in result:
                raise StageError(f"{f}: has no {params.study.metric!r} (study.metric); keys: "
                                 f"{', '.join(sorted(result))}")
            runs.setdefault(name, {})[seed] = result
    if not runs:
        raise StageError(f"no eval.json under {paths.root / 'metrics'} for any variant and seed "
                         f"{params.study.seeds}; run `bindlab train` and `bindlab evaluate` (or `dvc repro`) first")
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


def comparisons(params: Params, finding: Finding, runs: dict) -> list[list[dict]]:
    """Lines of the finding: groups of variants equal in every knob but `finding.varies`, each point
    {variant, x, values (per seed), mean, sd}, sorted by x; only groups with 2+ distinct x."""
    groups: dict[tuple, list[dict]] = {}
    for name in runs:
        v = params.variant(name)
        key = tuple((k, getattr(v, k)) for k in KNOBS if k not in finding.varies)
        by_seed = runs[name]
        values = [by_seed[s][params.study.metric] for s in sorted(by_seed)]
        mean, sd = _stats(values)
        groups.setdefault(key, []).append({"variant": name, "x": property_value(params, finding, v),
                                           "seeds": sorted(by_seed), "values": values, "mean": mean, "sd": sd})
    lines = []
    for points in groups.values():
        if len({p["x"] for p in points}) >= 2:
            lines.append(sorted(points, key=lambda p: (p["x"], p["variant"])))
    return sorted(lines, key=lambda line: (params.study.ideal not in [p["variant"] for p in line],
                                           line[0]["variant"]))


# --- verdicts ---------------------------------------------------------------------------------

def _threshold(params: Params, points: list[dict]) -> float:
    return max(params.study.min_effect, 2 * max((p["sd"] for p in points), default=0.0))


def _chance(runs: dict, metric: str) -> float:
    for by_seed in runs.values():
        for r in by_seed.values():
            return float(r.get("chance", {}).get(metric, 0.5 if "pairwise" in metric else 0.0))
    return 0.0


def verdict(params: Params, finding: Finding, lines: list[list[dict]], runs: dict) -> dict:
    """{verdict: reproduced | not reproduced | inconclusive, effect, threshold, why}."""
    metric, ideal = params.study.metric, params.study.ideal
    chance = _chance(runs, metric)
    if finding.kind == "ideal":
        if ideal not in runs:
            return {"verdict": "inconclusive", "effect": None, "threshold": None,
                    "why": f"no run of the ideal variant {ideal!r}"}
        mean, sd = _stats([runs[ideal][s][metric] for s in sorted(runs[ideal])])
        best_other = max(((_stats([r[metric] for r in by_seed.values()])[0], name)
                          for name, by_seed in runs.items() if name != ideal), default=(None, None))
        thr = max(params.study.min_effect, 2 * sd)
        why = f"{ideal}: {metric} {mean:.3f} (chance {chance:.3f}); 'almost perfect' >= {params.study.near_perfect}"
        if best_other[0] is not None:
            why += f"; best other variant {best_other[1]} {best_other[0]:.3f}"
        if mean >= params.study.near_perfect:
            v = "reproduced"
        elif best_other[0] is not None and best_other[0] > mean + thr:
            v = "not reproduced"
        else:
            v = "inconclusive"
            why += " (ideal data is best, but below 'almost perfect' at this model and training size)"
        return {"verdict": v, "effect": round(mean - chance, 4), "threshold": thr, "why": why}

    if not lines:
        return {"verdict": "inconclusive", "effect": None, "threshold": None,
                "why": f"no two evaluated variants differ only in {', '.join(finding.varies)}"}
    points = [p for line in lines for p in line]
    thr = _threshold(params, points)
    if max(p["mean"] for p in points) < chance + thr and finding.kind != "no_fix":
        return {"verdict": "inconclusive", "effect": None, "threshold": thr,
                "why": f"no variant of the comparison learned {metric} above chance {chance:.3f} + {thr:.3f}"}
    line = lines[0]  # the line through the ideal variant when there is one
    label = lambda p: f"{p['variant']} ({p['x']:.3g}): {p['mean']:.3f}"  # noqa: E731
    if finding.kind == "hurts_low":
        best = max(line, key=lambda p: p["mean"])
        effect = best["mean"] - line[0]["mean"]
        why = f"best {label(best)} vs lowest {label(line[0])}: {effect:+.3f}"
        if finding.number == 1 and best is not line[-1]:
            why += f"; the peak is below the highest density ({label(line[-1])}): too many also hurt"
        return {"verdict": "reproduced" if effect >= thr else "not reproduced", "effect": round(effect, 4),
                "threshold": thr, "why": why + f" (threshold {thr:.3f})"}
    if finding.kind == "hurts_high":
        effect = line[0]["mean"] - line[-1]["mean"]
        why = f"{label(line[0])} vs {label(line[-1])}: {effect:+.3f} (threshold {thr:.3f})"
        return {"verdict": "reproduced" if effect >= thr else "not reproduced",
                "effect": round(effect, 4), "threshold": thr, "why": why}
    if finding.kind == "changes":
        lo, hi = min(line, key=lambda p: p["mean"]), max(line, key=lambda p: p["mean"])
        effect = hi["mean"] - lo["mean"]
        why = f"range {effect:.3f}: from {label(lo)} to {label(hi)} (threshold {thr:.3f})"
        return {"verdict": "reproduced" if effect >= thr else "not reproduced",
                "effect": round(effect, 4), "threshold": thr, "why": why}
    # no_fix: on degraded data (a line without the ideal variant), the knob's best setting must still
    # fall short of reliable binding (the ideal variant's level, and 'almost perfect').
    degraded = [ln for ln in lines if ideal not in [p["variant"] for p in ln]]
    if not degraded:
        return {"verdict": "inconclusive", "effect": None, "threshold": thr,
                "why": "no comparison on degraded data (every line includes the ideal variant)"}
    ideal_mean = _stats([r[metric] for r in runs[ideal].values()])[0] if ideal in runs else None
    if ideal_mean is not None and ideal_mean < chance + thr:
        # Reliable binding is measured against what ideal data reaches; if even that is at chance,
        # "the knob does not fix binding" cannot be told apart from "nothing was learned".
        return {"verdict": "inconclusive", "effect": None, "threshold": thr,
                "why": f"the ideal variant {ideal!r} itself is at chance ({ideal_mean:.3f} vs {chance:.3f} + {thr:.3f})"}
    reliable = params.study.near_perfect if ideal_mean is None else min(params.study.near_perfect, ideal_mean - thr)
    parts, fixed = [], False
    for ln in degraded:
        gain = ln[-1]["mean"] - ln[0]["mean"]
        best = max(ln, key=lambda p: p["mean"])
        fixed |= best["mean"] >= reliable
        parts.append(f"{label(ln[0])} -> {label(ln[-1])}: {gain:+.3f}")
    effect = max(ln[-1]["mean"] - ln[0]["mean"] for ln in degraded)
    why = "; ".join(parts) + (f"; ideal data {ideal_mean:.3f}" if ideal_mean is not None else "")
    why += f"; reliable = {reliable:.3f}"
    return {"verdict": "not reproduced" if fixed else "reproduced", "effect": round(effect, 4),
            "threshold": thr, "why": why}


# --- rendering --------------------------------------------------------------------------------

def _plot(params: Params, finding: Finding, lines: list[list[dict]], runs: dict) -> str:
    """PNG data URI: the metric against the property, a line per comparison, a dot per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, ideal = params.study.metric, params.study.ideal
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    if finding.kind == "ideal":
        names = sorted(runs, key=lambda n: _stats([r[metric] for r in runs[n].values()])[0])
        means = [_stats([r[metric] for r in runs[n].values()])[0] for n in names]
        ax.barh(names, means, color=["tab:green" if n == ideal else "tab:gray" for n in names])
        for i, n in enumerate(names):
            ax.plot([r[metric] for r in runs[n].values()], [i] * len(runs[n]), "k.", ms=4)
        ax.axvline(_chance(runs, metric), color="k", ls="--", lw=1, label="chance")
        ax.axvline(params.study.near_perfect, color="tab:green", ls=":", lw=1, label="almost perfect")
        ax.set_xlim(0, 1)
        ax.set_xlabel(metric)
        ax.tick_params(axis="y", labelsize=7)
    else:
        for line in lines:
            xs = [p["x"] for p in line]
            label = ("ideal data" if ideal in [p["variant"] for p in line]
                     else "degraded: " + ", ".join(p["variant"] for p in line[:2]) + ("..." if len(line) > 2 else ""))
            (h,) = ax.plot(xs, [p["mean"] for p in line], "-o", label=label)
            for p in line:
                ax.plot([p["x"]] * len(p["values"]), p["values"], ".", color=h.get_color(), alpha=0.5)
                ax.annotate(p["variant"], (p["x"], p["mean"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if finding.kind == "no_fix" and ideal in runs:
            ax.axhline(_stats([r[metric] for r in runs[ideal].values()])[0], color="tab:green", ls=":",
                       lw=1, label=f"{ideal}")
        ax.axhline(_chance(runs, metric), color="k", ls="--", lw=1, label="chance")
        if finding.number == 5:
            ax.set_xscale("log", base=2)
        ax.set_ylim(0, 1)
        ax.set_xlabel(finding.xlabel)
        ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    ax.set_title(f"{finding.number}. {finding.title}", fontsize=10)
    fig.tight_layout()
    return png_uri(figure_png(fig, dpi=90))


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _mean_sd(by_seed: dict, key: str) -> str:
    values = [r[key] for r in by_seed.values() if r.get(key) is not None]
    if not values:
        return "-"
    mean, sd = _stats(values)
    return f"{mean:.3f}" + (f" ± {sd:.3f}" if len(values) > 1 else "")


def _variant_rows(names: list[str], runs: dict, x: dict | None = None) -> str:
    rows = []
    for n in names:
        by_seed = runs[n]
        cells = "".join(f"<td>{_mean_sd(by_seed, k)}</td>" for k in SHOWN)
        xcell = f"<td>{x[n]:g}</td>" if x else ""
        seeds = ", ".join(str(s) for s in sorted(by_seed))
        rows.append(f'<tr><td><a href="../audit/{html.escape(n)}/index.html">{html.escape(n)}</a></td>'
                    f"{xcell}<td>{seeds}</td>{cells}</tr>")
    head = "<th>variant</th>" + ("<th>x</th>" if x else "") + "<th>seeds</th>" + "".join(f"<th>{k}</th>" for k in SHOWN)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


CSS = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
       ".reproduced{color:#070}.not{color:#a00}.inconclusive{color:#a60}.small{font-size:12px;color:#555}")


def build(params: Params, paths: DataPaths) -> dict:
    """Compute every finding's comparison and verdict: the content of findings.json."""
    runs, missing = load_runs(params, paths)
    out = {"metric": params.study.metric, "seeds": params.study.seeds, "profile": params.profile,
           "missing_runs": missing, "findings": []}
    for f in FINDINGS:
        lines = comparisons(params, f, runs) if f.kind != "ideal" else []
        v = verdict(params, f, lines, runs)
        out["findings"].append({"number": f.number, "title": f.title, "claim": f.claim, **v,
                                "lines": [[{k: p[k] for k in ("variant", "x", "mean", "sd", "values", "seeds")}
                                           for p in line] for line in lines]})
    return out | {"_runs": runs}


def training_minutes(params: Params, paths: DataPaths) -> float | None:
    """Training minutes of the study's runs from their timing records (undeclared, so they stay out of
    the hashed report); None when no run has one (e.g. every run restored from a DVC cache)."""
    from bindlab import timing
    seconds = [timing.train_seconds(paths.timing(paths.metrics(v, s)))
               for v in params.variants for s in params.study.seeds]
    seconds = [x for x in seconds if x is not None]
    return round(sum(seconds) / 60, 1) if seconds else None


def markdown(result: dict, minutes: float | None = None) -> str:
    """The summary; `minutes` (training time, for the README) is left out of the hashed report files."""
    took = f", {minutes:.1f} min of training in all" if minutes is not None else ""
    lines = [f"Findings of the last study (profile `{result['profile']}`, seeds {result['seeds']}, "
             f"metric `{result['metric']}`{took}); "
             f"generated by `bindlab report` from `data/metrics/*/seed*/eval.json`.", "",
             "| # | finding | verdict | effect | the numbers |", "|---|---|---|---|---|"]
    for f in result["findings"]:
        eff = "-" if f["effect"] is None else f"{f['effect']:+.3f}"
        lines.append(f"| {f['number']} | {f['title']} | **{f['verdict']}** | {eff} | {f['why']} |")
    if result["missing_runs"]:
        lines += ["", f"Missing runs (not in the report): {', '.join(result['missing_runs'])}."]
    return "\n".join(lines) + "\n"


def html_page(params: Params, result: dict) -> str:
    runs = result["_runs"]
    parts = [f"<h1>bindlab: the findings</h1><p>{markdown_to_html_intro(result)}</p>",
             '<p class="small">Each finding compares variants that differ only in its knobs (the other '
             "knobs equal), so every line below is a controlled comparison. Verdicts are computed from the "
             f"numbers: an effect counts when it exceeds max(study.min_effect = {params.study.min_effect}, "
             "2 x the seed spread). Variant names link to their data audit pages; "
             '<a href="../audit/index.html">audit overview</a>.</p>']
    summary = "".join(
        f"<tr><td>{f['number']}</td><td>{html.escape(f['title'])}</td>"
        f"<td class=\"{f['verdict'].split()[0]}\"><b>{f['verdict']}</b></td>"
        f"<td>{'-' if f['effect'] is None else format(f['effect'], '+.3f')}</td></tr>" for f in result["findings"])
    parts.append(f"<table><tr><th>#</th><th>finding</th><th>verdict</th><th>effect</th></tr>{summary}</table>")
    for f, spec in zip(result["findings"], FINDINGS):
        lines = [[dict(p) for p in line] for line in f["lines"]]
        parts.append(f"<h2>{f['number']}. {html.escape(f['title'])}</h2><p><i>{html.escape(f['claim'])}</i></p>"
                     f"<p class=\"{f['verdict'].split()[0]}\"><b>{f['verdict']}</b>: {html.escape(f['why'])}</p>")
        parts.append(f'<img src="{_plot(params, spec, lines, runs)}" alt="{html.escape(f["title"])}">')
        if spec.kind == "ideal":
            parts.append(_variant_rows(sorted(runs), runs))
        for line in lines:
            parts.append(_variant_rows([p["variant"] for p in line], runs, {p["variant"]: p["x"] for p in line}))
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
    findings = {k: v for k, v in result.items() if k != "_runs"}
    write_json(out / "details.json", findings)
    # findings.json: finding -> effect and verdict (flat, for `dvc diff`-style tools and scripts)
    write_json(out / "findings.json", {
        f"{f['number']}_{f['title'].lower().replace(' ', '_')}": {"effect": f["effect"], "verdict": f["verdict"]}
        for f in result["findings"]})
    if readme:
        update_readme(Path(readme), markdown(result, training_minutes(params, paths)))
    for f in result["findings"]:
        print(f"finding {f['number']} {f['title']}: {f['verdict']} ({f['why']})")
    print(f"report -> {out / 'index.html'}")
    return findings
