"""The training sampler: which images make up each training batch, as a pure function of (seed, step).

Training (bindlab/train.py) draws its batches here, and so do the statistics of what those batches ask
of the model (bindlab/stats.py), which must see exactly the batches training sees without importing
torch. numpy only, so any stage can afford it.
"""
from __future__ import annotations

import numpy as np


def batch_indices(n: int, seed: int, step: int, batch_size: int) -> np.ndarray:
    """Image ids (0..n-1) of step `step`: consecutive slices of a fresh permutation per epoch, sorted
    (so memory-mapped reads go forward). A batch that straddles two epochs takes the end of one
    permutation and the start of the next, so it may hold one image twice."""
    start = step * batch_size
    pos = np.arange(start, start + batch_size)
    epochs = pos // n
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        sel = epochs == e
        out[sel] = perm[pos[sel] % n]
    return np.sort(out)


def batches(n: int, seed: int, steps: int, batch_size: int) -> np.ndarray:
    """(steps, batch_size) image ids: the batches of steps 0..steps-1, as training draws them."""
    out = np.empty((steps, batch_size), dtype=np.int64)
    for step in range(steps):
        out[step] = batch_indices(n, seed, step, batch_size)
    return out
