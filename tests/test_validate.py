"""Validation with GX on a tiny study made by the real stages: clean data passes; data that does not
have its declared properties fails with a message naming the column, the expected range and the
observed value, and leaves no `passed.json` for training to trust."""
from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from bindlab.cli import main
from bindlab.errors import StageError
from bindlab.io import write_parquet
from bindlab.contracts import require_passed
from bindlab.suites import caption_suite
from bindlab.validate import validate_benchmark, validate_scenes, validate_variant

VARIANTS = ["density_2", "one_object", "completeness_50", "natural", "hardneg"]


@pytest.fixture(scope="module")
def study(tiny_data, tmp_path_factory):
    """A copy of the session's tiny study data: the tests here damage its captions and scenes."""
    from tiny import copy_study
    return copy_study(tiny_data, tmp_path_factory.mktemp("study"))


def _corrupt_density(params, paths, variant: str, fraction: float = 0.1) -> int:
    """Drop every attribute from `fraction` of the captions, text and record alike (a plausible bug
    upstream: a consistent caption that simply lacks its attributes). -> captions changed."""
    from bindlab.wording import caption_text, describe, objects_of
    from bindlab.scenes import load_scenes

    table = pl.read_parquet(paths.captions(variant))
    objs = objects_of(load_scenes(paths.scenes(params.variant(variant).scenes)))
    rows = table.to_dicts()
    hit = np.random.default_rng(0).choice(len(rows), int(len(rows) * fraction), replace=False)
    for i in hit:
        r = rows[i]
        r["attrs"] = [[] for _ in r["objects"]]
        phrases = [describe(objs[r["scene_id"]][o], []) for o in r["objects"]]
        r["caption"] = caption_text(phrases, params.captions.templates[r["template"]])
    write_parquet(pl.DataFrame(rows, schema=table.schema), paths.captions(variant))
    return len(hit)


def test_clean_variants_scenes_and_benchmark_pass(study):
    params, paths, _ = study
    for v in VARIANTS:
        results = validate_variant(params, paths, v)
        assert results["success"] and results["evaluated"] >= 20
        assert require_passed(paths, v).exists()
        record = paths.record(paths.validation(v))  # GX's run-dependent output: outside the DVC output
        assert (record / "docs" / "index.html").exists() and not (paths.validation(v) / "docs").exists()
        assert {t: (record / "docs" / p).exists() for t, p in results["docs"].items()} == {
            "captions": True, "mentions": True}
        gx_raw = json.loads((record / "gx_results.json").read_text())
        assert set(gx_raw) == {"captions", "mentions"} and all(r["success"] for r in gx_raw.values())
    assert validate_scenes(params, paths, "train")["success"]
    assert validate_benchmark(params, paths)["success"]
    assert (paths.validation("benchmark") / "passed.json").exists()


def test_suite_is_built_from_the_declaration(study):
    params, paths, _ = study
    from bindlab.stats import variant_stats
    cstats, mentions = variant_stats(params, paths, "density_2")

    def checks(**knobs):
        v = params.variant("density_2").model_copy(update=knobs)
        suite = caption_suite(params, v, "x", cstats, mentions, n_scenes=300, n_images=300)
        return {(c.table, c.kind, c.kwargs.get("column"), c.kwargs.get("min_value"), c.kwargs.get("max_value"))
                for c in suite.checks}

    base = checks()
    assert ("mentions", "ExpectColumnMeanToBeBetween", "n_attrs", 1.95, 2.05) in base  # density 2 -> 1.95..2.05
    assert ("mentions", "ExpectColumnValuesToBeBetween", "n_attrs", 2, 2) in base
    assert ("captions", "ExpectColumnValuesToBeBetween", "completeness", 1.0, 1.0) in base  # completeness 1
    assert ("captions", "ExpectColumnValuesToBeBetween", "top_mentioned", 1, 1) in checks(saliency_bias=1.0)
    assert ("mentions", "ExpectColumnValuesToBeBetween", "n_attrs", 1, 2) in checks(density=1.5)
    assert ("captions", "ExpectColumnValuesToBeBetween", "in_saliency_order", 1, 1) in checks(order="saliency")
    assert ("captions", "ExpectColumnValuesToBeBetween", "n_hard_negatives", 0, 2) in checks(hard_negatives=2)


