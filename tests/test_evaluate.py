"""Evaluation: the metric code on hand-built scores, and the stage on a tiny trained model."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from bindlab import timing
from bindlab.cli import main
from bindlab.errors import StageError
from bindlab.evaluate import evaluate_stage
from bindlab.metrics import HEADLINE, binding_metrics
from tiny import copy_study


def test_known_scores_give_known_accuracies():
    # scene 0 (2 objects): items 0,1; scene 1 (3 objects): items 2,3,4
    items = pl.DataFrame({"scene_id": [0, 0, 1, 1, 1], "n_objects": [2, 2, 3, 3, 3],
                          "swap": ["color", "shape", "color", "size", "texture"],
                          "unseen": [False, False, False, True, False]})
    s_true = np.array([0.9, 0.5, 0.8, 0.7, 0.6])
    s_neg = np.array([0.1, 0.6, 0.2, 0.7, 0.1])   # wins: 1, 0, 1, tie (1/2), 1
    s_cf = np.array([0.0, 0.0, 0.9, 0.0, 0.9])    # t2i wins: 1, 1, 0, 1, 0
    probes = pl.DataFrame({"scene_id": [0, 1, 1], "n_objects": [2, 3, 3], "k": [1, 1, 2],
                           "swap": ["color", "size", "color"], "unseen": [False, False, True]})
    p_true, p_false = np.array([0.5, 0.2, 0.9]), np.array([0.4, 0.3, 0.1])  # wins: 1, 0, 1
    sim = np.array([[0.9, 0.1], [0.95, 0.8]])   # image 1 prefers caption 0: i2t R@1 = 1/2
    m = binding_metrics(items, probes, s_true, s_neg, s_cf, p_true, p_false, sim)
    assert m["i2t_pairwise"] == pytest.approx(3.5 / 5)
    assert m["t2i_pairwise"] == pytest.approx(3 / 5)
    assert m["i2t_strict"] == 0.0          # scene 0 loses its shape item, scene 1 ties on size
    assert m["chance"]["i2t_strict"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert m["probe"] == pytest.approx(2 / 3)
    assert m["r1_i2t"] == 0.5 and m["r5_i2t"] == 1.0
    assert m["r1_t2i"] == 0.5               # caption 0 scores image 1 (0.95) above image 0 (0.9)
    assert m["by_swap"]["color"]["i2t_pairwise"] == 1.0 and m["by_swap"]["color"]["t2i_pairwise"] == 0.5
    assert m["by_swap"]["color"]["probe"] == 1.0 and m["by_swap"]["size"]["probe"] == 0.0
    assert m["by_n_objects"]["2"]["i2t_pairwise"] == 0.5
    assert m["by_n_objects"]["3"]["i2t_pairwise"] == pytest.approx(2.5 / 3)
    assert m["by_n_objects"]["3"]["n_images"] == 1 and m["by_n_objects"]["3"]["n_items"] == 3
    assert m["unseen"]["i2t_pairwise"] == 0.5 and m["unseen"]["probe"] == 1.0
    assert m["seen"]["i2t_pairwise"] == pytest.approx(3 / 4) and m["seen"]["n_items"] == 4
    assert m["probe_by_k"] == {"1": 0.5, "2": 1.0}


def test_saliency_breakdown_on_a_known_tiny_benchmark():
    """Scene 0: 2 objects (obj 1 most salient); scene 1: 3 objects with ranks obj0 2, obj1 0, obj2 1.
    The model wins exactly the items and probes that avoid the least salient object."""
    scenes = pl.DataFrame({"scene_id": [0, 0, 1, 1, 1], "obj": [0, 1, 0, 1, 2], "saliency_rank": [1, 0, 2, 0, 1]})
    items = pl.DataFrame({"scene_id": [0, 1, 1, 1], "n_objects": [2, 3, 3, 3], "swap": ["color"] * 4,
                          "obj_a": [0, 0, 1, 0], "obj_b": [1, 1, 2, 2], "unseen": [False] * 4})
    # items: scene 0 (0,1): least+most; scene 1 (0,1): least+most; (1,2): most, not least; (0,2): least only
    s_true, s_neg = np.array([0.1, 0.1, 0.9, 0.1]), np.array([0.5, 0.5, 0.2, 0.5])  # wins 0, 0, 1, 0
    probes = pl.DataFrame({"scene_id": [0, 1, 1], "n_objects": [2, 3, 3], "k": [1, 1, 1], "obj": [0, 2, 1],
                           "swap": ["color"] * 3, "unseen": [False] * 3})
    p_true, p_false = np.array([0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.0])   # wins 0, 1, 1
    sim = np.eye(2)
    m = binding_metrics(items, probes, s_true, s_neg, s_true, p_true, p_false, sim, scenes=scenes)
    sal = m["by_saliency"]
    assert sal["least"]["i2t_pairwise"] == 0.0 and sal["least"]["n_items"] == 3
    assert sal["other"]["i2t_pairwise"] == 1.0 and sal["other"]["n_items"] == 1 and sal["other"]["n_images"] == 1
    assert sal["most"]["i2t_pairwise"] == pytest.approx(1 / 3) and sal["most"]["n_items"] == 3
    assert sal["least"]["probe"] == 0.0 and sal["least"]["n_probes"] == 1      # scene 0 obj 0 (rank 1 of 2)
    assert sal["other"]["probe"] == 1.0 and sal["other"]["n_probes"] == 2
    assert sal["most"]["probe"] == 1.0 and sal["most"]["n_probes"] == 1        # scene 1 obj 1
    assert sal["least"]["i2t_strict"] == 0.0 and sal["other"]["i2t_strict"] == 1.0
    # the two least salient objects of a 3-4-object image: scene 1's (0, 2) only, never a 2-object image
    assert sal["least_pair"]["n_items"] == 1 and sal["least_pair"]["i2t_pairwise"] == 0.0
    # replace items on the least salient object of a 3-4-object image: scene 1 obj 0 only (i2t win)
    replace = pl.DataFrame({"scene_id": [0, 1, 1, 1], "obj": [1, 0, 2, 1], "n_objects": [2, 3, 3, 3],
                            "type": ["color"] * 4})
    m = binding_metrics(items, probes, s_true, s_neg, s_true, p_true, p_false, sim, scenes=scenes,
                        replace=(replace, np.array([0.0, 1.0, 0.0, 0.0]), np.array([1.0, 0.0, 1.0, 1.0]),
                                 np.zeros(4)))
    assert m["replace_least"] == {"i2t_pairwise": 1.0, "t2i_pairwise": 1.0, "n_items": 1, "n_images": 1}
    # every number has its interval; a breakdown on one image has a degenerate one
    assert m["ci"]["by_saliency.other.i2t_pairwise"] == [1.0, 1.0]
    assert m["ci"]["by_saliency.least.i2t_pairwise"] == [0.0, 0.0]
    lo, hi = m["ci"]["i2t_pairwise"]
    assert 0 <= lo <= m["i2t_pairwise"] <= hi <= 1


def _replace_bench():
    """The known-scores benchmark above, with replace items: scene 0 color (i2t win, t2i loss), scene 1
    color (i2t tie, t2i win) and size (i2t win, t2i win)."""
    replace = pl.DataFrame({"scene_id": [0, 1, 1], "type": ["color", "color", "size"]})
    return replace, np.array([0.9, 0.5, 0.8]), np.array([0.1, 0.5, 0.2]), np.array([0.95, 0.1, 0.3])


def test_replace_metrics_and_binding_gap_on_known_scores():
    """Perception beside binding: replace pairwise per type with counts, binding_gap = replace - swap i2t
    pairwise per type; every existing key (values and intervals) is the same as without replace items."""
    items = pl.DataFrame({"scene_id": [0, 0, 1, 1, 1], "n_objects": [2, 2, 3, 3, 3],
                          "swap": ["color", "shape", "color", "size", "texture"],
                          "unseen": [False, False, False, True, False]})
    s_true, s_neg = np.array([0.9, 0.5, 0.8, 0.7, 0.6]), np.array([0.1, 0.6, 0.9, 0.7, 0.1])  # 1, 0, 0, 1/2, 1
    s_cf = np.array([0.0, 0.0, 0.9, 0.0, 0.9])
    probes = pl.DataFrame({"scene_id": [0, 1], "n_objects": [2, 3], "k": [1, 1], "swap": ["color", "size"],
                           "unseen": [False, False]})
    args = (items, probes, s_true, s_neg, s_cf, np.array([0.5, 0.2]), np.array([0.4, 0.3]), np.eye(2))
    old = binding_metrics(*args)
    m = binding_metrics(*args, replace=_replace_bench())
    assert {k: m[k] for k in old} | {"ci": {k: m["ci"][k] for k in old["ci"]}} == old
    assert m["replace"] == {"i2t_pairwise": pytest.approx(2.5 / 3), "t2i_pairwise": pytest.approx(2 / 3),
                            "n_items": 3, "n_images": 2}
    assert m["by_replace"]["color"] == {"i2t_pairwise": 0.75, "t2i_pairwise": 0.5, "n_items": 2, "n_images": 2}
    assert m["by_replace"]["size"] == {"i2t_pairwise": 1.0, "t2i_pairwise": 1.0, "n_items": 1, "n_images": 1}
    # swap color won 1 of 2, size tied: gaps 0.75 - 0.5 and 1 - 0.5; no replace item of shape or texture
    assert m["binding_gap"] == {"color": pytest.approx(0.25), "size": pytest.approx(0.5)}
    assert set(m["ci"]) - set(old["ci"]) == {"replace.i2t_pairwise", "replace.t2i_pairwise", "binding_gap.color",
                                             "binding_gap.size", *(f"by_replace.{t}.{k}" for t in ("color", "size")
                                                                   for k in ("i2t_pairwise", "t2i_pairwise"))}
    assert m["ci"]["binding_gap.size"] == [0.5, 0.5]   # one image holds both: every resample agrees


def test_binding_gap_interval_is_the_paired_image_bootstrap():
    """400 images, one swap and one replace item of color each; the model sees color on 90% of the images
    and binds it on 60% (a subset of those): the gap 0.3 with the interval of the per-replicate difference
    of both ratios on the same resampled images, tighter than the two resampled independently."""
    from bindlab import intervals
    n = 400
    order = np.random.default_rng(1).permutation(n)
    sees, binds = np.zeros(n), np.zeros(n)
    sees[order[:360]], binds[order[:240]] = 1, 1
    items = pl.DataFrame({"scene_id": np.arange(n), "n_objects": [2] * n, "swap": ["color"] * n, "unseen": [False] * n})
    probes = pl.DataFrame({"scene_id": [0], "n_objects": [2], "k": [1], "swap": ["color"], "unseen": [False]})
    replace = pl.DataFrame({"scene_id": np.arange(n), "type": ["color"] * n})
    m = binding_metrics(items, probes, binds, 1 - binds, binds, np.ones(1), np.zeros(1), np.eye(n),
                        replace=(replace, sees, 1 - sees, sees))
    assert m["by_replace"]["color"]["i2t_pairwise"] == 0.9 and m["by_swap"]["color"]["i2t_pairwise"] == 0.6
    assert m["binding_gap"]["color"] == pytest.approx(0.3)
    lo, hi = m["ci"]["binding_gap.color"]
    assert lo < 0.3 < hi
    w = intervals.image_weights(n)
    paired = intervals.replicates(sees, np.ones(n), w) - intervals.replicates(binds, np.ones(n), w)
    assert [lo, hi] == intervals.interval(paired)
    other = intervals.image_weights(n, seed=intervals.SEED + 1)   # the swap side on other resamples
    unpaired = intervals.replicates(sees, np.ones(n), w) - intervals.replicates(binds, np.ones(n), other)
    ulo, uhi = intervals.interval(unpaired)
    assert hi - lo < 0.9 * (uhi - ulo)   # sd ratio sqrt(0.3 * 0.7 / (0.9 * 0.1 + 0.6 * 0.4)) = 0.80


def test_score_benchmark_scores_replace_items_with_the_true_captions_features():
    """Replace items: i2t is the image's true caption against the replaced one, t2i the true caption on
    the image against its replace counterfactual; the pass without counterfactual images skips them."""
    from bindlab.evaluate import score_benchmark

    class Stub:   # an encoder with known features: images are their pixels, texts one-hot by word count
        def images(self, x):
            return np.asarray(x, np.float64).reshape(len(x), -1)

        def texts(self, texts):
            return np.eye(3)[[len(t.split()) - 1 for t in texts]]

    images = np.eye(3)[[0, 1, 2]].reshape(3, 1, 3)
    items = pl.DataFrame({"scene_id": [0, 1], "n_objects": [2, 2], "swap": ["color"] * 2, "unseen": [False] * 2,
                          "caption": ["a", "b b"], "negative": ["c c", "d"]})
    probes = pl.DataFrame({"scene_id": [0], "true_caption": ["a"], "false_caption": ["b b"]})
    # scene 2 has no swap items: its true caption is encoded for the replace item alone
    replace = pl.DataFrame({"scene_id": [0, 2], "type": ["color", "shape"], "caption": ["a", "e e e"],
                            "negative": ["f f", "g g g"]})
    bench = {"items": items, "probes": probes, "images": images, "counterfactual": images[[1, 0]],
             "replace": replace, "replace_counterfactual": images[[0, 1]]}
    sc = score_benchmark(Stub(), bench)
    table, r_true, r_neg, r_cf = sc["replace"]
    assert table is replace and sc["n_images_encoded"] == 3 + 2 + 2
    assert r_true.tolist() == [1.0, 1.0] and r_neg.tolist() == [0.0, 1.0] and r_cf.tolist() == [1.0, 0.0]
    assert score_benchmark(Stub(), bench, counterfactual=False)["replace"] is None
    assert score_benchmark(Stub(), {k: v for k, v in bench.items() if "replace" not in k})["replace"] is None


def test_r1_t2i_counts_columns():
    items = pl.DataFrame({"scene_id": [0, 1], "n_objects": [2, 2], "swap": ["color"] * 2, "unseen": [False] * 2})
    probes = pl.DataFrame({"scene_id": [0], "n_objects": [2], "k": [1], "swap": ["color"], "unseen": [False]})
    one = np.ones(2)
    sim = np.array([[0.9, 0.1], [0.95, 0.8]])   # caption 0 prefers image 1, caption 1 image 1
    m = binding_metrics(items, probes, one, one * 0, one, np.ones(1), np.zeros(1), sim)
    assert m["r1_t2i"] == 0.5 and m["r1_i2t"] == 0.5


@pytest.fixture(scope="module")
def trained(tiny_study, tmp_path_factory):
    """A copy of the session's tiny study, `ideal` trained 6 steps (the tests here evaluate into it)."""
    folder = tmp_path_factory.mktemp("evaluate")
    params, paths, _ = copy_study(tiny_study, folder)
    return folder, params, paths


