"""The findings report's pages, from the result of report.build: the self-contained HTML page (plots
embedded as PNG data URIs, no scripts; its links are relative, to its own sections and the audit pages and
eval.json files beside it under data/) and the markdown summary (the README's results). Both open on
the verdict table (bindlab/verdict_table.py).
No timestamps, so the same result gives the same bytes.
"""
from __future__ import annotations

import html

import numpy as np

from bindlab import intervals
from bindlab.figures import figure_png, png_uri
from bindlab.findings import FINDINGS, Finding, Numbers
from bindlab.heatmap import heatmap_png, merged
from bindlab.metrics import HEADLINE
from bindlab.params import Params
from bindlab.verdict_table import html_caveats, html_table, markdown_caveats, markdown_table, one_seed_note, rows


# finding 4's second panel: binding by the saliency rank of the objects an item involves
RANKS = ("most", "other", "least", "least_pair")


def _rank_plot(ax, by_rank: dict) -> None:
    """Grouped bars: per variant, binding on items with the most salient object, without the least
    salient one, with it, and between the two least salient ones (95% intervals)."""
    width = 0.8 / max(len(by_rank), 1)
    for i, (variant, groups) in enumerate(by_rank.items()):
        xs = np.array([RANKS.index(g) for g in groups]) + (i - (len(by_rank) - 1) / 2) * width
        pts = list(groups.values())
        means = np.array([p["mean"] for p in pts])
        ax.bar(xs, means, width, label=variant, yerr=[means - [p["lo"] for p in pts], [p["hi"] for p in pts] - means],
               capsize=2)
    ax.set_xticks(range(len(RANKS)), ["with the most\nsalient", "without the\nleast salient", "with the least\nsalient",
                                      "the two least\nsalient"], fontsize=7)
    ax.set_ylim(0.5, 1)
    ax.set_title("binding by saliency rank", fontsize=10)
    ax.legend(fontsize=7)


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
    curves, by_rank = result.get("curves") or [], result.get("by_rank")
    two = bool(curves or by_rank)
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(10.4 if two else 5.6, 3.4), squeeze=False)
    ax = axes[0][0]
    if curves:
        _curve_plot(axes[0][1], params, curves, chance)
    if by_rank:
        _rank_plot(axes[0][1], by_rank)
    if finding.kind == "ideal":
        rows = sorted(result["variants"], key=lambda r: r["mean"])
        ys = np.arange(len(rows))
        means = np.array([r["mean"] for r in rows])
        ax.barh(ys, means, color=["tab:green" if r["variant"] == ideal else "tab:gray" for r in rows],
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


def _sight_curve_plot(params: Params, curves: list[dict]) -> str | None:
    """PNG data URI: perception (replace, solid) and binding (swap, dashed) i2t pairwise per type against
    samples seen, for finding 7's run (its first seed's curve); None when its points lack them."""
    c = curves[0] if curves else None
    if c is None or not all("by_replace" in p and "by_swap" in p for p in c["points"]):
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["samples"] / 1000 for p in c["points"]]
    fig, ax = plt.subplots(figsize=(10.4, 3.4))
    for i, t in enumerate(sorted({t for p in c["points"] for t in p["by_replace"]})):
        for group, style in (("by_replace", "-o"), ("by_swap", "--s")):
            ax.plot(xs, [p[group].get(t, np.nan) for p in c["points"]], style, ms=3, color=f"C{i % 10}",
                    label=t if group == "by_replace" else None)
    ax.plot([], [], "k-", label="replace (perception)")
    ax.plot([], [], "k--", label="swap (binding)")
    ax.axhline(params.study.sees, color="tab:green", ls=":", lw=1, label="sees (study.sees)")
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set_ylim(0, 1)
    ax.set_ylabel("i2t_pairwise", fontsize=8)
    ax.set_xlabel(f"thousands of samples seen ({c['variant']} seed {c['seed']}, batch {c['batch_size']})")
    ax.set_title("perception and binding per type against training", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return png_uri(figure_png(fig, dpi=90))


def _sight_rows(table: dict, bar: float) -> str:
    """Perception beside binding per compared variant and type: replace / swap i2t pairwise / their gap
    with its paired 95% interval; red where the variant does not see the type."""
    types = sorted({t for rows in table.values() for t in rows})

    def cell(row: dict | None) -> str:
        if row is None:
            return "<td>-</td>"
        (r, *_), (s, *_), (g, lo, hi) = row["replace"], row["swap"], row["gap"]
        cls = ' class="not"' if r < bar else ""
        return f"<td{cls}>{r:.3f} / {s:.3f} / {g:+.3f} [{lo:+.3f}, {hi:+.3f}]</td>"
    body = "".join(f"<tr><td>{html.escape(v)}</td>{''.join(cell(rows.get(t)) for t in types)}</tr>"
                   for v, rows in table.items())
    return (f'<p class="small">Perception beside binding, per type: replace / swap i2t pairwise / gap = replace '
            f"- swap [95% interval, paired]; red: not seen (replace below study.sees = {bar}).</p><table><tr>"
            f"<th>variant</th>{''.join(f'<th>{html.escape(t)}</th>' for t in types)}</tr>{body}</table>")


def _ci_text(mean: float, lo, hi) -> str:
    return f"{mean:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]")


