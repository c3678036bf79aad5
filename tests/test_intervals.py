"""Bootstrap intervals over benchmark images (bindlab/intervals.py) on constructed outcomes whose
answer is known in closed form."""
from __future__ import annotations

import numpy as np
import pytest

from bindlab import intervals

N = 400


def half_wins(n: int = N) -> np.ndarray:
    return (np.arange(n) % 2).astype(float)   # exactly half of the images win


def test_interval_of_a_proportion_is_the_binomial_one():
    lo, hi = intervals.ratio_interval(half_wins(), np.ones(N))
    se = np.sqrt(0.25 / N)                       # 0.025
    assert lo == pytest.approx(0.5 - 1.96 * se, abs=0.006)
    assert hi == pytest.approx(0.5 + 1.96 * se, abs=0.006)


def test_items_of_an_image_move_together():
    """Four items per image with the same outcome are one unit, not four: the interval is as wide as
    for 400 units (a per-item bootstrap would give half the width)."""
    lo, hi = intervals.ratio_interval(4 * half_wins(), 4 * np.ones(N))
    assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.25 / N), abs=0.012)
    assert hi - lo > 1.6 * 2 * 1.96 * np.sqrt(0.25 / (4 * N))


def test_paired_difference_uses_the_same_images():
    """Variant B wins on the images A wins on plus 20 more: the difference is 0.05 on every
    resample of the same images, up to which of the 20 are drawn (sd sqrt(.05 .95 / 400) = 0.011),
    far narrower than two independent intervals (sd 0.035)."""
    a = half_wins()
    b = a.copy()
    b[np.flatnonzero(a == 0)[:20]] = 1
    diff = intervals.replicates(b, np.ones(N)) - intervals.replicates(a, np.ones(N))
    lo, hi = intervals.interval(diff)
    sd = np.sqrt(0.05 * 0.95 / N)
    assert (lo + hi) / 2 == pytest.approx(0.05, abs=0.004)
    assert hi - lo == pytest.approx(2 * 1.96 * sd, abs=0.01)
    assert lo > 0.02


def test_deterministic_and_every_resample_draws_n_images():
    w = intervals.image_weights(N)
    assert w.shape == (intervals.RESAMPLES, N) and (w.sum(1) == N).all()
    assert not w.flags.writeable
    assert intervals.ratio_interval(half_wins(), np.ones(N)) == intervals.ratio_interval(half_wins(), np.ones(N))


def test_resamples_without_any_unit_are_left_out():
    """A subset present on one image only: resamples that miss it have no value (NaN), not 0."""
    num, den = np.zeros(N), np.zeros(N)
    num[0] = den[0] = 1
    reps = intervals.replicates(num, den)
    assert np.isnan(reps).any() and np.nanmin(reps) == 1.0
    assert intervals.interval(reps) == [1.0, 1.0]
    assert intervals.interval(np.full(5, np.nan)) is None


def test_seed_spread_widens_the_interval():
    """Three seeds at 0.4, 0.5, 0.6 with no image noise: drawing seeds with replacement gives an
    interval for their mean around 0.5 of the width of the seeds' bootstrap (not zero); one seed
    passes through."""
    per_seed = np.tile([0.4, 0.5, 0.6], (intervals.RESAMPLES, 1))
    reps = intervals.seed_mean_replicates(per_seed, "v")
    lo, hi = intervals.interval(reps)
    assert lo < 0.45 and hi > 0.55 and np.mean(reps) == pytest.approx(0.5, abs=0.01)
    assert (intervals.seed_mean_replicates(per_seed[:, :1], "v") == 0.4).all()
    assert (intervals.seed_mean_replicates(per_seed, "v") == reps).all()
