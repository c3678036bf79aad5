"""The report as a reader meets it: the README's results block parsed by a real markdown parser (every row
has the header's cells, the block is short, no cell is long), and the HTML page in headless Chromium (the
verdict table on the first screen, the heat maps loaded). The metrics are hand-written (test_report.py),
with replace items for every variant, so the pictures have something to show."""
from __future__ import annotations

import re

import pytest
from browser import browser
from markdown_it import MarkdownIt
from test_report import LEVEL, add_sight, setup
from test_report_converged import converged_folder

MAX_BLOCK_LINES = 30
MAX_CELL_CHARS = 170     # the longest cell: a reason of about 25 words
# per type (replace, swap): colour looks and shape seen, the rest below study.sees (0.95)
SIGHT = {"color": (0.97, 0.90), "shade": (0.80, 0.70), "size": (0.85, 0.75), "texture": (0.66, 0.60),
         "outline": (0.78, 0.70), "aspect": (0.72, 0.64), "shape": (0.96, 0.93)}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A default study's report with replace items in every run and the converged profile beside it;
    -> (the README's results block, the report folder)."""
    from bindlab.report import report_stage
    tmp = tmp_path_factory.mktemp("view")
    folder, _, _ = converged_folder(tmp)
    params, paths, _ = setup(tmp / "study", levels=dict(LEVEL, ideal=0.90))
    for v in LEVEL:
        add_sight(paths, v, SIGHT)
    readme = tmp / "README.md"
    readme.write_text("# x\n<!-- results:start -->\n<!-- results:end -->\n")
    report_stage(params, paths, readme=readme, converged=folder)
    block = readme.read_text().split("<!-- results:start -->\n")[1].split("<!-- results:end -->")[0]
    return block, paths.report, readme


def raw_cells(line: str) -> list[str]:
    """A table row's cells as the source spells them (split on the pipes that are not escaped)."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def parsed_rows(block: str) -> list[list[str]]:
    """The rows (header first) of the block's one table, as a markdown parser reads them: a renderer
    drops any cell beyond the header's, so a stray pipe shows here only as a lost cell."""
    tokens = MarkdownIt("commonmark").enable("table").parse(block)
    assert sum(t.type == "table_open" for t in tokens) == 1
    rows, row = [], None
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type == "inline" and row is not None:
            row.append(t.content.replace("\\|", "|"))
        elif t.type == "tr_close":
            rows.append(row)
            row = None
    return rows


def test_the_readme_block_is_one_short_well_formed_table(report):
    block, _, readme = report
    assert len(block.splitlines()) <= MAX_BLOCK_LINES, block
    rows = parsed_rows(block)
    header, body = rows[0], rows[1:]
    assert header == ["finding", "shared budget", "level-off", "judged effect [95% CI]", "why (where judged)"]
    assert [r[0].split(".")[0] for r in body] == [str(n) for n in range(1, 8)]
    source = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| finding")]
    for line, row in zip(source, body, strict=True):
        assert raw_cells(line) == row and len(row) == len(header), line
    longest = max((c for r in body for c in r), key=len)
    assert len(longest) <= MAX_CELL_CHARS, longest
    # no variant lists or "not seen" lists in the table: they are in the heat map the block links to
    assert "not seen (replace" not in block and "density_0 shade" not in block
    assert "[heat map](docs/results/seeing-binding.png)" in block
    assert (readme.parent / "docs/results/seeing-binding.png").read_bytes()[:4] == b"\x89PNG"
    # the level-off's verdicts beside the shared budget's, "—" where the converged profile does not judge
    by_number = {r[0].split(".")[0]: r for r in body}
    assert by_number["2"][2] == "—" and by_number["7"][2] != "—"
    caveats = [line for line in block.splitlines() if line.startswith("- ")]
    assert 1 <= len(caveats) <= 3


def test_a_pipe_in_a_cell_is_escaped():
    from bindlab.verdict_table import Row, markdown_table
    lines = markdown_table([Row(1, "claim", "reproduced", None, "+0.1 [+0.0, +0.2]", "a | b")])
    assert parsed_rows("\n".join(lines))[1] == ["1. claim", "**reproduced**", "—", "+0.1 [+0.0, +0.2]", "a | b"]


def test_the_report_page_opens_on_the_verdict_table_with_its_heat_maps(report):
    _, folder, _ = report
    driver, why = browser()
    if driver is None:
        pytest.skip(why)
    try:
        driver.set_window_size(1400, 1000)
        driver.get((folder / "index.html").as_uri())
        table = driver.find_element("id", "verdicts")
        assert len(table.find_elements("css selector", "tr")) == 8       # the header and seven findings
        bottom = driver.execute_script("return arguments[0].getBoundingClientRect().bottom", table)
        assert driver.execute_script("return window.scrollY") == 0
        assert bottom <= driver.execute_script("return window.innerHeight"), "the verdict table needs scrolling"
        maps = driver.find_elements("css selector", "img.heatmap")
        assert len(maps) >= 2                       # every compared variant, and each finding's own
        assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", m)
                   for m in maps)
        # each row of the table links to its finding's section
        href = table.find_element("css selector", "a").get_attribute("href")
        assert href.endswith("#finding-1") and driver.find_element("id", "finding-1")
    finally:
        driver.quit()
