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

    def chance(self, seed: int) -> Path:
        """The measured chance level of a seed, shared by every variant (`bindlab chance`). Not under
        metrics/, whose folders are variants."""
        return self.root / "chance" / f"seed{seed}.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    # run records: what differs between two runs of the same inputs (wall-clock times, GX Data Docs).
    # Not declared in dvc.yaml, so never hashed; nothing downstream depends on them.
    def record(self, out: str | Path) -> Path:
        """The run-record folder of a stage output folder: `data/X/...` -> `data/runs/X/...`."""
        out = Path(out)
        try:
            return self.root / "runs" / out.relative_to(self.root)
        except ValueError:  # an output outside the data root keeps its records beside it
            return out / "runs"

    def timing(self, out: str | Path) -> Path:
        """Wall-clock figures of the run whose outputs are in `out` (e.g. `metrics(V, S)`)."""
        return self.record(out) / "timing.json"
