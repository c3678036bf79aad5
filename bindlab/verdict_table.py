"""The verdict table that opens the README's results, summary.md and index.html: one row per finding with
its claim in a few words, the verdict at the shared budget and at the level-off side by side, the effect
where it is judged and a short reason; and at most three one-line caveats under it. Presentation only:
every value comes from the result of report.build (the level-off's from results/converged/), and the full
reasons stay in the finding's section of the page and in details.json.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bindlab.findings import FINDINGS

# the claims in at most ten words, so that the table fits one screen (the full claims are in the sections)
CLAIMS = {1: "Too few or too many attributes hurt binding",
          2: "Objects per image change how well binding is learned",
          3: "Captions naming only some objects hurt binding",
          4: "Captions biased to the salient object hurt binding",
          5: "Larger batches do not make binding reliable",
          6: "Hard negatives do not make binding reliable",
          7: "Ideal data gives almost perfect binding"}
COLUMNS = ("finding", "shared budget", "level-off", "judged effect [95% CI]", "why (where judged)")
MAX_WORDS = 25
NONE = "—"
KIND = {f.number: f.kind for f in FINDINGS}
LEVEL_OFF_FINDINGS = (1, 4, 7)   # those the converged profile judges (report.AT_LEVEL_OFF)
# the clause of a reason that says which condition decided an inconclusive or negative verdict
DECISIVE = ("not clearly", "reaches", "improves binding beyond", "no run", "no comparison", "no two",
            "the interval contains", "straddles", "clearly learned", "not the best")


@dataclass(frozen=True)
class Row:
    number: int
    claim: str
    shared: str
    level_off: str | None      # None: this finding is not judged at the level-off (or it was not run)
    effect: str
    reason: str


def _capped(text: str) -> str:
    words = text.split()
    return text if len(words) <= MAX_WORDS else " ".join(words[:MAX_WORDS]) + " …"


def _plain(clause: str) -> str:
    """A clause without its parenthesised detail (intervals, thresholds), which the sections keep."""
    return re.sub(r"\s*\([^()]*\)", "", clause).strip()


def _decisive(why: str) -> str:
    """The clause of a full reason that names the condition that decided the verdict (its last one when
    none does)."""
    parts = [[c.strip() for c in part.split("; ")] for part in why.split(" | ")]
    for clauses in parts:
        for c in clauses:
            if any(k in c for k in DECISIVE):
                return _plain(c)
    return _plain(parts[0][-1])


def _rule(f: dict, m: float) -> str:
    if f["verdict"] == "reproduced":
        return f"difference clearly above {m}"
    if f["verdict"] == "not reproduced" and f.get("effect") is not None and f["effect"] < 0:
        return "the opposite: the difference is below zero"
    if f["verdict"] == "not reproduced":
        return f"difference clearly below {m}"
    return _decisive(f["why"])


def _compared(f: dict) -> str:
    """The two ends of the comparison a verdict of findings 2-4 is read from, with their levels."""
    line, kind = f["lines"][0], KIND[f["number"]]
    if kind == "hurts_high":
        a, b = line[0], line[-1]
        return f"least salient pairs: bias {a['x']:g} {a['mean']:.2f} vs bias {b['x']:g} {b['mean']:.2f}"
    best = max(line, key=lambda p: p["mean"])
    low = line[0] if kind == "hurts_low" else min(line, key=lambda p: p["mean"])
    return f"{low['variant']} {low['mean']:.2f} to {best['variant']} {best['mean']:.2f}"


def _peak(f: dict) -> str:
    h, p = f["halves"], f["peak"]
    return (f"peak at {p['variant']} ({p['x']:g} attributes): too few {h['too_few']['verdict']} "
            f"({h['too_few']['effect']:+.3f}), too many {h['too_many']['verdict']} ({h['too_many']['effect']:+.3f})")


IDEAL_CASES = (("levelled off", "below 'almost perfect' and levelled off"),
               ("not the best", "another variant binds better: ideal data is not the best"),
               ("at the shared budget", "below 'almost perfect' at the shared budget, still rising"),
               ("at this model", "below 'almost perfect' at this model and training size"),
               ("the interval contains", "its interval contains 'almost perfect'"),
               ("no run of the ideal", "no run of the ideal variant"))


def _ideal(f: dict) -> str:
    name = (f.get("ideal_reference") or {}).get("variant", "the ideal run")
    if f["verdict"] == "reproduced":
        case = "at or above 'almost perfect'"
    else:
        case = next((text for key, text in IDEAL_CASES if key in f["why"]), _decisive(f["why"]))
    return case if f["effect"] is None else f"{name} {f['effect']:.3f}: {case}"


def _no_fix(f: dict, m: float) -> str:
    if f["verdict"] == "reproduced":
        return f"no setting gains {m} on degraded data, and ideal data stays clearly better"
    return _decisive(f["why"])


def reason(f: dict, m: float) -> str:
    """At most about MAX_WORDS words on why the finding got its verdict, from its structured fields where
    it has them (a level-off row read from results/converged without them: its deciding clause)."""
    kind = KIND.get(f["number"])
    if kind == "peak" and f.get("halves") and f.get("peak"):
        text = _peak(f)
    elif kind in ("changes", "hurts_low", "hurts_high") and f.get("lines"):
        text = f"{_compared(f)}; {_rule(f, m)}"
    elif kind == "no_fix":
        text = _no_fix(f, m)
    elif kind == "ideal":
        text = _ideal(f)
    else:
        text = _rule(f, m)
    return _capped(text)


def effect_text(f: dict) -> str:
    if f.get("effect") is None:
        return NONE
    sign = "" if KIND.get(f["number"]) == "ideal" else "+"   # finding 7's effect is a level, not a difference
    return f"{f['effect']:{sign}.3f} [{f['ci'][0]:{sign}.3f}, {f['ci'][1]:{sign}.3f}]"


def _level_off_verdict(number: int, conv: dict | None) -> str | None:
    """The converged profile's verdict on the full descriptions, the own-format one beside it when it
    differs; 'not run' when the profile has not been run."""
    if conv is None:
        return "not run"
    rows = {r["format"]: r for r in conv["findings"] if r["number"] == number}
    if "full" not in rows:
        return None
    text = rows["full"]["verdict"]
    own = rows.get("own format")
    return text + (f" (own format: {own['verdict']})" if own and own["verdict"] != text else "")


def rows(result: dict) -> list[Row]:
    """One row per finding. Where the converged profile judges a finding, the effect and reason are its
    (from result['_level_off']: the full findings of its report; its summary row otherwise)."""
    m, conv, in_full = result["min_effect"], result.get("converged"), result.get("_level_off") or {}
    out = []
    for f in result["findings"]:
        n = f["number"]
        at = _level_off_verdict(n, conv) if "converged" in result and _judged_at_level_off(n, conv) else None
        judged = in_full.get(n) or _summary_row(conv, n) or f
        out.append(Row(n, CLAIMS.get(n, f["title"]), f["verdict"], at, effect_text(judged), reason(judged, m)))
    return out


def _judged_at_level_off(number: int, conv: dict | None) -> bool:
    if conv is None:
        return number in LEVEL_OFF_FINDINGS
    return any(r["number"] == number for r in conv["findings"])


def _summary_row(conv: dict | None, number: int) -> dict | None:
    """The converged profile's summary row of a finding (full descriptions), shaped as a finding."""
    rows_of = [r for r in (conv or {}).get("findings", []) if r["number"] == number and r["format"] == "full"]
    return dict(rows_of[0], number=number) if rows_of else None


