"""Fault injection: every artifact kind x every damage x every stage that reads it.

A copy of the session's tiny study (tests/conftest.py) is taken once through every stage that reads
it, for `ideal` (through the CLI). Each case damages one file, runs one reading command in-process
(`bindlab.cli.main`, no subprocess: torch is imported once), and checks the contract of bad input:
exit status 2, one line on stderr (no traceback) naming the file, nothing in the data folder written
or changed; then restores the file. Damages that cannot apply to a format
map to its analogue (a missing column of an array is a missing axis; of a JSON file a missing key; a
wrong row count of a JSON file is a record that disagrees with its neighbours); the few cases where
the stage is designed to go on without the file are listed in SKIPS with the reason.
`conftest.pytest_terminal_summary` prints the number of cases.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from bindlab.cli import main
from tiny import REPO, copy_study

DAMAGES = ("truncated", "junk", "empty", "column", "dtype", "rows", "missing")

# The reading commands; {data} is the data root.
COMMANDS = {
    "sample": ["sample", "--scenes", "train"],
    "render": ["render", "--scenes", "train", "--workers", "1"],
    "captions": ["captions", "--variant", "ideal"],
    "benchmark": ["benchmark", "--workers", "1"],
    "stats": ["stats", "--variant", "ideal"],
    "validate --variant": ["validate", "--variant", "ideal"],
    "validate --scenes": ["validate", "--scenes", "train"],
    "validate --benchmark": ["validate", "--benchmark"],
    "audit --variant": ["audit", "--variant", "ideal"],
    "audit --overview": ["audit", "--overview"],
    "train": ["train", "--variant", "ideal", "--no-progress"],
    "evaluate --variant": ["evaluate", "--variant", "ideal"],
    "evaluate --checkpoint": ["evaluate", "--checkpoint", "{data}/models/ideal/seed0/last.pt",
                              "--out", "{data}/metrics/external/last"],
    "report": ["report"],
}


@dataclass
class Artifact:
    kind: str
    path: str                 # relative to the data root ("params.yaml": the params file)
    readers: tuple[str, ...]
    column: str = ""          # the column / key the "column" damage removes
    retype: str = ""          # the column / key the "dtype" damage gives another type
    rows: object = None       # json/params: the "rows" damage (a callable on the loaded object)
    skips: dict = field(default_factory=dict)  # (damage, reader) -> why the stage goes on by design


def _bump(key, by=1):
    def f(obj):
        obj[key] = obj[key] + by if isinstance(obj[key], int) else obj[key] + "_other"
    return f


def _drop_first_expectation(obj):
    obj["expectations"] = obj["expectations"][1:]


def _short_color_list(raw):
    raw["vocab"]["attributes"]["color"] = raw["vocab"]["attributes"]["color"][:1]


def _not_validated(reader):
    return {("missing", reader): "by design: without results.json the page shows the target as 'not validated'"}


ARTIFACTS = [
    Artifact("scene table", "scenes/train.parquet",
             ("render", "captions", "stats", "validate --variant", "validate --scenes"), "color", "x"),
    Artifact("image array", "images/train.npy",
             ("validate --variant", "validate --scenes", "audit --variant", "train")),
    Artifact("captions", "captions/ideal/captions.parquet",
             ("stats", "validate --variant", "audit --variant", "train"), "caption", "scene_id"),
    Artifact("stats", "stats/ideal/captions.parquet", ("audit --variant",), "n_words", "n_mentioned"),
    Artifact("stats", "stats/ideal/mentions.parquet", ("audit --variant",), "n_attrs", "saliency_rank"),
    Artifact("stats", "stats/ideal/summary.json", ("audit --variant", "audit --overview"), "means", "captions",
             _bump("captions"), {("missing", "audit --overview"):
                                 "by design: the overview lists a variant without statistics as not computed"}),
    Artifact("validation verdict", "validation/ideal/passed.json", ("train",), "target", "expectations",
             _bump("target")),
    Artifact("validation verdict", "validation/ideal/results.json", ("audit --variant", "audit --overview"),
             "expectations", "success", _drop_first_expectation,
             _not_validated("audit --variant") | _not_validated("audit --overview")),
    Artifact("benchmark files", "benchmark/scenes.parquet", ("validate --benchmark", "evaluate --variant"),
             "outline", "x"),   # drops an attribute type (outline): part of the contract too
    Artifact("benchmark files", "benchmark/items.parquet", ("validate --benchmark", "evaluate --variant"),
             "negative", "scene_id"),
    Artifact("benchmark files", "benchmark/probes.parquet", ("validate --benchmark", "evaluate --variant"),
             "false_caption", "probe_id"),
    Artifact("benchmark files", "benchmark/images.npy", ("validate --benchmark", "evaluate --variant")),
    Artifact("benchmark files", "benchmark/counterfactual.npy", ("validate --benchmark", "evaluate --variant")),
    Artifact("benchmark files", "benchmark/replace.parquet", ("validate --benchmark",), "value", "obj"),
    Artifact("benchmark files", "benchmark/replace_counterfactual.npy", ("validate --benchmark",)),
    Artifact("checkpoint", "models/ideal/seed0/last.pt", ("evaluate --variant", "evaluate --checkpoint", "train"),
             "model", "step", skips={("missing", "train"): "by design: without last.pt training starts at step 0"}),
    Artifact("chance level", "chance/seed0.json", ("evaluate --variant",), "chance_measured", "eval_batch",
             _bump("seed"), {("missing", "evaluate --variant"):
                             "by design: without the seed's chance file evaluate measures the chance level itself"}),
    Artifact("eval.json", "metrics/ideal/seed0/eval.json", ("report",), "chance", "i2t_pairwise", _bump("seed")),
    Artifact("per-image outcomes", "metrics/ideal/seed0/per_image.parquet", ("report",), "i2t_pairwise:num",
             "i2t_pairwise:den"),
    Artifact("curve", "metrics/ideal/seed0/curve.json", ("report",), "points", "batch_size", _bump("seed"),
             {("missing", "report"): "by design: a run without its curve is reported without the curve plot"}),
    Artifact("params", "params.yaml", tuple(COMMANDS), "vocab", "scene_sets.train.n", _short_color_list),
]

CASES = [pytest.param(a, d, r, id=f"{a.path}-{d}-{r.replace(' --', '_')}")
         for a in ARTIFACTS for d in DAMAGES for r in a.readers]


# --- the study, read once by every stage ---------------------------------------------------------

@pytest.fixture(scope="module")
def study(tiny_study, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    params, paths, params_file = copy_study(tiny_study, folder)
    common = ["--params", str(params_file), "--data", str(paths.root)]
    # the clean study through every reader: each contract accepts what the stages write
    for cmd in (["stats", "--variant", "ideal"], ["validate", "--variant", "ideal"],
                ["audit", "--variant", "ideal"], ["audit", "--overview"],
                ["train", "--variant", "ideal", "--no-progress"], ["chance", "--seed", "0"],
                ["evaluate", "--variant", "ideal"],
                ["evaluate", "--curve", "--variant", "ideal"], ["report"]):
        assert main([*cmd, *common]) == 0, cmd
    pristine = folder / "pristine"
    shutil.copytree(folder / "data", pristine / "data")
    shutil.copy2(folder / "params.yaml", pristine / "params.yaml")
    return folder


def _snapshot(root: Path) -> dict:
    """Every path under root with its size, mtime, inode and bytes (a rename-over changes the inode;
    an in-place write the mtime and bytes). The bytes themselves, not a hash of them: comparing two
    snapshots is then a memory compare, several times faster than hashing the study twice per case."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        content = p.read_bytes() if p.is_file() else b"dir"
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns, st.st_ino, content)
    return out


