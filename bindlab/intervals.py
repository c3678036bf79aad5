"""95% bootstrap intervals over benchmark images, for one run and for the difference of two runs.

Every binding metric is a ratio of sums over benchmark images: sum over images of `num` / sum of
`den` (pairwise: wins of the image's items / its items; strict: 0/1 per image / 1; probe: wins /
probes). The image is the unit of resampling because the items and probes of one image share its
picture and caption, so they are not independent; resampling images keeps them together.

A resample is a row of a (B, n_images) matrix of multinomial counts (how often each image is drawn),
so all B replicates of a metric are two matrix-vector products. The matrix depends only on
(n_images, seed), so two variants evaluated on the same benchmark see the same resamples: their
difference per replicate is the paired bootstrap of the difference. With several seeds, each
replicate also draws the seeds with replacement, so the interval carries the seed spread as well.
"""
from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

RESAMPLES = 1000
SEED = 20250710   # fixed: the same per-image outcomes give the same interval bytes
LEVEL = 0.95


@lru_cache(maxsize=4)
def image_weights(n_images: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n_images) float64 draw counts; each row sums to n_images. Read-only (cached)."""
    rng = np.random.default_rng([seed, n_images])
    w = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=resamples).astype(np.float64)
    w.setflags(write=False)
    return w


def replicates(num: np.ndarray, den: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(B,) bootstrap replicates of sum(num) / sum(den); NaN where a resample holds no unit."""
    w = image_weights(len(num)) if weights is None else weights
    top, bottom = w @ np.asarray(num, np.float64), w @ np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


def interval(reps: np.ndarray, digits: int = 4) -> list[float] | None:
    """The central LEVEL percentile interval of the replicates, rounded (None if none is defined)."""
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return None
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = np.percentile(reps, [tail, 100 - tail])
    return [round(float(lo), digits), round(float(hi), digits)]


def ratio_interval(num: np.ndarray, den: np.ndarray) -> list[float] | None:
    return interval(replicates(num, den))


def seed_noise(b: int, sd: float, name: str) -> np.ndarray:
    """(b,) draws of N(0, sd): the seed-to-seed spread a one-seed run cannot show, added to its
    replicates (deterministic per variant `name`, independent across variants)."""
    return np.random.default_rng([SEED, 1, zlib.crc32(name.encode())]).normal(0.0, sd, b)


def seed_mean_replicates(per_seed: np.ndarray, name: str) -> np.ndarray:
    """(B, k) replicates of k seeds -> (B,) replicates of their mean, the seeds drawn with
    replacement in each replicate (deterministic per variant `name`, independent across variants:
    seed s of two variants are different training runs, so they are not paired)."""
    b, k = per_seed.shape
    if k == 1:
        return per_seed[:, 0]
    rng = np.random.default_rng([SEED, k, zlib.crc32(name.encode())])
    pick = rng.integers(0, k, size=(b, k))
    return np.take_along_axis(per_seed, pick, axis=1).mean(axis=1)
