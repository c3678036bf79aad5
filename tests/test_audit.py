"""Audit pages: self-contained HTML with declared vs measured, histograms, sample images, Data Docs links."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bindlab.errors import StageError


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.alts, self.hrefs, self.scripts = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a["src"])
            self.alts.append(a.get("alt", ""))
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag in ("script", "link"):
            self.scripts += 1


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text())
    return p


@pytest.fixture(scope="module")
def audited(tiny_data, tmp_path_factory):
    """A copy of the session's tiny study data, two variants audited: `density_2` valid, `one_object`
    given the wrong captions."""
    import shutil

    from tiny import copy_study
    from bindlab.audit import audit_overview, audit_variant
    from bindlab.stats import stats_stage
    from bindlab.validate import validate_scenes, validate_variant
    params, paths, _ = copy_study(tiny_data, tmp_path_factory.mktemp("audit"))
    shutil.copy(paths.captions("ideal"), paths.captions("one_object"))  # complete captions labelled one_object
    validate_scenes(params, paths, "train")
    for v in ("density_2", "one_object"):
        stats_stage(params, paths, v)
        try:
            validate_variant(params, paths, v)
        except StageError:
            assert v == "one_object"
        audit_variant(params, paths, v)
    audit_overview(params, paths)
    return params, paths


def test_variant_page_is_self_contained_and_shows_declared_vs_measured(audited):
    params, paths = audited
    page = paths.audit("density_2") / "index.html"
    text = page.read_text()
    links = _parse(page)
    assert links.scripts == 0 and "http://" not in text and "https://" not in text  # opens offline, no server
    assert all(src.startswith("data:image/png;base64,") for src in links.srcs)
    assert len(links.srcs) == 1 + 12  # histograms + sample grid
    assert "2 attributes per mentioned object" in text and "mean 2.000" in text  # declared, measured
    assert "n_attrs 1.95 .. 2.05: observed 2" in text and "PASS" in text
    for name in ("attributes per mentioned object", "objects mentioned per caption", "saliency rank", "caption length"):
        assert name in links.alts[0]  # the four histograms, named in the plot's alt text
    docs = next(h for h in links.hrefs if h.endswith("docs/index.html"))
    assert (page.parent / docs).resolve().exists()  # the relative link reaches the GX Data Docs
    for href in links.hrefs:
        assert (page.parent / href).exists(), href  # no dead links
    assert sum("/docs/validations/" in h for h in links.hrefs) == 2  # GX result pages of captions and mentions


def test_failed_variant_page_and_overview(audited):
    params, paths = audited
    text = (paths.audit("one_object") / "index.html").read_text()
    assert "FAIL" in text and "exactly 1 (min with the image&#x27;s count)" in text
    overview = paths.root / "audit" / "index.html"
    o = overview.read_text()
    for name in params.variants:
        assert f">{name}<" in o  # every variant has a row, audited or not
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>(?:<a [^>]*>)?(\w+)(?:</a>)?</td>.*?</tr>", o)}
    assert "PASS" in rows["density_2"] and "FAIL" in rows["one_object"] and "not validated" in rows["natural"]
    assert "<td>2</td><td>2.000</td>" in rows["density_2"]  # declared vs measured density
    assert "scene set train</td><td><span class=\"pass\">PASS" in o
    for href in _parse(overview).hrefs:
        assert (overview.parent / href).exists(), href  # no dead links


def test_same_inputs_same_bytes(audited):
    params, paths = audited
    from bindlab.audit import audit_overview, audit_variant
    before = (paths.audit("density_2") / "index.html").read_bytes()
    audit_variant(params, paths, "density_2")
    assert (paths.audit("density_2") / "index.html").read_bytes() == before
    o = (paths.root / "audit" / "index.html").read_bytes()
    audit_overview(params, paths)
    assert (paths.root / "audit" / "index.html").read_bytes() == o


def test_missing_statistics_is_a_clear_error(audited, tmp_path):
    params, _ = audited
    from bindlab.audit import audit_variant
    from bindlab.paths import DataPaths
    with pytest.raises(StageError, match=r"stats/density_2/summary.json is missing; run `bindlab stats --variant"):
        audit_variant(params, DataPaths(tmp_path), "density_2")
    assert not (tmp_path / "audit").exists()


def test_the_training_batches_statistic_is_on_the_pages_and_in_the_metrics(audited):
    import json
    params, paths = audited
    props = json.loads((paths.audit("density_2") / "properties.json").read_text())
    summary = json.loads((paths.stats("density_2") / "summary.json").read_text())["batches"]
    assert set(props["minimal_pair"]) == {*params.vocab.attribute_types, "shape"}
    assert {t: p["measured"] for t, p in props["minimal_pair"].items()} == summary["minimal_pair"]
    assert all(p["declared"] is None for p in props["minimal_pair"].values())   # density_2 declares no target
    assert props["singled_out_by_color_shape"]["measured"] == summary["singled_out_by_color_shape"]
    text = (paths.audit("density_2") / "index.html").read_text()
    row = re.search(r"<tr><th>minimal pairs in training batches</th>.*?</tr>", text, re.S).group(0)
    assert "not declared" in row and f"colour and shape alone single out {summary['singled_out_by_color_shape']:.3f}" in row
    assert f"texture {summary['minimal_pair']['texture']:.3f}" in row
    o = (paths.root / "audit" / "index.html").read_text()
    assert "colour + shape single out" in o and f"<td>{summary['singled_out_by_color_shape']:.3f}</td>" in o
