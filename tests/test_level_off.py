"""experiments/level_off.py: the plan's params files and looks, without training (the GPU run is in
docs/perception.md; `--small` runs the whole plan on the CPU in about two minutes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bindlab.params import load_params
from experiments.level_off import EXTRA_VARIANTS, LEVERS, LONG, LOOKS, OWN_FORMAT, make_params

ROOT = Path(__file__).resolve().parent.parent


def test_plan_params_are_valid_and_hold_the_plan(tmp_path):
    f = make_params(ROOT / "params.yaml", tmp_path / "p.yaml", 5000, small=False, benchmark_density=3)
    p = load_params(f)
    assert p.benchmark.density == 3 and p.train.checkpoint_every == 1000
    for _, variant in LONG + LEVERS:
        assert p.variant(variant).steps == 5000
    assert p.variant("ideal_batch_512").batch_size == 512 and p.variant("ideal").batch_size == 128
    assert p.variant("ideal_hardneg").hard_negatives == 3
    assert set(EXTRA_VARIANTS) <= set(p.variants) and set(OWN_FORMAT) <= set(p.variants)
    assert {look for look, _ in LONG + LEVERS} <= set(LOOKS)


def test_a_look_patches_what_the_renderer_reads():
    code = ("from experiments.level_off import patch_look; import bindlab.look as l, bindlab.render as r; "
            "patch_look('legible_c'); print([round(float(x), 3) for x in l.size_radii(3)], l.ASPECTS['tall'], r.TEXTURE_PERIOD)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == "[0.1, 0.15, 0.2] (0.5, 1.0) 4.0".split()
