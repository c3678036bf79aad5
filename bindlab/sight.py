"""Perception beside binding: per variant and type, the replace items (seeing: the bag of words
changes, no binding needed) beside the swap items (binding), and what the report says of them."""
from __future__ import annotations


def sight(numbers: Numbers, names: list[str]) -> dict:
    """variant -> type -> {replace, swap, gap}, each [point, low, high]: i2t pairwise of the replace items
    (perception: the bag of words changes, no binding needed), of the swap items (binding), and their
    difference paired on the same resampled images. Types with both; runs without replace items: none."""
    out: dict = {}
    for v in dict.fromkeys(names):
        types = sorted({c.split(".")[1] for t in numbers.tables[v].values() for c in t.columns
                        if c.startswith("by_replace.") and c.endswith(".i2t_pairwise:num")})
        for t in types:
            keys = (f"by_replace.{t}.i2t_pairwise", f"by_swap.{t}.i2t_pairwise")
            if all(numbers.has(v, k) for k in keys):
                r, s = (numbers.get(v, k) for k in keys)
                out.setdefault(v, {})[t] = {k: [round(x, 4) for x in (e.point, e.lo, e.hi)]
                                            for k, e in (("replace", r), ("swap", s), ("gap", r - s))}
    return out


def sight_note(table: dict, bar: float) -> str:
    """Beside a binding verdict: the compared variants that do not see a type they are judged on (replace
    i2t pairwise below study.sees), where binding measures the model's eye; '' without replace items."""
    blind = {v: ts for v, rows in table.items() if (ts := [t for t, r in rows.items() if r["replace"][0] < bar])}
    if not blind:
        return f"every compared variant sees every type (replace i2t pairwise >= study.sees {bar})" if table else ""
    return (f"not seen (replace i2t pairwise < study.sees {bar}; binding there measures perception): "
            + "; ".join(f"{v} " + ", ".join(f"{t} {table[v][t]['replace'][0]:.3f}" for t in ts) for v, ts in blind.items()))


def sight_reason(rows: dict, bar: float, m: float) -> str:
    """Why the judged ideal run falls short, per type: seeing (replace below study.sees) or binding (seen,
    and the gap replace - swap has its interval above min_effect)."""
    seeing = [f"{t} {r['replace'][0]:.3f}" for t, r in rows.items() if r["replace"][0] < bar]
    binding = [f"{t} {r['gap'][0]:+.3f} [{r['gap'][1]:+.3f}, {r['gap'][2]:+.3f}]" for t, r in rows.items()
               if r["replace"][0] >= bar and r["gap"][1] > m]
    parts = ([f"seeing (replace < {bar}; its causes measured: docs/perception.md): {', '.join(seeing)}"] if seeing else []) + \
            ([f"binding (seen; replace - swap > {m}): {', '.join(binding)}"] if binding else [])
    return "per type, " + ("; ".join(parts) if parts else f"every type is seen and no gap is clearly above {m}")