def test_dropping_attributes_from_10_percent_of_captions_fails_validation(study, capsys):
    params, paths, params_file = study
    v = "density_2"
    assert validate_variant(params, paths, v)["success"]  # a passed marker from a good run...
    assert _corrupt_density(params, paths, v) == 30
    code = main(["validate", "--variant", v, "--params", str(params_file), "--data", str(paths.root)])
    err = capsys.readouterr().err
    assert code == 2
    assert "validation of variant_density_2 FAILED" in err
    # each failed expectation: its column, the expected range and the observed value
    mean_line = next(line for line in err.splitlines() if "mentions.n_attrs: expect_column_mean" in line)
    observed = float(re.search(r"observed ([0-9.]+)", mean_line).group(1))
    assert "expected 1.95 .. 2.05" in mean_line and 1.75 < observed < 1.85
    assert re.search(r"mentions\.n_attrs: expect_column_values_to_be_between expected 2 \.\. 2, observed \d+ of "
                     r"\d+ rows", err)
    assert "text_matches_record" not in err  # the text is consistent; only the declared density is violated
    # ...is gone: nothing downstream may trust this variant
    assert not (paths.validation(v) / "passed.json").exists()
    with pytest.raises(StageError, match="has not passed validation"):
        require_passed(paths, v)
    results = json.loads((paths.validation(v) / "results.json").read_text())
    assert not results["success"] and results["failed"] == 2


def test_captions_of_another_variant_fail_their_declaration(study):
    """one_object's captions (saliency bias 0) presented as saliency_100's: the bias check catches it."""
    params, paths, _ = study
    import shutil
    paths.captions("saliency_100").parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(paths.captions("one_object"), paths.captions("saliency_100"))
    with pytest.raises(StageError) as e:
        validate_variant(params, paths, "saliency_100")
    assert "captions.top_mentioned: expect_column_values_to_be_between expected 1 .. 1" in str(e.value)
    assert "declared saliency bias 1" in str(e.value)
    # completeness_50's captions labelled natural: density 3 where 1 is declared
    shutil.copy(paths.captions("completeness_50"), paths.captions("natural"))
    with pytest.raises(StageError, match=r"mentions\.n_attrs: expect_column_mean_to_be_between expected 0\.95 \.\. "
                                         r"1\.05, observed 6"):
        validate_variant(params, paths, "natural")


def test_words_outside_the_vocabulary_and_missing_images_fail(study):
    params, paths, _ = study
    v = "one_object"
    clean = pl.read_parquet(paths.captions(v))
    table = clean.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.col("caption") + " teapot").otherwise(pl.col("caption"))
        .alias("caption"))
    write_parquet(table, paths.captions(v))
    with pytest.raises(StageError) as e:
        validate_variant(params, paths, v)
    msg = str(e.value)
    assert "captions.oov_words: expect_column_values_to_be_between expected 0 .. 0, observed 1 of 300 rows" in msg
    assert "captions.text_matches_record" in msg
    # a caption of an image that does not exist is refused at the boundary (bindlab/contracts.py), in one line
    write_parquet(clean.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit(100_000, dtype=pl.Int64)).otherwise(pl.col("scene_id"))
        .alias("scene_id")), paths.captions(v))
    with pytest.raises(StageError, match=r"captions.parquet: scene_id runs 0..100000, outside 0..299") as e:
        validate_variant(params, paths, v)
    assert len(str(e.value).splitlines()) == 1


