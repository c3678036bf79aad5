"""The tiny study the tests build on: the repository's params.yaml shrunk to 300 scenes, made by the
real stages. conftest.py builds it once per session (`tiny_data`: the data of every variant below and
the benchmark; `tiny_study`: the same with `ideal` trained a few steps); a test that writes into it
works on its own copy (`copy_study`).

- `tiny_params_dict`, `write_params`: params.yaml shrunk, same vocabulary and variants, for tests
  that only load params or write their own metrics files;
- `tiny_raw`: the tiny study's params: one 300-scene set of 2-3 objects, a 60-scene benchmark, the
  variants of `VARIANTS` (each with the knobs the statistics, validation and audit tests check) and a
  tiny model; `build_data` runs the data stages on them;
- `pipeline_raw`, `project`, `run`, `dvc`, `make_study`: a git + DVC project of the repository's
  code and dvc.yaml with tiny params (every variant names its scene set, as dvc.yaml needs), and the
  commands that drive it.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_MODEL = {"embed_dim": 32, "tokenizer": "words",
              "vision": {"image_size": 64, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16,
                         "block_type": "custom"},
              "text": {"context_length": 48, "width": 32, "heads": 2, "layers": 1, "block_type": "custom"}}

# The tiny study's variants, declared here so the tests do not depend on params.yaml's current list.
VARIANTS = {
    "ideal": {"scenes": "train"},
    "density_2": {"scenes": "train", "density": 2},
    "one_object": {"scenes": "train", "objects_mentioned": 1},
    "completeness_50": {"scenes": "train", "completeness": 0.5},
    "saliency_100": {"scenes": "train", "objects_mentioned": 1, "saliency_bias": 1.0},
    "natural": {"scenes": "train", "density": 1, "completeness": 0.5, "saliency_bias": 1.0},
    "hardneg": {"scenes": "train", "density": 2, "hard_negatives": 2, "order": "left_to_right"},
    "hn2": {"scenes": "train", "hard_negatives": 2},
}


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


def tiny_raw(steps: int = 6, batch: int = 32) -> dict:
    """The tiny study's params: 300 scenes, a 60-scene benchmark, `VARIANTS`, a tiny model."""
    raw = tiny_params_dict(n=300, bench=60)
    # 2-3 objects while the benchmark has 2-4: bench binding's "trained-on counts" line is exercised
    raw["scene_sets"] = {"train": {**raw["scene_sets"]["train"], "objects": {2: 0.5, 3: 0.5}}}
    raw["variants"] = copy.deepcopy(VARIANTS)
    raw["base"].update(steps=steps, batch_size=batch)
    raw["model"] = {"name": "tiny", "configs": {"tiny": copy.deepcopy(TINY_MODEL)}}
    raw["train"] = {"lr": 0.002, "min_lr_ratio": 0.1, "warmup": 2, "weight_decay": 0.1, "threads": 1,
                    "checkpoint_every": 3, "log_every": 1, "eval_batch": 128}
    return raw


def build_data(folder: Path, raw: dict):
    """Runs the real data stages into folder/data (the scene set, the captions of every variant, the
    benchmark); -> (params, paths)."""
    from bindlab.benchmark import benchmark_stage
    from bindlab.captions import captions_stage
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    from bindlab.render import render_stage
    from bindlab.scenes import sample_stage
    params = load_params(write_params(folder, raw))
    paths = DataPaths(folder / "data")
    for scene_set in sorted({params.variant(v).scenes for v in raw["variants"]}):
        sample_stage(params, paths, scene_set)
        render_stage(params, paths, scene_set, workers=1)
    for v in raw["variants"]:
        captions_stage(params, paths, v)
    benchmark_stage(params, paths, workers=1)
    return params, paths


def copy_study(study: Path, folder: Path):
    """A copy of a built study (its params.yaml and data/) in `folder`, for a test that writes into
    it; -> (params, paths, params file)."""
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    shutil.copytree(study, folder, dirs_exist_ok=True)
    return load_params(folder / "params.yaml"), DataPaths(folder / "data"), folder / "params.yaml"


def digest(folder: Path) -> dict[str, str]:
    """Every file under folder with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the pipeline: a git + DVC project ---------------------------------------------------------

def pipeline_raw(variants=("ideal", "one_object"), steps: int = 4) -> dict:
    """Params of a tiny DVC project: variants of one 300-scene set, a 60-scene benchmark, a tiny
    model trained a few steps, one seed."""
    r = tiny_raw(steps=steps, batch=32)
    knobs = {"ideal": {}, "one_object": {"objects_mentioned": 1}, "density_1": {"density": 1}}
    r["variants"] = {v: {"scenes": "train", **knobs[v]} for v in variants}
    r["study"] = dict(r["study"], seeds=[0], min_effect=0.05)
    r["profile"], r["profiles"] = "default", {"default": {}}
    return r


def project(folder: Path, r: dict) -> Path:
    """A git + DVC project in `folder`: the repository's code, dvc.yaml and DVC config, tiny params."""
    for name in ("bindlab", "tasks", "flows", "results"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml", "Makefile", "README.md"):
        shutil.copy(REPO / name, folder / name)
    # not config.local: `make study` there points cache.dir at the machine's shared cache, and a tiny
    # project that used it would restore stages another test (or an earlier session) computed
    shutil.copytree(REPO / ".dvc", folder / ".dvc",
                    ignore=shutil.ignore_patterns("cache", "tmp", "site", "config.local"))
    write_params(folder, r)
    run(folder, "git", "init", "-q")
    run(folder, "git", "add", "-A")
    run(folder, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny study")
    return folder


_PINNED = threading.local()


def pin_environ(environ: dict) -> None:
    """Subprocesses started from this thread get `environ` (the session's start), not os.environ: a
    study on the background thread (tests/background.py) must not see a test's monkeypatched PATH."""
    _PINNED.environ = environ


def env() -> dict:
    bin_dir = str(Path(sys.executable).parent)
    base = getattr(_PINNED, "environ", None) or dict(os.environ)
    return base | {"PATH": bin_dir + os.pathsep + base.get("PATH", ""), "DVC_NO_ANALYTICS": "1"}


def run(folder: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=folder, env=env(), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def make_study(folder: Path, cache: Path) -> str:
    """`make study` with this interpreter's environment as the venv (never reinstalled: -o) and `cache`
    as the user-level DVC cache; -> its output."""
    venv = Path(sys.prefix)
    r = run(folder, "make", "study", f"VENV={venv}", "-o", f"{venv}/bin/python", f"BINDLAB_DVC_CACHE={cache}")
    return r.stdout + r.stderr


def dvc(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(folder, sys.executable, "-m", "dvc", *args, check=check)


def stale(folder: Path) -> set[str]:
    """The stages `dvc status` reports as changed."""
    return set(json.loads(dvc(folder, "status", "--json").stdout or "{}"))
