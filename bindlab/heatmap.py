"""Seeing and binding per type as one picture: rows are variants, columns the attribute types and shape;
a cell's colour is its replace i2t pairwise (seeing: the words change, no binding needed) and its number
the swap i2t pairwise (binding); cells below study.sees are hatched, and the bar is marked on the colour
scale. Drawn from a finding's `sight` table (findings.sight), so it shows what the tables' "not seen"
lists said, at a glance.
"""
from __future__ import annotations

import numpy as np

from bindlab.figures import figure_png

CHANCE = 0.5   # pairwise chance: the bottom of the colour scale


def merged(tables: list[dict]) -> dict:
    """Every variant's rows of several findings' sight tables, in order of first appearance (a variant's
    rows are the same in every finding that compares it)."""
    out: dict = {}
    for table in tables:
        for variant, rows in table.items():
            out.setdefault(variant, rows)
    return out


def _grid(table: dict, types: list[str], key: str) -> np.ndarray:
    return np.array([[rows[t][key][0] if t in rows else np.nan for t in types] for rows in table.values()])


def heatmap_png(table: dict, bar: float, title: str = "", dpi: int = 90) -> bytes:
    """The picture of a sight table (variant -> type -> {replace, swap, gap}) as PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    types = sorted({t for rows in table.values() for t in rows})
    seeing, binding = _grid(table, types, "replace"), _grid(table, types, "swap")
    fig, ax = plt.subplots(figsize=(2.4 + 0.8 * len(types), 1.3 + 0.32 * len(table)))
    image = ax.imshow(np.ma.masked_invalid(seeing), cmap="RdYlGn", vmin=CHANCE, vmax=1.0, aspect="auto")
    for i, j in zip(*np.nonzero(~np.isnan(seeing))):
        if seeing[i, j] < bar:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0,
                                   edgecolor=(0, 0, 0, 0.3)))
        ax.text(j, i, f"{binding[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(types)), types, fontsize=8)
    ax.set_yticks(range(len(table)), list(table), fontsize=8)
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
    scale = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    scale.ax.axhline(bar, color="k", lw=2)
    scale.ax.text(1.6, bar, f"sees\n{bar:g}", va="center", fontsize=7, transform=scale.ax.get_yaxis_transform())
    scale.set_label("replace i2t pairwise (seeing)", fontsize=8)
    ax.set_title((title + "\n" if title else "") + f"colour: seeing (replace); number: binding (swap); "
                 f"hatched: not seen (< study.sees {bar:g})", fontsize=8)
    fig.tight_layout()
    return figure_png(fig, dpi=dpi)
