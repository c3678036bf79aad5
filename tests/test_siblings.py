"""experiments/siblings.py on the tiny study: sibling scenes replace one value of one object (never a
swap), keep the holdout and the geometry; the sampler keeps a parent and its siblings in one batch and
is deterministic by seed; the experiment runs end to end in a few steps without writing into --data."""
from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

import bindlab.train
from bindlab import look
from bindlab.params import load_params, parse_combo
from bindlab.paths import DataPaths
from bindlab.scenes import GAP
from experiments.siblings import (TABLE_KINDS, GroupedData, group_batch_indices, group_batches, grouped_training,
                                  main, reusable_ideal, run, sibling_scenes)
from tiny import copy_study

K = 3


@pytest.fixture(scope="module")
def made(tiny_data):
    params = load_params(tiny_data / "params.yaml")
    train = pl.read_parquet(tiny_data / "data" / "scenes" / "train.parquet").sort("scene_id", "obj")
    n = params.scene_sets["train"].n
    scenes, record = sibling_scenes(params, train, n, K)
    return params, train, scenes, record, n


def objects(table: pl.DataFrame, scene_id: int) -> pl.DataFrame:
    return table.filter(pl.col("scene_id") == scene_id).sort("obj")


def test_each_sibling_replaces_one_value_of_one_object(made):
    params, train, scenes, record, n = made
    kinds = TABLE_KINDS
    assert scenes["scene_id"].n_unique() == n and record.height == n // (K + 1) * K
    for g in range(n // (K + 1)):
        parent = objects(scenes, g * (K + 1))
        # the parent is the train scene as it was
        assert parent.drop("scene_id").equals(objects(train, g).drop("scene_id"))
        keys = {tuple(sorted(parent.select(kinds).rows()))}
        for j in range(1, K + 1):
            sib = objects(scenes, g * (K + 1) + j)
            assert sib.height == parent.height
            assert sib.select("x", "y").equals(parent.select("x", "y"))
            diff = [(o, t) for t in kinds for o, (a, b) in enumerate(zip(parent[t], sib[t])) if a != b]
            # exactly one cell: one object, one type; a swap would change two objects
            assert len(diff) == 1, diff
            change = record.filter(pl.col("scene_id") == g * (K + 1) + j).row(0, named=True)
            assert (change["obj"], change["type"]) == diff[0] and change["parent_id"] == g
            assert change["old"] == parent[change["type"]][change["obj"]] != change["new"]
            keys.add(tuple(sorted(sib.select(kinds).rows())))
        assert len(keys) == K + 1, "siblings differ from their parent and from each other"
    # k different types per parent (k <= the seven kinds)
    assert (record.group_by("parent_id").agg(pl.col("type").n_unique())["type"] == K).all()


def test_siblings_keep_the_vocabulary_the_holdout_and_the_geometry(made):
    params, _, scenes, _, _ = made
    vocab = params.vocab
    assert set(scenes["shape"]) <= set(vocab.shapes)
    for t, values in vocab.attributes.items():
        assert set(scenes[t]) <= set(values)
    for i, combo in enumerate(params.holdout):
        attr, value, shape = parse_combo(combo, vocab, f"holdout.{i}")
        assert scenes.filter((pl.col(attr) == value) & (pl.col("shape") == shape)).height == 0, combo
    assert not scenes["unseen"].any()
    radii = dict(zip(vocab.attributes["size"], look.size_radii(len(vocab.attributes["size"]))))
    for sid, objs in scenes.group_by("scene_id"):
        x, y, r = (objs[c].to_numpy().astype(np.float64) for c in ("x", "y", "radius"))
        assert np.allclose(r, [radii[s] for s in objs["size"]], atol=1e-6)
        assert (x - r >= -1e-6).all() and (x + r <= 1 + 1e-6).all() and (y - r >= -1e-6).all()
        assert np.allclose(objs["x1"].to_numpy(), x + r, atol=1e-6)
        area = [look.unit_area(s, a) * rr ** 2 for s, a, rr in zip(objs["shape"], objs["aspect"], r)]
        assert np.allclose(objs["area"].to_numpy(), area, rtol=1e-5)
        for a in range(len(x)):
            for b in range(a + 1, len(x)):
                assert np.hypot(x[a] - x[b], y[a] - y[b]) >= r[a] + r[b] + GAP - 1e-6, sid
        assert sorted(objs["saliency_rank"]) == list(range(len(x)))
        assert objs["n_objects"].to_list() == [len(x)] * len(x)


def test_sibling_scenes_are_deterministic(made):
    params, train, scenes, record, n = made
    again, again_record = sibling_scenes(params, train, n, K)
    assert again.equals(scenes) and again_record.equals(record)


def test_the_sampler_keeps_groups_whole_and_follows_the_seed():
    n, group, batch = 300, K + 1, 32
    a = group_batches(n, group, 0, 12, batch)
    assert a.shape == (12, batch)
    for row in a:
        ids, counts = np.unique(row // group, return_counts=True)
        assert (counts % group == 0).all(), "every group whole in its batch"
        for g in ids:
            assert set(range(g * group, (g + 1) * group)) <= set(row.tolist())
    assert np.array_equal(a, group_batches(n, group, 0, 12, batch))
    assert not np.array_equal(a, group_batches(n, group, 1, 12, batch))
    # one epoch (75 groups, 8 a batch) sees every group once before any repeats
    first = np.concatenate(a[:9]) // group
    assert len(np.unique(first)) == len(first) // group
    with pytest.raises(Exception, match="divide"):
        group_batch_indices(300, 4, 0, 0, 30)


def test_the_training_hook_is_the_group_sampler_only_while_it_runs():
    before = bindlab.train.TrainData
    with grouped_training(4):
        cls = bindlab.train.TrainData
        assert issubclass(cls, GroupedData) and cls.group == 4
        data = cls.__new__(cls)
        data.n = 300
        assert np.array_equal(data.batch_indices(0, 5, 32), group_batch_indices(300, 4, 0, 5, 32))
    assert bindlab.train.TrainData is before


def test_the_study_ideal_is_reused_only_at_its_own_budget(tmp_path):
    src = DataPaths(tmp_path / "data")
    assert reusable_ideal(src, "ideal", 0, 500, 128) is None
    src.model("ideal", 0).mkdir(parents=True)
    (src.model("ideal", 0) / "last.pt").write_bytes(b"")
    src.metrics("ideal", 0).mkdir(parents=True)
    (src.metrics("ideal", 0) / "eval.json").write_text(json.dumps({"steps": 500, "batch_size": 128}))
    assert reusable_ideal(src, "ideal", 0, 500, 128) == src.metrics("ideal", 0) / "eval.json"
    assert reusable_ideal(src, "ideal", 0, 400, 128) is None
    assert reusable_ideal(src, "ideal", 0, 500, 256) is None


def test_missing_inputs_fail_in_one_line_naming_the_command(tiny_data, tmp_path, capsys):
    rc = main(["--steps", "2", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "nothing"),
               "--params", str(tiny_data / "params.yaml")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "bindlab sample --scenes train" in err
    rc = main(["--steps", "2", "--k", "2", "--out", str(tmp_path / "out"), "--data", str(tiny_data / "data"),
               "--params", str(tiny_data / "params.yaml")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "k may be 1, 3" in err


def test_the_experiment_runs_end_to_end_and_reuses_the_study_ideal(tiny_data, tmp_path):
    """Run once (the ideal trained beside the siblings), then again on a data root that holds that ideal
    run as the study's: reused, and every figure the same (deterministic by seed)."""
    _, _, params_file = copy_study(tiny_data, tmp_path / "study")
    data = tmp_path / "study" / "data"
    first = run(data, params_file, tmp_path / "one", steps=2, k=K, threads=1)
    name = f"siblings_k{K}"
    assert set(first["runs"]) == {"ideal", name}
    for r in first["runs"].values():
        assert r["steps"] == 2 and 0 <= r["i2t_pairwise"] <= 1 and set(r["by_kind"]) == set(TABLE_KINDS)
    pairs = {n: np.mean([r["by_kind"][t]["minimal_pair"] for t in TABLE_KINDS]) for n, r in first["runs"].items()}
    assert pairs[name] > pairs["ideal"] == 0
    assert first["runs"][name]["singled_out_by_color_shape"] < first["runs"]["ideal"]["singled_out_by_color_shape"]
    assert json.loads((tmp_path / "one" / f"{name}.json").read_text())["k"] == K
    assert not (data / "models").exists() and not (data / "scenes" / f"{name}.parquet").exists(), \
        "nothing is written into --data"

    for part in ("models", "metrics"):
        shutil.copytree(tmp_path / "one" / "data" / part / "ideal", data / part / "ideal")
    second = run(data, params_file, tmp_path / "two", steps=2, k=K, threads=1)
    assert second["ideal_source"] == str(DataPaths(data).metrics("ideal", 0) / "eval.json")
    assert not (tmp_path / "two" / "data" / "models" / "ideal").exists()
    assert second["runs"] == first["runs"]

    # the plot of each run, and several runs joined into one table and one plot
    assert (tmp_path / "one" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "joined.png"
    assert main(["--collect", str(tmp_path / "one" / f"{name}.json"), str(tmp_path / "two" / f"{name}.json"),
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--collect", str(tmp_path / "none.json"), "--out", str(out)]) == 2
