"""experiments/converged.py: the params files of the converged profile's runs, without training (the
whole runner, `--small`, takes about 7 minutes on 2 cores; the GPU run's reports go to results/converged/)."""
from __future__ import annotations

from pathlib import Path

import pytest
from bindlab.params import ParamsError, load_params
from experiments.converged import PROFILE, SEEDED, SEEDS, write_params

ROOT = Path(__file__).resolve().parent.parent


def test_converged_profile_trains_findings_1_4_7_to_the_level_off(tmp_path):
    p = load_params(write_params(ROOT / "params.yaml", tmp_path / "p.yaml", small=False))
    assert p.profile == PROFILE and p.study.seeds == list(SEEDS)
    # finding 7's long run is the ideal run itself, scored at every snapshot
    assert p.study.ideal_long == p.study.ideal and p.train.checkpoint_every == 1000
    runs = set(p.run_variants)
    assert {f"density_{k}" for k in range(6)} | {p.study.ideal} <= runs      # finding 1's sweep
    assert {"completeness_50", "saliency_100"} <= runs and set(SEEDED) <= runs  # finding 4 and its seeds
    assert all(p.variant(v).steps == 5000 and p.variant(v).batch_size == 128 for v in runs)
    # the data is the default study's: the profile changes no scene set, caption or benchmark knob
    default = load_params(ROOT / "params.yaml")
    assert p.scene_sets == default.scene_sets and p.benchmark == default.benchmark
    assert all(p.variant(v).model_copy(update={"steps": 0}) == default.variant(v).model_copy(update={"steps": 0})
               for v in runs)


def test_own_format_benchmark_names_k_types(tmp_path):
    p = load_params(write_params(ROOT / "params.yaml", tmp_path / "p.yaml", small=True, benchmark_density=3))
    assert p.benchmark.density == 3 and p.variant("ideal").steps == 40
    with pytest.raises(ParamsError, match="benchmark.density"):   # density 0 has no own-format benchmark
        load_params(write_params(ROOT / "params.yaml", tmp_path / "q.yaml", small=True, benchmark_density=0))