# --- damages ----------------------------------------------------------------------------------

def _damage(path: Path, damage: str, a: Artifact) -> None:
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "junk":
        path.write_bytes(np.random.default_rng(13).bytes(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "missing":
        path.unlink()
    elif path.suffix == ".parquet":
        _damage_table(path, damage, a)
    elif path.suffix == ".npy":
        arr = np.load(path)
        # an array has no columns: its analogue is a missing axis (the colour channels)
        np.save(path, {"column": arr[..., 0], "dtype": arr.astype(np.float32), "rows": arr[:-1]}[damage])
    elif path.suffix == ".json":
        obj = json.loads(data)
        _edit(obj, damage, a)
        path.write_text(json.dumps(obj))
    elif path.suffix == ".pt":
        ck = torch.load(path, weights_only=True)
        if damage == "rows":  # a weight matrix one row short: the checkpoint of another model size
            ck["model"]["positional_embedding"] = ck["model"]["positional_embedding"][:-1]
        else:
            _edit(ck, damage, a)
        torch.save(ck, path)
    elif path.suffix == ".yaml":
        raw = yaml.safe_load(data)
        _edit(raw, damage, a)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    else:
        raise AssertionError(f"no damage {damage} for {path}")


def _edit(obj, damage: str, a: Artifact) -> None:
    """column: drop a key; dtype: a key's value as a string; rows: the artifact's own analogue."""
    if damage == "column":
        del obj[a.column]
    elif damage == "dtype":
        *parents, last = a.retype.split(".")
        for k in parents:
            obj = obj[k]
        obj[last] = f"{obj[last]} (edited)"  # a string where the contract wants a number / bool
    else:
        a.rows(obj)


def _damage_table(path: Path, damage: str, a: Artifact) -> None:
    t = pl.read_parquet(path)
    if damage == "column":
        t = t.drop(a.column)
    elif damage == "dtype":
        t = t.with_columns(pl.col(a.retype).cast(pl.String))
    else:  # rows: the table of a bigger study -- the rows again, with every id shifted past the last
        ids = [c for c in ("scene_id", "item_id", "probe_id", "row") if c in t.columns]
        t = pl.concat([t, t.with_columns(pl.col(c) + t[c].max() + 1 for c in ids)])
    t.write_parquet(path)


# --- the cases --------------------------------------------------------------------------------

@pytest.mark.parametrize("a, damage, reader", CASES)
def test_fault(study, a, damage, reader, capsys):
    if (damage, reader) in a.skips:
        pytest.skip(a.skips[(damage, reader)])
    data, params_file = study / "data", study / "params.yaml"
    target = params_file if a.path == "params.yaml" else data / a.path
    original = study / "pristine" / ("params.yaml" if a.path == "params.yaml" else f"data/{a.path}")
    argv = [x.format(data=data) for x in COMMANDS[reader]] + ["--params", str(params_file), "--data", str(data)]
    _damage(target, damage, a)
    capsys.readouterr()
    before = _snapshot(data)
    try:
        code = main(argv)
        err = capsys.readouterr().err
    finally:
        after = _snapshot(data)
        if before != after:  # a failing case must not spoil the next ones
            shutil.rmtree(data)
            shutil.copytree(study / "pristine" / "data", data)
        shutil.copy2(original, target)
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {err[-2000:]}"
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert str(target) in lines[0], lines[0]
    if a.path == "params.yaml":
        if damage in ("column", "dtype"):
            assert (a.column if damage == "column" else a.retype) in lines[0], lines[0]
    else:
        assert "`bindlab " in lines[0], lines[0]  # the command that regenerates it
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"written or changed: {changed}"


def test_documented_tables_are_the_contracts():
    """docs/contracts.md's scene, caption, item and replace tables list exactly the columns and types of
    bindlab/contracts.py."""
    import re
    from bindlab.contracts import CAPTIONS, ITEMS, REPLACE, SCENES

    def notation(dtype) -> str:
        if isinstance(dtype, pl.List):
            return f"list[{notation(dtype.inner)}]"
        return {pl.Int8: "i8", pl.Int64: "i64", pl.Float32: "f32", pl.String: "str", pl.Boolean: "bool"}[dtype]

    readme = (REPO / "docs" / "contracts.md").read_text()
    tables = (("**Scene table**", SCENES), ("**Captions**", CAPTIONS), ("`items.parquet`", ITEMS),
              ("`replace.parquet`", REPLACE))
    for title, schema in tables:
        section = readme[readme.index(title):]
        section = section[:section.index("\n\n", section.index("| column"))]
        documented = {}
        for cells in re.findall(r"^ *\| (.+?) \| (\S+) \|", section, re.M):  # the benchmark's are indented
            for name in re.findall(r"`(\w+)`", cells[0]):
                documented[name] = cells[1]
        assert documented == {c: notation(t) for c, t in schema.items()}, title