def test_replace_item_with_a_value_present_in_the_image_fails(study, capsys):
    """A replace negative whose new value another object of the image has (worded consistently, so only
    the absence check can catch it): validation names replace.value_absent and leaves no passed.json."""
    from bindlab.benchmark import replaced_scene
    from bindlab.wording import caption_text, describe, objects_of
    params, paths, params_file = study
    path = paths.benchmark / "replace.parquet"
    clean = pl.read_parquet(path)
    objs = objects_of(pl.read_parquet(paths.benchmark / "scenes.parquet"))
    types = list(params.vocab.attribute_types)
    assert params.benchmark.density is None  # every caption names every type
    rows = clean.to_dicts()
    i, present = next((i, o[r["type"]]) for i, r in enumerate(rows) for o in objs[r["scene_id"]]
                      if o[r["type"]] != objs[r["scene_id"]][r["obj"]][r["type"]])
    r = rows[i]
    cf = replaced_scene(params, objs[r["scene_id"]], r["obj"], r["type"], present)
    r.update(value=present, negative=caption_text([describe(o, types) for o in cf], params.captions.templates[0]))
    write_parquet(pl.DataFrame(rows, schema=clean.schema), path)
    try:
        code = main(["validate", "--benchmark", "--params", str(params_file), "--data", str(paths.root)])
        err = capsys.readouterr().err
        assert code == 2
        assert f"replace.value_absent: expect_column_values_to_be_between expected 1 .. 1, observed 1 of {len(rows)} rows" in err
        assert "one_object_changed" not in err  # the negative is worded as the record says
        assert not (paths.validation("benchmark") / "passed.json").exists()
    finally:
        write_parquet(clean, path)


def test_replace_files_are_read_under_contract(study, capsys):
    """A wrong column type, and a counterfactual array one image short of the replace items: exit 2 and
    one line naming the file and the command that regenerates it."""
    params, paths, params_file = study
    argv = ["validate", "--benchmark", "--params", str(params_file), "--data", str(paths.root)]
    table, array = paths.benchmark / "replace.parquet", paths.benchmark / "replace_counterfactual.npy"
    clean_table, clean_array = pl.read_parquet(table), np.load(array)
    try:
        write_parquet(clean_table.with_columns(pl.col("obj").cast(pl.Int64)), table)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{table}: wrong column type: obj is Int64, not Int8" in err[0], err
        assert "`bindlab benchmark`" in err[0]
        write_parquet(clean_table, table)
        np.save(array, clean_array[:-1])
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{array}: holds {len(clean_array) - 1} counterfactual images (one per replace " \
            f"item) where {len(clean_array)} are expected" in err[0], err
    finally:
        write_parquet(clean_table, table)
        np.save(array, clean_array)


def test_unbalanced_scene_table_fails(study):
    params, paths, _ = study
    scenes = pl.read_parquet(paths.scenes("train"))
    # every red object becomes green: colours no longer balanced
    write_parquet(scenes.with_columns(pl.col("color").replace("red", "green")), paths.scenes("train"))
    with pytest.raises(StageError) as e:
        validate_scenes(params, paths, "train")
    assert "balance.deviation: expect_column_values_to_be_between expected 0 .. 0.05" in str(e.value)
    assert not (paths.validation("scenes") / "train" / "passed.json").exists()


