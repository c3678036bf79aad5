"""Audit pages a person reads in a browser: declared vs measured, histograms, sample images.

`bindlab audit --variant V` writes `data/audit/V/index.html`; `bindlab audit --overview` writes
`data/audit/index.html` across all variants. Each page is one self-contained file (plots and images
embedded as PNG data URIs, no scripts, no network), so it opens from disk anywhere. The only links
out are to the GX Data Docs in the validation's run record `data/runs/validation/`, by relative path
(present where validation ran; outputs restored from a DVC cache come without them).
"""
from __future__ import annotations

import html
import io
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
from PIL import Image

from bindlab.captions import expected_completeness
from bindlab.contracts import captions_of, images_of, results_of, stats_of, summary_of
from bindlab.figures import figure_png, png_uri
from bindlab.io import atomic_path, together, write_json
from bindlab.params import Params, Variant
from bindlab.paths import DataPaths
from bindlab.scenes import rng_for

matplotlib.use("Agg")  # every audit page draws its plots: files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

SAMPLES = 12
HISTOGRAMS = ("attributes per mentioned object", "objects mentioned per caption",
              "saliency rank of mentioned objects (0 = most salient)", "caption length (words)")

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 28px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
.missing { color: #888; font-weight: bold; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.card { width: 200px; font-size: 13px; } .card img { width: 192px; height: 192px; image-rendering: pixelated; }
.neg { color: #c62828; } .small { color: #666; font-size: 13px; }
"""


# --- small helpers ----------------------------------------------------------------------------------

def _image_uri(image: np.ndarray, scale: int = 3) -> str:
    img = Image.fromarray(np.ascontiguousarray(image))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return png_uri(buf.getvalue())


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return html.escape(str(x))


def _dist(d: dict) -> str:
    return ", ".join(f"{k}: {v:.2f}" for k, v in d.items()) if d else "-"


def _verdict(results: dict | None) -> str:
    if results is None:
        return '<span class="missing">not validated</span>'
    if results["success"]:
        return f'<span class="pass">PASS</span> ({results["evaluated"]} expectations)'
    return f'<span class="fail">FAIL</span> ({results["failed"]} of {results["evaluated"]} expectations)'


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _results(paths: DataPaths, variant: str) -> dict | None:
    return results_of(paths.validation(variant), f"bindlab validate --variant {variant}")


def declared(params: Params, v: Variant) -> dict[str, str]:
    """The variant's knobs as a person reads them."""
    objects = params.scene_sets[v.scenes].objects
    return {
        "objects per image": f"{v.scenes}: " + ", ".join(f"{k}: {p:.2f}" for k, p in sorted(objects.items())),
        "objects mentioned": (f"exactly {v.objects_mentioned} (min with the image's count)"
                              if v.objects_mentioned is not None else f"completeness {v.completeness:g}"),
        "density": f"{v.density:g} attribute{'' if v.density == 1 else 's'} per mentioned object",
        "saliency bias": f"{v.saliency_bias:g}",
        "order": v.order,
        "hard negatives": f"{v.hard_negatives} per caption",
        "minimal pairs in training batches": ("not declared" if v.minimal_pairs is None else
                                              f"at least {v.minimal_pairs:g} of the images, per attribute type "
                                              f"and the shape"),
    }


# which validation checks belong to which declared property (their `why` starts with this)
PROPERTY_CHECKS = {
    "objects mentioned": ("declared completeness", "declared objects_mentioned"),
    "density": ("declared density",),
    "saliency bias": ("declared saliency bias",),
    "order": ("declared order",),
    "hard negatives": ("declared hard_negatives",),
    "minimal pairs in training batches": ("declared minimal_pairs",),
}


def measured(summary: dict) -> dict[str, str]:
    m, d = summary["means"], summary["distributions"]
    return {
        "objects per image": f"mean {_fmt(m['objects_in_image'])}; {_dist(d['objects_in_image'])}",
        "objects mentioned": f"mean {_fmt(m['objects_mentioned'])}, completeness {_fmt(m['completeness'])}",
        "density": f"mean {_fmt(m['attrs_per_mentioned_object'])}; {_dist(d['attrs_per_mentioned_object'])}",
        "saliency bias": f"most salient mentioned {_fmt(m['top_mentioned'])}; the m most salient "
                         f"{_fmt(m['salient_prefix'])}",
        "order": f"in saliency order {_fmt(m['in_saliency_order'])}, left to right "
                 f"{_fmt(m['in_left_to_right_order'])}",
        "hard negatives": f"mean {_fmt(m['hard_negatives'])} per caption",
        "minimal pairs in training batches": batches_measured(summary["batches"]),
    }


def batches_measured(b: dict) -> str:
    """What the training batches ask of the model, as a person reads it."""
    pairs = ", ".join(f"{html.escape(t)} {_fmt(x)}" for t, x in b["minimal_pair"].items())
    return (f"share of images with a batch-mate differing in that type alone: {pairs}; colour and shape alone "
            f"single out {_fmt(b['singled_out_by_color_shape'])} <span class=\"small\">({b['batches']} batches of "
            f"{b['batch_size']}, seed {b['seed']})</span>")


def _check_cell(rows: list[dict]) -> str:
    if not rows:
        return "-"
    parts = []
    for r in rows:
        cls = "pass" if r["success"] else "fail"
        parts.append(f'<span class="{cls}">{"pass" if r["success"] else "FAIL"}</span> '
                     f'{html.escape(r["column"])} {html.escape(r["expected"])}: observed {html.escape(r["observed"])}')
    return "<br>".join(parts)


# --- plots ------------------------------------------------------------------------------------------

def histograms(cstats: pl.DataFrame, mentions: pl.DataFrame, title: str) -> bytes:
    panels = zip(HISTOGRAMS, [mentions["n_attrs"].drop_nulls().to_numpy(),
                              cstats["n_mentioned"].drop_nulls().to_numpy(),
                              mentions["saliency_rank"].drop_nulls().to_numpy(),
                              cstats["n_words"].drop_nulls().to_numpy()])
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, (name, values) in zip(axes, panels):
        if len(values):
            lo, hi = int(values.min()), int(values.max())
            ax.hist(values, bins=np.arange(lo - 0.5, hi + 1.5, 1.0), weights=np.full(len(values), 1 / len(values)),
                    color="#4a78b5", edgecolor="white")
            ax.set_xticks(range(lo, hi + 1, max(1, (hi - lo) // 8 + 1)))
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("fraction")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return figure_png(fig, dpi=80)


def overview_plot(rows: list[dict]) -> bytes:
    """Grouped bars per variant: declared (hatched) vs measured density, completeness, P(most salient)."""
    names = [r["variant"] for r in rows]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8), sharex=True)
    for ax, (key, label) in zip(axes, [("density", "attributes per mentioned object"),
                                       ("completeness", "completeness (fraction mentioned)"),
                                       ("top", "P(most salient object mentioned)")]):
        ax.bar(x - 0.2, [r[f"{key}_declared"] or 0 for r in rows], 0.4, label="declared / expected",
               color="white", edgecolor="#4a78b5", hatch="//")
        ax.bar(x + 0.2, [r[f"{key}_measured"] or 0 for r in rows], 0.4, label="measured", color="#4a78b5")
        ax.set_title(label, fontsize=10)
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return figure_png(fig, dpi=80)


# --- pages ------------------------------------------------------------------------------------------

def _samples(params: Params, variant: str, captions: pl.DataFrame, images: np.ndarray) -> str:
    rng = rng_for(params, f"audit/{variant}")
    rows = sorted(rng.choice(len(captions), size=min(SAMPLES, len(captions)), replace=False).tolist())
    cards = []
    for i in rows:
        row = captions.row(i, named=True)
        sid = row["scene_id"]
        if not 0 <= sid < len(images):
            cards.append(f'<div class="card">scene {sid}: <span class="fail">no image</span></div>')
            continue
        negs = "".join(f'<div class="neg">&#10007; {html.escape(n)} <span class="small">({html.escape(s)} swap)'
                       f"</span></div>" for n, s in zip(row["hard_negatives"] or [], row["hard_negative_swaps"] or []))
        cards.append(f'<div class="card"><img src="{_image_uri(images[sid])}" alt="scene {sid}">'
                     f'<div>&#10003; {html.escape(row["caption"])}</div>{negs}'
                     f'<div class="small">scene {sid}</div></div>')
    return '<div class="grid">' + "".join(cards) + "</div>"


def audit_variant(params: Params, paths: DataPaths, variant: str) -> Path:
    v = params.variant(variant)
    # every input is read (and checked) before any work, so a damaged one stops the page before it is made
    cstats, mentions, summary = stats_of(params, paths, variant)
    results = _results(paths, variant)
    captions, images = captions_of(params, paths, variant), images_of(params, paths, v.scenes)
    checks = results["expectations"] if results else []

    decl, meas = declared(params, v), measured(summary)
    prop_rows = []
    for prop in decl:
        mine = [r for r in checks if r["why"].startswith(PROPERTY_CHECKS.get(prop, ("\0",)))]
        prop_rows.append(f"<tr><th>{prop}</th><td>{html.escape(decl[prop])}</td><td>{meas[prop]}</td>"
                         f"<td>{_check_cell(mine)}</td></tr>")
    generic = [r for r in checks if not r["why"].startswith("declared")]
    failed = [r for r in generic if not r["success"]]
    gen_rows = "".join(
        f'<tr><td class="{"pass" if r["success"] else "fail"}">{"pass" if r["success"] else "FAIL"}</td>'
        f'<td>{html.escape(r["table"])}.{html.escape(r["column"])}</td><td>{html.escape(r["expectation"])}</td>'
        f'<td>{html.escape(r["expected"])}</td><td>{html.escape(r["observed"])}</td><td>{html.escape(r["why"])}</td></tr>'
        for r in failed + [r for r in generic if r["success"]])
    # the Data Docs are in the validation's run record; their page paths come from results.json, so the
    # page is the same whether or not this clone holds the docs (outputs restored from a DVC cache).
    docs = Path("..") / ".." / paths.record(paths.validation(variant)).relative_to(paths.root) / "docs"
    # GX's index page fills its lists with scripts from a CDN (empty offline); its per-table result pages are
    # static HTML, so link those directly too.
    table_links = "".join(
        f' (<a href="{(docs / page).as_posix()}">{html.escape(table)}</a>)'
        for table, page in sorted(((results or {}).get("docs") or {}).items()))
    docs = docs / "index.html"
    out = paths.audit(variant) / "index.html"
    body = f"""
<h1>Variant <code>{html.escape(variant)}</code></h1>
<p>Validation: {_verdict(results)} &middot; <a href="{docs.as_posix()}">Great Expectations Data Docs</a>{table_links}
&middot; <a href="../index.html">all variants</a></p>
<p class="small">{summary['captions']} captions of scene set <code>{html.escape(v.scenes)}</code>,
{summary['mentions']} mentioned objects; statistics from the recorded mentions, not from the text.</p>
<h2>Declared vs measured</h2>
<table><tr><th>property</th><th>declared</th><th>measured</th><th>validation (expected range: observed)</th></tr>
{''.join(prop_rows)}</table>
<h2>Distributions</h2>
<img src="{png_uri(histograms(cstats, mentions, f'variant {variant}'))}" alt="histograms: {'; '.join(HISTOGRAMS)}" style="width:100%">
<h2>Sample images and captions</h2>
<p class="small">&#10003; the caption; &#10007; its hard negatives (attribute values swapped between objects),
where the variant has them.</p>
{_samples(params, variant, captions, images)}
<h2>Data quality checks</h2>
<p>{len(generic) - len(failed)} of {len(generic)} passed.</p>
<details{' open' if failed else ''}><summary>all checks</summary>
<table><tr><th></th><th>column</th><th>expectation</th><th>expected</th><th>observed</th><th>why</th></tr>
{gen_rows}</table></details>
"""
    with together():
        _write(out, _page(f"bindlab audit: {variant}", body))
        write_json(paths.audit(variant) / "properties.json", property_metrics(params, v, summary))
    print(f"audit of {variant!r}: {'not validated' if results is None else 'PASS' if results['success'] else 'FAIL'}"
          f" -> {out}")
    return out


def _expected_top(v: Variant, summary: dict) -> float | None:
    """P(most salient mentioned) implied by the declaration, given the measured mean of m/n."""
    c = summary["means"]["completeness"]
    return None if c is None else v.saliency_bias + (1 - v.saliency_bias) * c


def property_metrics(params: Params, v: Variant, summary: dict) -> dict:
    """Declared (or implied by the declaration) vs measured, per caption property: the numbers of the
    overview's bar chart, and the variant's DVC metrics (`data/audit/V/properties.json`)."""
    m = summary["means"]
    return {"density": {"declared": v.density, "measured": m["attrs_per_mentioned_object"]},
            "completeness": {"declared": expected_completeness(params, v), "measured": m["completeness"]},
            "top_mentioned": {"declared": _expected_top(v, summary), "measured": m["top_mentioned"]},
            "hard_negatives": {"declared": v.hard_negatives, "measured": m["hard_negatives"]},
            "minimal_pair": {t: {"declared": v.minimal_pairs, "measured": x}
                             for t, x in summary["batches"]["minimal_pair"].items()},
            "singled_out_by_color_shape": {"declared": None,
                                           "measured": summary["batches"]["singled_out_by_color_shape"]}}


def _fewest_pairs(summary: dict | None) -> str:
    if not summary:
        return "-"
    t, x = min(summary["batches"]["minimal_pair"].items(), key=lambda kv: (kv[1], kv[0]))
    return f"{html.escape(t)} {_fmt(x)}"


def audit_overview(params: Params, paths: DataPaths) -> Path:
    """One page across all variants (and the scene sets and the benchmark): declared vs measured, pass/fail."""
    rows, plot_rows = [], []
    for name in params.variants:
        v = params.variant(name)
        summary = summary_of(params, paths, name)  # None: no statistics yet, the row says so
        results = _results(paths, name)
        m = summary["means"] if summary else {}
        page = Path(name) / "index.html"
        # a variant with statistics gets its page (`bindlab audit --variant` makes it; a DVC run makes both)
        link = f'<a href="{page.as_posix()}">{html.escape(name)}</a>' if summary else html.escape(name)
        mentioned = (f"exactly {v.objects_mentioned}" if v.objects_mentioned is not None
                     else f"completeness {v.completeness:g}") + f" (expected {expected_completeness(params, v):.3f})"
        measured_mentioned = (f"{_fmt(m.get('completeness'))} ({_fmt(m.get('objects_mentioned'), 2)} of "
                              f"{_fmt(m.get('objects_in_image'), 2)})" if summary else "-")
        docs = paths.record(paths.validation(name)).relative_to(paths.root) / "docs" / "index.html"
        docs_link = f'<a href="../{html.escape(docs.as_posix())}">docs</a>' if results else "-"
        rows.append(
            f"<tr><td>{link}</td><td>{html.escape(v.scenes)}</td>"
            f"<td>{v.density:g}</td><td>{_fmt(m.get('attrs_per_mentioned_object'))}</td>"
            f"<td>{mentioned}</td><td>{measured_mentioned}</td>"
            f"<td>{v.saliency_bias:g}</td><td>{_fmt(_expected_top(v, summary) if summary else None)}</td>"
            f"<td>{_fmt(m.get('top_mentioned'))}</td>"
            f"<td>{v.order}</td><td>{v.hard_negatives}</td><td>{_fmt(m.get('hard_negatives'), 2)}</td>"
            f"<td>{_fewest_pairs(summary)}</td><td>{_fmt(summary['batches']['singled_out_by_color_shape']) if summary else '-'}</td>"
            f"<td>{_verdict(results)}</td>"
            f"<td>{docs_link}</td></tr>")
        if summary:
            props = property_metrics(params, v, summary)
            plot_rows.append({"variant": name} | {f"{k}_{side}": props[key][side]
                                                  for k, key in (("density", "density"), ("completeness", "completeness"),
                                                                 ("top", "top_mentioned"))
                                                  for side in ("declared", "measured")})
    others = []
    for label, folder, cmd in [*((f"scene set {s}", paths.validation("scenes") / s, f"--scenes {s}")
                                 for s in params.scene_sets),
                               ("benchmark", paths.validation("benchmark"), "--benchmark")]:
        res = results_of(folder, f"bindlab validate {cmd}")
        docs = paths.record(folder).relative_to(paths.root) / "docs" / "index.html"
        link = f'<a href="../{docs.as_posix()}">docs</a>' if res else "-"
        others.append(f"<tr><td>{label}</td><td>{_verdict(res)}</td><td>{link}</td></tr>")
    plot = (f'<img src="{png_uri(overview_plot(plot_rows))}" alt="declared vs measured" style="width:100%">'
            if plot_rows else "<p>No variant has statistics yet: run <code>bindlab stats</code>.</p>")
    body = f"""
<h1>bindlab: caption data audit across variants</h1>
<p class="small">Declared: the variant's knobs in params.yaml. Measured: statistics of its captions computed from
the recorded mentions (bindlab stats). Expected P(most salient mentioned) = b + (1 - b) &times; measured completeness
(the mean of b + (1 - b) m/n over captions). Pass/fail: the variant's Great Expectations suite
(bindlab validate), built from the same declaration. Training batches: on the batches the sampler draws
(bindlab stats), the type with the fewest images that have a batch-mate differing in that type alone (the
only images whose loss needs the type), and the share that colour and shape alone single out.</p>
<table><tr><th rowspan="2">variant</th><th rowspan="2">scenes</th><th colspan="2">attributes per object</th>
<th colspan="2">objects mentioned</th><th colspan="3">saliency</th><th rowspan="2">order</th>
<th colspan="2">hard negatives</th><th colspan="2">training batches</th><th rowspan="2">validation</th>
<th rowspan="2">Data Docs</th></tr>
<tr><th>declared</th><th>measured</th><th>declared</th><th>measured</th><th>bias</th><th>expected</th>
<th>measured</th><th>declared</th><th>measured</th><th>fewest minimal pairs</th><th>colour + shape single out</th></tr>
{''.join(rows)}</table>
{plot}
<h2>Scene sets and benchmark</h2>
<table><tr><th>data</th><th>validation</th><th>Data Docs</th></tr>{''.join(others)}</table>
"""
    out = paths.root / "audit" / "index.html"
    _write(out, _page("bindlab audit: all variants", body))
    print(f"audit overview of {len(params.variants)} variants -> {out}")
    return out