def _variant_rows(names: list[str], numbers: Numbers, x: dict | None = None) -> str:
    """Per variant: every shown metric with its 95% interval (images and seeds resampled)."""
    rows = []
    for n in names:
        cells = "".join(f"<td>{numbers.get(n, k).text() if numbers.has(n, k) else '-'}</td>" for k in HEADLINE)
        xcell = f"<td>{x[n]:g}</td>" if x else ""
        seeds = ", ".join(f'<a href="../metrics/{html.escape(n)}/seed{s}/eval.json">{s}</a>' for s in sorted(numbers.tables[n]))
        rows.append(f'<tr><td><a href="../audit/{html.escape(n)}/index.html">{html.escape(n)}</a></td>'
                    f"{xcell}<td>{seeds}</td>{cells}</tr>")
    head = "<th>variant</th>" + ("<th>x</th>" if x else "") + "<th>seeds</th>" + "".join(f"<th>{k}</th>" for k in HEADLINE)
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


CSS = ("body{font-family:sans-serif;max-width:1000px;margin:1em auto;color:#222}h1{margin:.3em 0}"
       ".verdicts td:nth-child(5){font-size:12px}.heatmap{max-width:100%}"
       "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
       ".reproduced{color:#070}.partly{color:#06a}.not{color:#a00}.inconclusive{color:#a60}.small{font-size:12px;color:#555}"
       ".howto{background:#f6f6f6;padding:.5em 1em;font-size:13px}")


def _own_format_text(points: list[dict]) -> str:
    return ("probe at the variant's own density (one object, k attributes; not used by the verdict): "
            + ", ".join(f"{p['x']:g}: {_ci_text(p['mean'], p['lo'], p['hi'])}" for p in points))


def _effect_cell(f: dict) -> str:
    if f["effect"] is None:
        return "-"
    return f"{f['effect']:+.3f} [{f['ci'][0]:+.3f}, {f['ci'][1]:+.3f}]"


def markdown(result: dict, minutes: float | None = None, checkpoint_seconds: dict | None = None,
             heatmap: str | None = None) -> str:
    """The summary: one line on the study, the verdict table, its caveats (`heatmap`: where the per-type
    picture is, relative to the file); `minutes` (training time) and `checkpoint_seconds` (finding 7's
    run: step -> training seconds, from report.curve_minutes), for the README, are left out of the
    hashed report files."""
    strict = result["chance"]["i2t_strict_measured"]
    lines = [f"Findings of the last study (profile `{result['profile']}`, seeds {result['seeds']}, "
             f"metric `{result['metric']}`"
             + (f", {minutes:.1f} min of training in all" if minutes is not None else "") + "), by `bindlab report`. "
             f"Numbers in brackets are 95% bootstrap intervals over the {result['n_images']} benchmark images "
             f"(and seeds); a verdict needs the difference's interval beyond `study.min_effect` = "
             f"{result['min_effect']}. Chance: pairwise 0.5, strict {result['chance']['i2t_strict_computed']:.3f} "
             "computed" + (f", {strict:.3f} measured on the untrained model." if strict is not None else "."),
             "", *markdown_table(rows(result)), "", *markdown_caveats(result, heatmap)]
    curves = result["findings"][-1].get("curves") or []
    if curves and checkpoint_seconds:
        c = curves[0]
        at = [(p, checkpoint_seconds[str(p["step"])]) for p in c["points"] if str(p["step"]) in checkpoint_seconds]
        lines += ["", f"Finding 7's run `{c['variant']}` (seed {c['seed']}) against training minutes: "
                  + "; ".join(f"{s / 60:.1f} min (step {p['step']}): {p['i2t_pairwise']:.3f} pairwise, "
                              f"{p['i2t_strict']:.3f} strict" for p, s in at) + "."]
    if result["missing_runs"]:
        missing = result["missing_runs"]
        lines += ["", "Missing runs (not in the report): " + (", ".join(missing) if len(missing) <= 3 else
                                                               f"{len(missing)}, listed in `details.json`") + "."]
    return "\n".join(lines) + "\n"