def test_evaluate_a_run_writes_metrics_in_range_with_the_right_counts(trained):
    folder, params, paths = trained
    r = evaluate_stage(params, paths, "ideal")
    out = paths.metrics("ideal", 0)
    assert json.loads((out / "eval.json").read_text()) == json.loads(json.dumps(r))
    assert (out / "by_swap.png").exists() and (out / "train_curve.png").exists()
    items = pl.read_parquet(paths.benchmark / "items.parquet")
    probes = pl.read_parquet(paths.benchmark / "probes.parquet")
    assert r["n_items"] == items.height and r["n_probes"] == probes.height
    assert r["n_images"] == items["scene_id"].n_unique()
    for key in ("variant", "seed", "steps", "batch_size", "i2t_pairwise", "i2t_strict",
                "t2i_pairwise", "probe", "r1_i2t", "r5_i2t", "r1_t2i", "r5_t2i", "chance", "by_swap",
                "by_n_objects", "seen", "unseen", "probe_by_k"):
        assert key in r, key
    assert (r["variant"], r["seed"], r["steps"], r["batch_size"]) == ("ideal", 0, 6, 32)
    flat = [r[k] for k in ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe", "r1_i2t", "r5_i2t")]
    flat += [v for d in r["by_swap"].values() for k, v in d.items() if not k.startswith("n_")]
    flat += [v for d in r["by_saliency"].values() for k, v in d.items() if not k.startswith("n_")]
    flat += list(r["probe_by_k"].values()) + list(r["chance"].values())
    assert all(0.0 <= x <= 1.0 for x in flat)
    assert set(r["by_swap"]) == {*params.vocab.attribute_types, "shape"}  # every attribute type is swapped
    assert sum(d["n_items"] for d in r["by_n_objects"].values()) == items.height
    assert r["seen"]["n_items"] + r["unseen"]["n_items"] == items.height
    assert set(r["probe_by_k"]) == {str(k) for k in range(1, len(params.vocab.attribute_types) + 1)}
    # an interval on every number, from the per-image outcomes kept beside eval.json
    per_image = pl.read_parquet(out / "per_image.parquet")
    # one row per image with items or probes (with benchmark.density below all types, an image whose
    # objects differ only in unnamed types has probes but no items)
    assert per_image.height == pl.concat([items["scene_id"], probes["scene_id"]]).n_unique()
    assert per_image.height >= r["n_images"] and per_image["scene_id"].is_sorted()
    assert per_image["i2t_pairwise:den"].sum() == items.height
    for key in ("i2t_pairwise", "i2t_strict", "probe", "by_swap.color.t2i_pairwise", "probe_by_k.2",
                "by_saliency.least.i2t_pairwise", "by_saliency.least.probe", "unseen.i2t_pairwise", "r1_i2t"):
        lo, hi = r["ci"][key]
        value = per_image[f"{key}:num"].sum() / per_image[f"{key}:den"].sum()
        assert lo <= value + 1e-12 and value <= hi + 1e-12, key
    assert r["by_saliency"]["least"]["n_items"] + r["by_saliency"]["other"]["n_items"] == items.height
    # perception beside binding: every replace item scored, per type, and the binding gap with its interval
    replace = pl.read_parquet(paths.benchmark / "replace.parquet")
    assert r["replace"]["n_items"] == replace.height > 0 and set(r["by_replace"]) == set(replace["type"])
    assert set(r["binding_gap"]) == set(r["by_replace"]) & set(r["by_swap"]) != set()
    for t, gap in r["binding_gap"].items():
        assert gap == pytest.approx(r["by_replace"][t]["i2t_pairwise"] - r["by_swap"][t]["i2t_pairwise"])
        lo, hi = r["ci"][f"binding_gap.{t}"]
        assert lo <= gap + 1e-12 and gap <= hi + 1e-12, t
    assert per_image["replace.i2t_pairwise:den"].sum() == replace.height
    # the untrained model of the run's seed: the measured chance level of every i2t metric
    cm = r["chance_measured"]
    assert cm["seed"] == 0 and set(cm["ci"]) == {"i2t_strict", "i2t_pairwise", "probe"}
    assert 0 <= cm["i2t_strict"] <= 1
    # deterministic: the same checkpoint gives the same numbers (and bytes)
    per_image_bytes = (out / "per_image.parquet").read_bytes()
    again = evaluate_stage(params, paths, "ideal", plots=False)
    assert {k: again[k] for k in ("i2t_pairwise", "probe", "by_swap", "ci", "chance_measured")} == \
           {k: r[k] for k in ("i2t_pairwise", "probe", "by_swap", "ci", "chance_measured")}
    assert (out / "per_image.parquet").read_bytes() == per_image_bytes
    # the headline file DVC shows as metrics; wall-clock figures only in the timing record
    assert json.loads((out / "binding.json").read_text()) == {
        k: {"value": r[k], "low": r["ci"][k][0], "high": r["ci"][k][1]} for k in HEADLINE}
    assert not any("seconds" in k or "per_s" in k for k in r)
    times = timing.read(paths.timing(out))
    assert times["eval"]["seconds"] > 0 and times["train"]["checkpoints"].keys() == {"3", "6"}
    # deterministic: the same checkpoint gives the same bytes
    before = (out / "eval.json").read_bytes()
    evaluate_stage(params, paths, "ideal", plots=False)
    assert (out / "eval.json").read_bytes() == before


def test_evaluate_any_checkpoint_file(trained, tmp_path):
    folder, params, paths = trained
    snap = paths.model("ideal", 0) / "weights_step000003.pt"
    r = evaluate_stage(params, paths, checkpoint=snap, out=tmp_path / "m", plots=False)
    assert r["steps"] == 3 and (tmp_path / "m" / "eval.json").exists()


def test_curve_scores_every_snapshot_as_evaluate_would(trained, tmp_path):
    """Finding 7's curve: one point per weight snapshot (steps 3 and 6), each equal to `evaluate` of that
    snapshot, with its interval; the same bytes twice; a run without snapshots is one line, exit 2."""
    from bindlab.evaluate import curve_stage
    folder, params, paths = trained
    c = curve_stage(params, paths, "ideal", 0)
    f = paths.metrics("ideal", 0) / "curve.json"
    assert json.loads(f.read_text()) == json.loads(json.dumps(c))
    assert [(p["step"], p["samples"]) for p in c["points"]] == [(3, 96), (6, 192)]
    log = {int(r[0]): r[1] for r in torch.load(paths.model("ideal", 0) / "last.pt", weights_only=True)["log"]}
    assert [p["loss"] for p in c["points"]] == [log[3], log[6]]   # the training loss at each snapshot
    for p in c["points"]:
        snap = paths.model("ideal", 0) / f"weights_step{p['step']:06d}.pt"
        r = evaluate_stage(params, paths, checkpoint=snap, out=tmp_path / str(p["step"]), plots=False)
        for key in ("i2t_pairwise", "i2t_strict", "t2i_pairwise", "probe"):
            assert p[key] == r[key] and p[f"{key}_ci"] == r["ci"][key], (p["step"], key)
        # per type, binding (swap) and, where the benchmark has replace items, perception (replace)
        for name in ("by_swap", "by_replace"):
            assert p.get(name) == ({t: d["i2t_pairwise"] for t, d in r[name].items()} if name in r else None)
    before = f.read_bytes()
    curve_stage(params, paths, "ideal", 0)
    assert f.read_bytes() == before
    code = main(["evaluate", "--params", str(folder / "params.yaml"), "--data", str(paths.root),
                 "--variant", "one_object", "--curve"])
    assert code == 2 and not (paths.metrics("one_object", 0) / "curve.json").exists()


def test_evaluate_an_open_clip_architecture_with_local_weights(trained, tmp_path):
    """--model NAME --checkpoint PATH: an open_clip model (here a registered tiny config) and its
    weights from a local file; nothing is downloaded."""
    import open_clip
    folder, params, paths = trained
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                                           "head_width": 16},
           "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "bindlab-tiny-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cfg")
    torch.manual_seed(0)
    model = open_clip.create_model("bindlab-tiny-test")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    r = evaluate_stage(params, paths, checkpoint=tmp_path / "w.pt", model_name="bindlab-tiny-test",
                       out=tmp_path / "oc", plots=False)
    assert r["model"] == "bindlab-tiny-test" and 0 <= r["i2t_pairwise"] <= 1
    with pytest.raises(StageError, match="not an open_clip model name"):
        evaluate_stage(params, paths, checkpoint=tmp_path / "w.pt", model_name="no-such-model")


