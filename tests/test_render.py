"""Rendering: deterministic across worker counts, anti-aliased, every attribute visible."""
from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from bindlab import look
from bindlab.render import render_to_npy
from bindlab.scenes import sample_scenes


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bytes_identical_whatever_the_worker_count(tiny_params, tmp_path):
    scenes = sample_scenes(tiny_params, 700, {2: 0.5, 3: 0.5}, "test")
    render_to_npy(tiny_params, scenes, tmp_path / "one.npy", workers=1, progress=False)
    render_to_npy(tiny_params, scenes, tmp_path / "two.npy", workers=2, progress=False)
    render_to_npy(tiny_params, scenes, tmp_path / "again.npy", workers=3, progress=False)
    assert _sha(tmp_path / "one.npy") == _sha(tmp_path / "two.npy") == _sha(tmp_path / "again.npy")
    images = np.load(tmp_path / "one.npy", mmap_mode="r")
    s = tiny_params.render.image_size
    assert images.shape == (700, s, s, 3) and images.dtype == np.uint8
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_objects_have_their_colour_and_anti_aliased_edges(tiny_params, tmp_path):
    scenes = sample_scenes(tiny_params, 300, {2: 1.0}, "test")
    render_to_npy(tiny_params, scenes, tmp_path / "img.npy", workers=1, progress=False)
    images = np.load(tmp_path / "img.npy")
    s = tiny_params.render.image_size
    plain = scenes.filter((pl.col("texture") == "plain") & (pl.col("shape") == "square"))
    assert len(plain) > 5
    for row in plain.iter_rows(named=True):
        pixel = images[row["scene_id"], int(row["y"] * s), int(row["x"] * s)]
        assert tuple(pixel) == look.COLORS[row["color"]]
    # anti-aliasing: edge pixels take intermediate values between object and background
    levels = {tuple(p) for p in images[:50].reshape(-1, 3)}
    assert len(levels) > 200


def test_textures_differ_visibly(tiny_params, tmp_path):
    """The same object with each texture gives clearly different pixels at 64 px."""
    base = sample_scenes(tiny_params, 1, {1: 1.0}, "test").with_columns(
        x=pl.lit(0.5, pl.Float32), y=pl.lit(0.5, pl.Float32), shape=pl.lit("square"), size=pl.lit("small"),
        radius=pl.lit(float(look.size_radii(3)[0]), pl.Float32))
    rows = [base.with_columns(texture=pl.lit(t), scene_id=pl.lit(i, pl.Int64))
            for i, t in enumerate(tiny_params.vocab.attributes["texture"])]
    render_to_npy(tiny_params, pl.concat(rows), tmp_path / "t.npy", workers=1, progress=False)
    images = np.load(tmp_path / "t.npy").astype(int)
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            assert np.abs(images[i] - images[j]).sum(axis=-1).astype(bool).sum() >= 12, (i, j)