def _converged_intro(conv: dict | None) -> str:
    """Findings 1, 4 and 7 at their level-off: what the converged profile's table is, or that it has not run."""
    if conv is None:
        return ("At their level-off, findings 1, 4 and 7 are judged by the `converged` profile (docs/pipeline.md, "
                "Profiles), which has not been run for these results: the verdicts above are the shared budget's. "
                "Runs of the same comparisons to their level-off are in docs/findings.md.")
    rest = conv.get("unfinished")
    return (f"At their level-off (profile `converged`: {conv['steps']} steps, runs {', '.join(conv['runs'])}"
            + (f"; not yet run: {', '.join(rest)}, so these verdicts rest on the runs above" if rest else "")
            + "; results/converged/): these verdicts, not the shared budget's above, are the ones about the "
            "paper's claims 1, 4 and 7; the table above ranks what each variant learned in the shared budget.")


CONVERGED_COLUMNS = ("#", "finding", "scored on", "verdict", "effect [95% CI]", "the numbers")


def _converged_cells(f: dict) -> tuple[str, ...]:
    return str(f["number"]), f["title"], f["format"], f["verdict"], _effect_cell(f), f["why"]


# how to read a binding verdict: what a swap and a replace negative measure (the summary and the page)
SWAP_AND_REPLACE = (
    "A swap negative exchanges one type's values between two objects: the words stay the same, so only a "
    "model that binds each value to its object rejects it (binding). A replace negative gives one object a "
    "value no object in the image has: the words change, so a model that sees the type rejects it without "
    "binding (perception); replace - swap is the binding gap, and a binding verdict on a type a variant does "
    "not see (replace below `study.sees`) measures its eye.")

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
    "scored as well and shown as the measured chance. Finding 4 is judged on swaps between the two least "
    "salient objects of 3-4-object images: objects a salient-first caption never names, in items no salient "
    "object can give away. Findings 1-6 compare runs at their shared budget, where they are still rising "
    "(only finding 7 has a curve): such a verdict ranks what each variant learned in that budget; "
    "docs/findings.md gives findings 1 and 4 at their level-off. {seed_note}{swap_and_replace}</div>")


def _heatmap_img(table: dict, bar: float, ident: str, alt: str) -> str:
    return f'<img id="{ident}" class="heatmap" src="{png_uri(heatmap_png(table, bar))}" alt="{html.escape(alt)}">'


def _summary(params: Params, result: dict) -> list[str]:
    """The top of the page: the verdict table, its caveats, and the picture of seeing and binding for
    every compared variant, which links to each finding's own."""
    sights = [f["sight"] for f in result["findings"] if f.get("sight")]
    parts = ["<h1>bindlab: the findings</h1>", html_table(rows(result)),
             html_caveats(result, "#seeing" if sights else None), f"<p class=\"small\">{markdown_to_html_intro(result)}</p>"]
    if sights:
        links = " ".join(f'<a href="#sight-{f["number"]}">{f["number"]}</a>' for f in result["findings"] if f.get("sight"))
        parts += ['<h2 id="seeing">Seeing and binding per type, every compared variant</h2>',
                  _heatmap_img(merged(sights), params.study.sees, "sight-all", "seeing and binding per type"),
                  f'<p class="small">Each finding\'s own variants: {links}.</p>']
    return parts