def test_bad_input_is_one_clear_line(study, capsys, tmp_path):
    params, paths, params_file = study
    assert main(["validate", "--variant", "nope", "--params", str(params_file), "--data", str(paths.root)]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err
    assert main(["validate", "--variant", "ideal", "--params", str(params_file), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "captions.parquet is missing" in err
    assert not (tmp_path / "validation").exists()


def test_data_docs_open_offline(study):
    """The GX Data Docs load no script or style from the network: every one is a relative link to a
    file shipped beside the pages, and headless Chromium renders the index's table (bootstrap-table,
    jQuery) and every stylesheet from file://."""
    from bindlab import datadocs
    if not datadocs.installed():
        pytest.skip("Data Docs assets not installed (make datadocs: needs npm)")
    params, paths, _ = study
    try:  # other tests of this module damage its data; passed or failed, the Data Docs are written
        validate_scenes(params, paths, "train")
    except StageError:
        pass
    docs = paths.record(paths.validation("scenes") / "train") / "docs"
    pages = sorted(docs.rglob("*.html"))
    assert len(pages) >= 3
    loads = re.compile(r'<script[^>]*\bsrc="([^"]+)"|<link[^>]*\bhref="([^"]+)"')
    for page in pages:
        html = page.read_text()
        for m in loads.finditer(html):
            url = m.group(1) or m.group(2)
            assert "://" not in url, (page.name, url)
            assert (page.parent / url).resolve().is_file(), (page.name, url)
        assert "amazonaws" not in html and "integrity=" not in html
    from browser import browser
    driver, why = browser()
    if driver is None:
        pytest.skip(why)
    try:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait
        driver.get((docs / "index.html").as_uri())
        try:  # bootstrap-table writes the table's footer once jQuery and it have run
            WebDriverWait(driver, 30).until(lambda d: "Showing 1 to" in d.find_element("tag name", "body").text)
        except TimeoutException:
            pass  # the assertion below shows what the page says instead
        text = driver.find_element("tag name", "body").text
        assert "Showing 1 to" in text and "scenes_train" in text, text[:500]
        assert driver.execute_script(
            "return Array.from(document.querySelectorAll('link[rel=stylesheet]')).every(l => l.sheet !== null)")
    finally:
        driver.quit()


def test_data_docs_without_npm_keep_their_links_and_say_so(tmp_path, monkeypatch, capsys):
    """No npm on PATH: the install says why in one line and exits 0 (the study runs all the same), and
    make_offline leaves the pages as GX wrote them."""
    from bindlab import datadocs
    monkeypatch.setenv("BINDLAB_DATADOCS_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    assert datadocs.main(["install"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "npm not found" in err[0]
    assert not (tmp_path / "assets").exists()
    page = tmp_path / "docs" / "index.html"
    page.parent.mkdir()
    page.write_text('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>')
    assert datadocs.make_offline(page.parent) is False
    assert "https://code.jquery.com" in page.read_text()
    assert datadocs.main(["fetch"]) == 2


def test_a_declared_share_of_minimal_pairs_is_checked_with_gx(tiny_data, tmp_path):
    """A variant that declares `minimal_pairs` gets one GX expectation per attribute type and the shape
    on its training batches; the tiny study's random scenes have no minimal pairs, so a target of 0.2
    fails on every type and a target of 0 passes."""
    from tiny import copy_study
    params, paths, _ = copy_study(tiny_data, tmp_path)

    def declaring(share):
        return params.model_copy(update={"variants": {**params.variants,
                                                      "ideal": {"scenes": "train", "minimal_pairs": share}}})

    types = {*params.vocab.attribute_types, "shape"}
    results = validate_variant(declaring(0.0), paths, "ideal")
    batch_rows = [r for r in results["expectations"] if r["table"] == "batches"]
    assert results["success"] and {r["column"] for r in batch_rows} == types
    assert all(r["why"].startswith("declared minimal_pairs 0:") for r in batch_rows)
    assert "batches" not in validate_variant(params, paths, "ideal")["docs"]  # no target: no expectation
    with pytest.raises(StageError, match=r"batches\.texture: expect_column_min_to_be_between expected 0\.2 \.\. 1, "
                                         r"observed 0 \(declared minimal_pairs 0\.2"):
        validate_variant(declaring(0.2), paths, "ideal")
    results = json.loads((paths.validation("ideal") / "results.json").read_text())
    assert results["failed"] == len(types) and not (paths.validation("ideal") / "passed.json").exists()