def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys):
    folder, params, paths = trained
    pf = folder / "params.yaml"
    assert main(["evaluate", "--params", str(pf), "--data", str(paths.root), "--variant", "one_object"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one_object/seed0/last.pt: no such checkpoint" in err[0]
    bad = tmp_path / "junk.pt"
    bad.write_text("not a checkpoint")
    assert main(["evaluate", "--params", str(pf), "--data", str(paths.root), "--checkpoint", str(bad),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.pt: not a loadable checkpoint" in err[0]
    assert not (tmp_path / "o").exists()


def test_text_features_match_open_clip_per_text_in_order_with_repeats(trained):
    """Encoder.texts encodes each distinct text once, batched by length with the padding cut: the
    features must equal open_clip's own encode_text of each text, in the caller's order."""
    from bindlab.evaluate import bindlab_encoder
    _, _, paths = trained
    enc, _ = bindlab_encoder(paths.model("ideal", 0) / "last.pt", "cpu", batch=3)
    texts = ["a red circle", "a small blue square and a red circle", "a red circle",
             "a picture of a green star", "a blue square"]
    got = enc.texts(texts)
    with torch.no_grad():
        want = enc.model.encode_text(torch.as_tensor(np.asarray(enc.tokenizer(texts))), normalize=True).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.array_equal(got[0], got[2])
