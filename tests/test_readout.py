"""experiments/readout.py: the per-object crops, the labels, and a short run on the tiny study's data."""
from __future__ import annotations

import json

import numpy as np
import polars as pl

from experiments.readout import crops, labels, main


def test_crop_is_centred_on_the_object_and_zero_outside_the_image():
    img = np.zeros((1, 16, 16, 3), dtype=np.uint8)
    img[0, 4, 10] = (200, 10, 10)           # row y=4, column x=10
    scenes = pl.DataFrame({"scene_id": [0, 0], "x": [10 / 16, 0.0], "y": [4 / 16, 0.0]})
    out = crops(img, scenes, side=6)
    assert out.shape == (2, 6, 6, 3)
    assert tuple(out[0, 3, 3]) == (200, 10, 10)       # the object's centre is the crop's centre
    assert out[0].sum() == 220                        # nothing else of the image is lit
    assert out[1, :3, :3].sum() == 0                  # the corner object's crop is padded with zeros


def test_labels_index_each_value_in_vocab_order():
    scenes = pl.DataFrame({"color": ["blue", "red"], "shape": ["star", "circle"]})
    y = labels(scenes, {"color": ["red", "green", "blue"], "shape": ["circle", "star"]})
    assert y.tolist() == [[2, 1], [0, 0]]


def test_short_run_scores_every_type_on_the_benchmark_objects(tiny_data, tmp_path):
    out = tmp_path / "readout.json"
    main(["--data", str(tiny_data / "data"), "--params", str(tiny_data / "params.yaml"),
          "--steps", "4", "--eval-every", "2", "--batch", "16", "--out", str(out)])
    result = json.loads(out.read_text())
    types = ["size", "aspect", "shade", "color", "texture", "outline", "shape"]
    assert [p["step"] for p in result["curve"]] == [2, 4]
    assert result["chance"]["color"] == round(1 / 8, 4) and result["chance"]["shape"] == round(1 / 8, 4)
    bench = pl.read_parquet(tiny_data / "data" / "benchmark" / "scenes.parquet")
    assert result["benchmark_objects"] == bench.height
    for p in result["curve"]:
        assert all(0.0 <= p[t] <= 1.0 for t in types)