# --- markdown ------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    """A table cell's text: a pipe would end the cell early, so it is escaped."""
    return text.replace("|", "\\|")


def markdown_table(table: list[Row]) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in table:
        cells = (f"{r.number}. {r.claim}", f"**{r.shared}**", f"**{r.level_off}**" if r.level_off else NONE,
                 r.effect, r.reason)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def one_seed_note(result: dict) -> str:
    """What a one-seed interval holds: the image bootstrap alone, or also the measured seed spread."""
    if len(result["seeds"]) != 1:
        return ""
    if result.get("bootstrap", {}).get("seed_sd"):
        return (f"One seed per variant: each interval is widened by the seed-to-seed spread measured on this "
                f"data (`study.seed_sd` {result['bootstrap']['seed_sd']}); three seeds measure it instead "
                f"(`docs/findings.md`).")
    return ("One seed per variant: the intervals leave out the seed-to-seed spread, larger than the "
            "image interval for findings 4-6 (`docs/findings.md`).")


def caveats(result: dict, heatmap: str | None) -> list[str]:
    """At most three one-line caveats: one seed, where the level-off judges, where the detail is (their
    markdown text; `markdown_caveats` makes them list items, so each stays a line of its own)."""
    out = [note] if (note := one_seed_note(result)) else []
    if "converged" in result:
        conv = result["converged"]
        if conv is None:
            out.append("Level-off: the `converged` profile, which judges findings 1, 4 and 7 there, has not been "
                       "run; their verdicts are the shared budget's.")
        else:
            rest = f", planned runs not yet done: {len(conv['unfinished'])}" if conv.get("unfinished") else ""
            out.append(f"Findings 1, 4 and 7 are judged at their level-off (profile `converged`, {conv['steps']} "
                       f"steps, {len(conv['runs'])} runs{rest}; `results/converged/`): effect and why are its.")
    seen = (f"Which variants see and bind which types (the \"not seen\" detail): the [heat map]({heatmap}); "
            if heatmap else "")
    out.append(f"{seen}every number, curve and full reason: `data/report/index.html`, `details.json`.")
    return out


def markdown_caveats(result: dict, heatmap: str | None) -> list[str]:
    return [f"- {c}" for c in caveats(result, heatmap)]


# --- html ----------------------------------------------------------------------------------------

def _inline_html(text: str) -> str:
    """One line of the markdown above as HTML: code spans and links."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
    return re.sub(r"\[([^\]]*)\]\(([^)]*)\)", r'<a href="\2">\1</a>', text)


def html_table(table: list[Row]) -> str:
    def verdict(v: str | None) -> str:
        return f'<td class="{v.split()[0]}"><b>{html.escape(v)}</b></td>' if v else f"<td>{NONE}</td>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(f'<tr><td><a href="#finding-{r.number}">{r.number}. {html.escape(r.claim)}</a></td>'
                   f"{verdict(r.shared)}{verdict(r.level_off)}<td>{html.escape(r.effect)}</td>"
                   f"<td>{html.escape(r.reason)}</td></tr>" for r in table)
    return f'<table id="verdicts" class="verdicts"><tr>{head}</tr>{body}</table>'


def html_caveats(result: dict, heatmap: str | None) -> str:
    return '<ul class="small">' + "".join(f"<li>{_inline_html(c)}</li>" for c in caveats(result, heatmap)) + "</ul>"
