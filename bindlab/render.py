"""Rendering: scene table -> uint8 image array, with Pillow.

Every (shape, size, aspect, texture, outline) has a fixed silhouette, so its anti-aliased masks (fill,
texture's second tone, outline band) are drawn once per process
at `supersample` times the resolution and reduced (box filter) to the image size; an image is then a
few masked pastes at whole-pixel positions. Chunks of scenes render in worker processes straight into
one memory-mapped .npy, so the bytes do not depend on the worker count.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import tempfile
import textwrap
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from tqdm import tqdm

from bindlab import look
from bindlab.contracts import SCENES, scenes_of
from bindlab.errors import StageError
from bindlab.io import atomic_path, staged, together
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.wording import full_captions

BACKGROUND = (0, 0, 0)
SHADE = 0.4  # the second tone of a textured object is its colour darkened to this factor
TEXTURE_PERIOD = 4.0  # pixels per texture cycle at 64 px; scales with the image size


def _texture_mask(texture: str, size: int, ss: int, image_size: int) -> np.ndarray:
    """Boolean (size, size) array at supersampled resolution: True where the second tone goes."""
    period = TEXTURE_PERIOD * image_size / 64 * ss
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    if texture == "plain":
        return np.zeros((size, size), dtype=bool)
    if texture == "striped":
        return ((xx + yy) % period) < period / 2
    if texture == "checkered":
        cell = period * 0.75
        return ((xx // cell + yy // cell) % 2).astype(bool)
    if texture == "dotted":
        period *= 1.25  # wider spacing so each dot stays round after downsampling
        c = size / 2 - period / 2  # a dot on the object's centre, so even a small object shows one
        return np.hypot((xx - c) % period - period / 2, (yy - c) % period - period / 2) < period * 0.3
    raise ValueError(f"unknown texture {texture!r}")


@lru_cache(maxsize=None)
def _unit_depth(shape: str, aspect: str, r: int = 64) -> float:
    """How far the silhouette's innermost pixel lies from its edge, in bounding radii: erode a
    radius-r drawing by a 3x3 minimum until nothing is left (the depth scales with the radius)."""
    sil = _draw(shape, aspect, 2 * r + 4, r)
    steps = 0
    while sil.getbbox() is not None:
        sil = sil.filter(ImageFilter.MinFilter(3))
        steps += 1
    return steps / r


def _draw(shape: str, aspect: str, big: int, r: float) -> Image.Image:
    """The filled silhouette, radius r pixels, centred in a big x big mask."""
    c = big / 2
    sx, sy = look.ASPECTS[aspect]
    silhouette = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(silhouette)
    pts = look.SHAPES[shape]
    if pts is None:
        draw.ellipse((c - r * sx, c - r * sy, c + r * sx, c + r * sy), fill=255)
    else:
        draw.polygon([(c + px * r * sx, c + py * r * sy) for px, py in pts], fill=255)
    return silhouette


@lru_cache(maxsize=None)
def _silhouette(shape: str, radius_px: float, ss: int, aspect: str, outline: str) -> tuple[np.ndarray, np.ndarray]:
    """(silhouette, outline band) at supersampled resolution, boolean; shared by every texture.
    The band is OUTLINES' fraction of the silhouette's depth wide (bindlab/look.py)."""
    side = int(math.ceil(2 * radius_px)) + 2
    big = side * ss
    r = radius_px * ss
    silhouette = _draw(shape, aspect, big, r)
    sil = np.asarray(silhouette) > 127
    band = np.zeros_like(sil)
    if look.OUTLINES[outline] > 0:
        fraction, depth = look.OUTLINES[outline], _unit_depth(shape, aspect) * r  # supersampled pixels
        width = max(fraction * depth, fraction * look.OUTLINE_MIN_PX * ss)
        inner = silhouette
        for _ in range(max(1, int(round(min(width, look.OUTLINE_MAX * depth))))):
            inner = inner.filter(ImageFilter.MinFilter(3))  # one supersampled pixel a step
        band = sil & ~(np.asarray(inner) > 127)
    return sil, band


@lru_cache(maxsize=None)
def object_masks(shape: str, radius_px: float, texture: str, ss: int, image_size: int,
                 aspect: str = "regular", outline: str = "unbordered") -> tuple[int, Image.Image, Image.Image, Image.Image]:
    """(box side, primary-tone mask, second-tone mask, outline mask) at image resolution, anti-aliased."""
    side = int(math.ceil(2 * radius_px)) + 2
    big = side * ss
    sil, band = _silhouette(shape, radius_px, ss, aspect, outline)
    second = _texture_mask(texture, big, ss, image_size) & sil & ~band if texture != "plain" else np.zeros_like(sil)
    primary = sil & ~second & ~band

    def reduce(mask: np.ndarray) -> Image.Image:  # box filter: the anti-aliasing
        img = Image.fromarray((mask * 255).astype(np.uint8))
        return img.reduce(ss) if ss > 1 else img

    return side, reduce(primary), reduce(second), reduce(band)


class _Job:
    """What a worker needs: per-object arrays, shared with forked workers without pickling."""

    BLOCK = 256  # images drawn on one tall canvas, converted to numpy in one go

    def __init__(self, params: Params, scenes: pl.DataFrame, out: Path):
        r = params.render
        self.image_size, self.ss = r.image_size, r.supersample
        self.out = out
        self.write = True  # False only to benchmark rendering without the file writes
        s = r.image_size
        self.shapes = scenes["shape"].to_list()
        self.textures = scenes["texture"].to_list()
        self.aspects = scenes["aspect"].to_list()
        self.outlines = scenes["outline"].to_list()
        self.colors = [look.shaded(look.COLORS[c], sh) for c, sh in zip(scenes["color"].to_list(), scenes["shade"].to_list())]
        self.shades = [tuple(int(v * SHADE) for v in c) for c in self.colors]
        self.edges = [look.outline_color(c) for c in self.colors]
        self.radius_px = (scenes["radius"].to_numpy() * s).astype(np.float64).tolist()
        self.cx = (scenes["x"].to_numpy().astype(np.float64) * s).tolist()
        self.cy = (scenes["y"].to_numpy().astype(np.float64) * s).tolist()
        ids = scenes["scene_id"].to_numpy()
        # Each image is drawn inside a band of a tall canvas; an object outside its image would
        # bleed into the neighbour's band, so such a scene table is refused.
        x, y, rad = (scenes[c].to_numpy() for c in ("x", "y", "radius"))
        outside = (x - rad < -0.01) | (x + rad > 1.01) | (y - rad < -0.01) | (y + rad > 1.01)
        if outside.any():
            raise StageError(f"scene {int(ids[outside.argmax()])}: an object lies outside the image "
                             f"(x={x[outside.argmax()]:.3f}, y={y[outside.argmax()]:.3f}, radius={rad[outside.argmax()]:.3f})")
        self.n = int(ids.max()) + 1 if len(ids) else 0
        self.bounds = np.searchsorted(ids, np.arange(self.n + 1)).tolist()

    def draw(self, canvas: Image.Image, i: int, top: int) -> None:
        """Draw scene i onto the canvas with its top edge at row `top`."""
        s = self.image_size
        for k in range(self.bounds[i], self.bounds[i + 1]):
            side, primary, second, band = object_masks(self.shapes[k], self.radius_px[k], self.textures[k],
                                                       self.ss, s, self.aspects[k], self.outlines[k])
            x0 = int(round(self.cx[k] - side / 2))
            y0 = top + int(round(self.cy[k] - side / 2))
            box = (x0, y0, x0 + side, y0 + side)
            canvas.paste(self.colors[k], box, primary)
            if self.textures[k] != "plain":
                canvas.paste(self.shades[k], box, second)
            if self.outlines[k] != "unbordered":
                canvas.paste(self.edges[k], box, band)

    def render_range(self, lo: int, hi: int) -> None:
        # A padding band between images catches the sub-pixel anti-aliased edge a rounded position
        # can push out of its image, so each image equals its stand-alone render.
        # Plain positional writes into the .npy: much cheaper than page faults on a memory map.
        s, pad = self.image_size, 2
        image_bytes = s * s * 3
        fd = os.open(self.out, os.O_WRONLY)
        try:
            for a in range(lo, hi, self.BLOCK):
                b = min(a + self.BLOCK, hi)
                canvas = Image.new("RGB", (s, (s + 2 * pad) * (b - a)), BACKGROUND)
                for i in range(a, b):
                    self.draw(canvas, i, (i - a) * (s + 2 * pad) + pad)
                block = np.ascontiguousarray(np.asarray(canvas).reshape(b - a, s + 2 * pad, s, 3)[:, pad:pad + s])
                if self.write:
                    _pwrite_all(fd, block.data, self.offset + a * image_bytes)
        finally:
            os.close(fd)


def _pwrite_all(fd: int, data, offset: int) -> None:
    """Write every byte: on a filling disk a write can come back short, and only the next one fails
    (OSError ENOSPC, which reaches the caller through the pool)."""
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


_JOB: _Job | None = None


def _work(span: tuple[int, int]) -> int:
    _JOB.render_range(*span)
    return span[1] - span[0]


def render_to_npy(params: Params, scenes: pl.DataFrame, out: str | Path, workers: int | None = None,
                  progress: bool = True, _write: bool = True) -> None:
    """Render every scene of the table (scene_id 0..n-1) into `out` (.npy, uint8 N,H,W,3), atomically."""
    global _JOB

    workers = workers or params.render.workers
    scenes = scenes.sort(["scene_id", "obj"])
    s = params.render.image_size
    with atomic_path(out) as tmp:
        job = _Job(params, scenes, tmp)
        header = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(job.n, s, s, 3))
        job.offset = header.offset
        job.write = _write
        del header
        chunk = params.render.chunk
        spans = [(lo, min(lo + chunk, job.n)) for lo in range(0, job.n, chunk)]
        bar = tqdm(total=job.n, desc=f"render {Path(out).name}", unit="img", disable=not progress)
        _JOB = job
        try:
            if workers == 1 or len(spans) <= 1:
                for span in spans:
                    bar.update(_work(span))
            else:
                with mp.get_context("fork").Pool(workers) as pool:
                    for done in pool.imap_unordered(_work, spans):
                        bar.update(done)
        finally:
            _JOB = None
            bar.close()


def contact_sheet(images: np.ndarray, captions: list[str], out: str | Path, cols: int = 4,
                  scale: int = 3, title: str | None = None) -> None:
    """A PNG grid of images (upscaled, nearest) with their captions underneath, for people."""
    n = len(images)
    side = images.shape[1] * scale
    font = ImageFont.load_default(size=13)
    wrap = max(16, side // 7)
    lines = [textwrap.wrap(c, wrap) for c in captions]
    text_h = 16 * max(len(l) for l in lines) + 8
    rows = math.ceil(n / cols)
    head = 24 if title else 0
    sheet = Image.new("RGB", (cols * (side + 8) + 8, head + rows * (side + text_h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((8, 4), title, fill=(0, 0, 0), font=font)
    for i in range(n):
        x = 8 + (i % cols) * (side + 8)
        y = head + 8 + (i // cols) * (side + text_h + 8)
        sheet.paste(Image.fromarray(np.ascontiguousarray(images[i])).resize((side, side), Image.NEAREST), (x, y))
        for j, line in enumerate(lines[i]):
            draw.text((x, y + side + 4 + 16 * j), line, fill=(0, 0, 0), font=font)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")


def render_stage(params: Params, paths: DataPaths, scene_set: str, workers: int | None = None) -> None:
    scenes = scenes_of(params, paths, scene_set)
    with together():
        render_to_npy(params, scenes, paths.images(scene_set), workers=workers)
        images = np.load(staged(paths.images(scene_set)), mmap_mode="r")
        first = scenes.filter(pl.col("scene_id") < 16)
        contact_sheet(images[:16], full_captions(params, first), paths.contact_sheet(scene_set),
                      title=f"scene set {scene_set!r}: first 16 scenes and their complete captions")
    print(f"rendered {len(images)} images {images.shape[1:]} -> {paths.images(scene_set)}")


# --- the vocabulary sheet: every value of every attribute type, on every shape ---------------------

def single_objects(params: Params, rows: list[dict]) -> pl.DataFrame:
    """A scene table of one-object scenes, the object centred, from {attribute type or shape: value}
    (unnamed attributes take their type's first value; the radius follows the size)."""
    vocab = params.vocab
    radii = look.size_radii(len(vocab.attributes["size"]))
    out = []
    for i, row in enumerate(rows):
        obj = {t: values[0] for t, values in vocab.attributes.items()} | {"shape": vocab.shapes[0]} | row
        r = float(radii[vocab.attributes["size"].index(obj["size"])])
        out.append({"scene_id": i, "obj": 0, "n_objects": 1, **obj, "x": 0.5, "y": 0.5, "radius": r,
                    "x0": 0.5 - r, "y0": 0.5 - r, "x1": 0.5 + r, "y1": 0.5 + r,
                    "area": look.unit_area(obj["shape"], obj["aspect"]) * r * r, "saliency_rank": 0, "unseen": False})
    return pl.DataFrame(out).select(list(SCENES)).cast(SCENES)


def vocabulary_rows(params: Params, base: dict | None = None) -> list[tuple[str, str, dict]]:
    """(type, value, object) for every value of every attribute type on every shape; the other
    attributes at `base` (default: the smallest size, so legibility is judged where it is hardest)."""
    vocab = params.vocab
    base = base or {"size": vocab.attributes["size"][0]}
    return [(t, value, base | {t: value, "shape": shape})
            for t, values in vocab.attributes.items() for value in values for shape in vocab.shapes]


def vocabulary_sheet(params: Params, out: str | Path) -> int:
    """A PNG: one row per attribute value, one column per shape, each at render.image_size (upscaled)."""
    rows = vocabulary_rows(params)
    scenes = single_objects(params, [obj for _, _, obj in rows])
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "vocab.npy"
        render_to_npy(params, scenes, npy, workers=1, progress=False)
        images = np.load(npy)
    texts = [f"{value} {obj['shape']}" if obj["shape"] == params.vocab.shapes[0] else obj["shape"]
             for t, value, obj in rows]
    contact_sheet(images, texts, out, cols=len(params.vocab.shapes), scale=2,
                  title="every value of every attribute type (one row each) on every shape; other attributes "
                        "at their first value, size small unless the row is a size")
    return len(images)
