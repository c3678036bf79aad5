"""Rendering: deterministic across worker counts, anti-aliased, every attribute visible."""
from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from bindlab import look
from bindlab.params import load_params
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
    scenes = sample_scenes(tiny_params, 900, {2: 1.0}, "test")
    render_to_npy(tiny_params, scenes, tmp_path / "img.npy", workers=1, progress=False)
    images = np.load(tmp_path / "img.npy")
    s = tiny_params.render.image_size
    plain = scenes.filter((pl.col("texture") == "plain") & (pl.col("shape") == "square")
                          & (pl.col("outline") == "unbordered"))
    assert len(plain) > 5
    for row in plain.iter_rows(named=True):
        pixel = images[row["scene_id"], int(row["y"] * s), int(row["x"] * s)]
        assert tuple(pixel) == look.shaded(look.COLORS[row["color"]], row["shade"])
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


@pytest.mark.parametrize("base", [{"size": "small"}, {"size": "small", "color": "yellow", "shade": "pale"},
                                  {"size": "small", "color": "blue", "shade": "dark", "texture": "striped"}],
                         ids=["red", "pale_yellow", "dark_blue_striped"])
def test_no_two_values_of_a_type_render_alike_on_any_shape(tiny_params, tmp_path, base):
    """Every value of every attribute type against every other value of that type, on every shape, at the
    smallest size: at least 4 pixels differ by more than 40 levels (so no value is invisible)."""
    from bindlab.render import single_objects, vocabulary_rows
    rows = vocabulary_rows(tiny_params, base)
    scenes = single_objects(tiny_params, [obj for _, _, obj in rows])
    render_to_npy(tiny_params, scenes, tmp_path / "v.npy", workers=1, progress=False)
    images = np.load(tmp_path / "v.npy").astype(int)
    index = {(t, value, obj["shape"]): i for i, (t, value, obj) in enumerate(rows)}
    checked = 0
    for t, values in tiny_params.vocab.attributes.items():
        for shape in tiny_params.vocab.shapes:
            for i, a in enumerate(values):
                for b in values[i + 1:]:
                    diff = np.abs(images[index[t, a, shape]] - images[index[t, b, shape]]).max(-1)
                    assert (diff > 40).sum() >= 4, (t, a, b, shape, base)
                    checked += 1
    assert checked == len(tiny_params.vocab.shapes) * sum(len(v) * (len(v) - 1) // 2
                                                          for v in tiny_params.vocab.attributes.values())


def test_vocabulary_sheet_shows_every_value_on_every_shape(tiny_params_file, tmp_path):
    import subprocess
    import sys
    from PIL import Image
    out = tmp_path / "vocab.png"
    r = subprocess.run([sys.executable, "-m", "bindlab.cli", "look", "--params", str(tiny_params_file),
                        "--data", str(tmp_path / "data"), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = load_params(tiny_params_file)
    n = len(p.vocab.shapes) * sum(len(v) for v in p.vocab.attributes.values())
    assert f"{n} images" in r.stdout
    w, h = Image.open(out).size
    assert w > len(p.vocab.shapes) * 128 and h > sum(len(v) for v in p.vocab.attributes.values()) * 128


def test_every_value_stays_legible_in_every_combination(tiny_params, tmp_path):
    """Each attribute value against every other value of its type, with the other types at every
    combination of their values (colour: the darkest, the lightest and a middle one), on every shape:
    never the same image (some pixel differs by more than 16 levels), and legible (at least 4 pixels
    differ by more than 40 levels) in at least 98% of the combinations; the misses are small squashed
    stars and diamonds inside a thick border, whose fill is a few pixels (README, Data contracts).
    And the fill keeps at least a fifth of every silhouette, so no border, aspect or size swallows
    the colour."""
    import itertools
    from bindlab.render import object_masks, single_objects
    vocab = tiny_params.vocab
    types = dict(vocab.attributes) | {"color": ["blue", "yellow", "red"], "shape": vocab.shapes}
    names = list(types)
    combos = list(itertools.product(*types.values()))
    scenes = single_objects(tiny_params, [dict(zip(names, c)) for c in combos])
    render_to_npy(tiny_params, scenes, tmp_path / "c.npy", workers=1, progress=False)
    s = tiny_params.render.image_size
    images = np.load(tmp_path / "c.npy").reshape(*(len(v) for v in types.values()), s, s, 3).astype(np.int16)
    for axis, t in enumerate(names):
        values = types[t]
        for i, j in itertools.combinations(range(len(values)), 2):
            diff = np.abs(np.take(images, i, axis=axis) - np.take(images, j, axis=axis)).max(-1)
            visible = (diff > 40).sum(axis=(-1, -2))  # per combination of the other types
            different = diff.max(axis=(-1, -2))
            worst = np.unravel_index(different.argmin(), different.shape)
            others = {n: types[n][k] for n, k in zip([n for n in names if n != t], worst)}
            assert different.min() > 16, (t, values[i], values[j], others)
            assert (visible >= 4).mean() >= 0.98, (t, values[i], values[j], float((visible >= 4).mean()))
    radii = look.size_radii(len(vocab.attributes["size"]))
    for shape, r, aspect, outline in itertools.product(vocab.shapes, radii, vocab.attributes["aspect"],
                                                       vocab.attributes["outline"]):
        _, fill, _, band = object_masks(shape, float(r) * s, "plain", tiny_params.render.supersample, s, aspect, outline)
        fill, band = np.asarray(fill, float) / 255, np.asarray(band, float) / 255
        assert fill.sum() >= 0.2 * (fill + band).sum(), (shape, r, aspect, outline, fill.sum(), band.sum())
