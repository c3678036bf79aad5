"""Shared fixtures: a tiny study derived from the real params.yaml, in a temporary folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_params_dict(n: int = 300, bench: int = 60) -> dict:
    """The repository's params.yaml shrunk to a few hundred scenes (same vocabulary and variants)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for spec in raw["scene_sets"].values():
        spec["n"] = n
    raw["benchmark"]["n"] = bench
    raw["render"]["chunk"] = 64
    return raw


def write_params(folder: Path, raw: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def tiny_params_file(tmp_path: Path) -> Path:
    """Path of a tiny params.yaml in an empty temporary folder (outputs go to tmp_path / 'data')."""
    return write_params(tmp_path, tiny_params_dict())


@pytest.fixture
def tiny_params(tiny_params_file: Path):
    from bindlab.params import load_params
    return load_params(tiny_params_file)


def pytest_terminal_summary(terminalreporter):
    """The size of the fault-injection suite (tests/test_faults.py), as the issue asks to report it."""
    counts = {k: sum("test_faults.py::test_fault[" in getattr(r, "nodeid", "") for r in terminalreporter.stats.get(k, []))
              for k in ("passed", "failed", "skipped")}
    if sum(counts.values()):
        terminalreporter.write_line(f"fault injection: {sum(counts.values())} cases (artifact x damage x reader): "
                                    f"{counts['passed']} passed, {counts['failed']} failed, "
                                    f"{counts['skipped']} skipped by design")