def _level_off_detail(result: dict, number: int) -> str:
    """A finding's verdicts at the level-off, with their full reasons (the converged profile's report)."""
    conv = result.get("converged")
    found = [r for r in (conv or {}).get("findings", []) if r["number"] == number]
    return "".join(f'<p class="{r["verdict"].split()[0]}"><b>At the level-off ({html.escape(r["format"])}): '
                   f'{r["verdict"]}</b>, {_effect_cell(r)}: {html.escape(r["why"])}</p>' for r in found)


def _section(params: Params, result: dict, f: dict, spec: Finding) -> list[str]:
    """A finding's section: the claim, the verdicts with their full reasons, the plots, the heat map, the
    numbers with their intervals, each variant linked to its audit page and each run to its eval.json."""
    numbers = result["_numbers"]
    lines = [[dict(p) for p in line] for line in f["lines"]]
    resolve = f"<br>To resolve: {html.escape(f['resolve'])}." if f.get("resolve") else ""
    parts = [f'<h2 id="finding-{f["number"]}">{f["number"]}. {html.escape(f["title"])}</h2>'
             f"<p><b>The paper's claim:</b> <i>{html.escape(f['claim'])}</i></p>"
             f"<p class=\"small\">metric <code>{html.escape(f['metric'])}</code>, chance {f['chance']:.3f}</p>"
             f"<p class=\"{f['verdict'].split()[0]}\"><b>At the shared budget: {f['verdict']}</b>: "
             f"{html.escape(f['why'])}{resolve}</p>", _level_off_detail(result, f["number"])]
    if f.get("sight_note"):
        parts.append(f"<p class=\"small\">Perception: {html.escape(f['sight_note'])}.</p>")
    if f.get("own_format_probe"):
        parts.append(f"<p class=\"small\">{html.escape(_own_format_text(f['own_format_probe']))}. The benchmark's "
                     "captions are full descriptions, outside the format of the low densities' training captions; "
                     "the probe names as many attributes per object as their own captions.</p>")
    parts.append(f'<img src="{_plot(params, spec, lines, f)}" alt="{html.escape(f["title"])}">')
    if spec.kind == "ideal" and (uri := _sight_curve_plot(params, f.get("curves") or [])):
        parts.append(f'<img src="{uri}" alt="perception and binding per type against training">')
    if f.get("sight"):
        parts += [_heatmap_img(f["sight"], params.study.sees, f"sight-{f['number']}",
                               f"seeing and binding per type, finding {f['number']}"),
                  _sight_rows(f["sight"], params.study.sees)]
    if spec.kind == "ideal":
        parts.append(_variant_rows(sorted(numbers.tables), numbers))
        parts += [_curve_rows(c) for c in f.get("curves") or []]
    for line in lines:
        parts.append(_variant_rows([p["variant"] for p in line], numbers, {p["variant"]: p["x"] for p in line}))
    return parts


def html_page(params: Params, result: dict) -> str:
    parts = [*_summary(params, result),
             HOW_TO_READ.format(resamples=intervals.RESAMPLES, m=params.study.min_effect,
                                seed_note=html.escape(one_seed_note(result) + " ").replace("`", "").lstrip(),
                                swap_and_replace=html.escape(SWAP_AND_REPLACE).replace("`", "")),
             '<p class="small">Variant names link to their data audit pages, seeds to their eval.json; '
             '<a href="../audit/index.html">audit overview</a>.</p>']
    if "converged" in result:
        conv = result["converged"]
        parts.append(f"<p>{html.escape(_converged_intro(conv)).replace('`', '')}</p>")
        if conv is not None:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in CONVERGED_COLUMNS)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _converged_cells(f)) + "</tr>"
                           for f in conv["findings"])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    for f, spec in zip(result["findings"], FINDINGS):
        parts += _section(params, result, f, spec)
    if result["missing_runs"]:
        parts.append(f"<p class=\"small\">Missing runs: {html.escape(', '.join(result['missing_runs']))}</p>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>bindlab findings</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def markdown_to_html_intro(result: dict) -> str:
    return html.escape(markdown(result).splitlines()[0]).replace("`", "")
