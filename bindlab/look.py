"""What the vocabulary looks like: shape outlines, colours, textures, sizes, aspects, shades, outlines.

Kept apart from the renderer so params validation can check a vocabulary without importing it.
Shapes are polygons inside the unit circle (y grows downwards), so two objects whose bounding
circles are disjoint never overlap.
"""
from __future__ import annotations

import math

import numpy as np


def _regular(n: int, r: float = 1.0, phase: float = -90.0) -> list[tuple[float, float]]:
    return [(r * math.cos(math.radians(phase + 360 * i / n)), r * math.sin(math.radians(phase + 360 * i / n)))
            for i in range(n)]


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    outer = _regular(points)
    inner_pts = _regular(points, inner, -90.0 + 180.0 / points)
    return [p for pair in zip(outer, inner_pts) for p in pair]


def _heart(n: int = 48) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    y = y - (y.max() + y.min()) / 2
    scale = 1.0 / np.sqrt(x ** 2 + y ** 2).max()
    return list(zip((x * scale).tolist(), (y * scale).tolist()))


def _cross(arm: float = 0.34, reach: float = 0.94) -> list[tuple[float, float]]:
    a, r = arm, reach
    return [(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a), (a, r), (-a, r), (-a, a), (-r, a), (-r, -a), (-a, -a)]


# None = a circle (drawn as an ellipse, not a polygon)
SHAPES: dict[str, list[tuple[float, float]] | None] = {
    "circle": None,
    "square": [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)],
    "triangle": [(0.0, -1.0), (0.866, 0.5), (-0.866, 0.5)],
    "star": _star(),
    "heart": _heart(),
    "cross": _cross(),
    "hexagon": _regular(6, phase=0.0),
    "diamond": [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)],
    "pentagon": _regular(5),
    "octagon": _regular(8, phase=22.5),
}

TEXTURES = ("plain", "striped", "dotted", "checkered")

# Aspect: the silhouette squashed along one axis (x scale, y scale); it stays inside the bounding
# circle, so placement and overlap are unchanged. Visible on every shape, the circle included.
ASPECTS: dict[str, tuple[float, float]] = {"regular": (1.0, 1.0), "tall": (0.6, 1.0), "wide": (1.0, 0.6)}

# Shade: the fill colour mixed towards white (t > 0) or darkened (t < 0) by this fraction.
SHADES: dict[str, float] = {"pale": 0.4, "vivid": 0.0, "dark": -0.45}

# Outline: a band along the inside of the silhouette, this fraction of the silhouette's depth wide
# (depth: how far its innermost pixel lies from the edge). Relative to the depth, not to the bounding
# radius, so a squashed (tall/wide) shape or a thin star keeps as much fill, in proportion, as a round
# one: a thick border never swallows the fill colour. At least OUTLINE_MIN_PX image pixels per unit of
# fraction of a border (bordered >= 0.5 px, thickbordered >= 1 px) so a small shape's border stays
# visible. The band's colour contrasts with the (shaded) fill: white on dark fills, gray on light ones.
OUTLINES: dict[str, float] = {"unbordered": 0.0, "bordered": 0.2, "thickbordered": 0.4}
OUTLINE_MIN_PX = 2.5   # image pixels per unit of OUTLINES' fraction: 0.5 px bordered, 1 px thickbordered
OUTLINE_MAX = 0.45     # the band never takes more than this fraction of the depth
OUTLINE_LIGHT, OUTLINE_DARK = (255, 255, 255), (70, 70, 70)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30), "green": (40, 185, 50), "blue": (45, 90, 255), "yellow": (245, 225, 35),
    "purple": (155, 60, 215), "orange": (255, 140, 0), "white": (240, 240, 240), "cyan": (0, 215, 225),
    "pink": (255, 120, 190), "brown": (140, 85, 35), "gray": (128, 128, 128), "magenta": (230, 0, 230),
}

# Bounding-circle radius of the smallest and the largest size, as a fraction of the image side;
# sizes in between are spaced evenly.
RADIUS_RANGE = (0.12, 0.19)


def shaded(color: tuple[int, int, int], shade: str) -> tuple[int, int, int]:
    t = SHADES[shade]
    if t >= 0:
        return tuple(int(round(c + (255 - c) * t)) for c in color)
    return tuple(int(round(c * (1 + t))) for c in color)


def outline_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return OUTLINE_LIGHT if luminance < 150 else OUTLINE_DARK


def size_radii(n_sizes: int) -> np.ndarray:
    return np.linspace(*RADIUS_RANGE, n_sizes).astype(np.float32)


def unit_area(shape: str, aspect: str = "regular") -> float:
    """Area of the shape with bounding radius 1 (shoelace formula), squashed by its aspect."""
    sx, sy = ASPECTS[aspect]
    pts = SHAPES[shape]
    if pts is None:
        return math.pi * sx * sy
    x, y = np.array(pts).T
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) * sx * sy
