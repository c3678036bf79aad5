"""Where each stage writes under the data root (default `data/`). The one place paths are spelled."""
from __future__ import annotations

from pathlib import Path


class DataPaths:
    def __init__(self, root: str | Path = "data"):
        self.root = Path(root)

    # shared stages
    def scenes(self, scene_set: str) -> Path:
        return self.root / "scenes" / f"{scene_set}.parquet"

    def images(self, scene_set: str) -> Path:
        return self.root / "images" / f"{scene_set}.npy"

    def contact_sheet(self, scene_set: str) -> Path:
        return self.root / "images" / f"{scene_set}_contact.png"

    @property
    def benchmark(self) -> Path:
        return self.root / "benchmark"

    # per-variant stages
    def captions(self, variant: str) -> Path:
        return self.root / "captions" / variant / "captions.parquet"

    def stats(self, variant: str) -> Path:
        """Caption statistics of a variant (bindlab/stats.py)."""
        return self.root / "stats" / variant

    def validation(self, variant: str) -> Path:
        return self.root / "validation" / variant

    def audit(self, variant: str) -> Path:
        return self.root / "audit" / variant

    def model(self, variant: str, seed: int) -> Path:
        """Checkpoints of one training run."""
        return self.root / "models" / variant / f"seed{seed}"

    def metrics(self, variant: str, seed: int) -> Path:
        """train.tsv, eval.json and plots of one training run."""
        return self.root / "metrics" / variant / f"seed{seed}"

    @property
    def report(self) -> Path:
        return self.root / "report"
