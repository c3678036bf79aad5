"""Sibling scenes: does data in which every attribute type is sometimes the only difference between two
batch-mates make CLIP see every type?

In the study's data colour and shape alone single out nearly every image in its batch, so the
contrastive loss never needs texture, aspect or the others (docs/perception.md). Here each parent scene
of the `train` set comes with k siblings, each differing from it by one object's value of one attribute
type (or its shape) replaced by another value of that type, and the sampler keeps a parent and its
siblings in one batch: every sibling is a minimal pair of its parent. A replacement, never a swap
between objects, so the training data does not teach the benchmark's swap test. The scene set keeps the
vocabulary, the holdout and non-overlap, and has as many scenes as `train` (n / (k + 1) parents).

It is rendered, captioned with the ideal variant's knobs, trained with the study's training code and
scored on the shared benchmark, beside the ideal at the same budget (the default study's run when it is
there at this budget, else trained here), with the minimal-pair statistic of both runs' batches:

    python -m experiments.siblings --steps 500 --k 3 --out /tmp/siblings [--data data] [--threads 2]
    python -m experiments.siblings --collect A/siblings_k3.json B/siblings_k7.json --out seeing.png

Writes only under --out: its params, data root (links to --data's inputs), runs, siblings_kK.json and
siblings_kK.png (seeing per type against the minimal-pair share).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import yaml

import bindlab.train
from bindlab import look, sampler, stats
from bindlab.captions import captions_stage
from bindlab.contracts import SCENES, read_eval, scenes_of
from bindlab.errors import StageError, require
from bindlab.evaluate import evaluate_stage
from bindlab.figures import figure_png
from bindlab.io import atomic_path, write_json, write_parquet
from bindlab.params import Params, ParamsError, apply_profile, load_params, parse_combo
from bindlab.paths import DataPaths
from bindlab.render import render_stage
from bindlab.scenes import GAP, rng_for
from bindlab.train import TrainData, train_stage

SHAPE = "shape"


# --- the sibling scene set ------------------------------------------------------------------------

class Scene:
    """One parent scene as value codes (objects x kinds, kinds = attribute types then the shape) and
    bounding circles: what deciding a replacement needs."""

    def __init__(self, codes: np.ndarray, x: np.ndarray, y: np.ndarray, r: np.ndarray):
        self.codes, self.x, self.y, self.r = codes, x, y, r


def scene_key(codes: np.ndarray) -> tuple:
    """The multiset of object tuples: what a caption can tell apart (positions are never named)."""
    return tuple(sorted(map(tuple, codes.tolist())))


def holdout_rules(params: Params, kinds: list[str]) -> list[tuple[int, int, int]]:
    """(kind column, value code, shape code) of each held-out combination."""
    vocab, rules = params.vocab, []
    for i, combo in enumerate(params.holdout):
        attr, value, shape = parse_combo(combo, vocab, f"holdout.{i}")
        rules.append((kinds.index(attr), vocab.attributes[attr].index(value), vocab.shapes.index(shape)))
    return rules


def fits(scene: Scene, o: int, radius: float) -> bool:
    """Object o with a new bounding radius stays inside the image and clear of the others (as sampled)."""
    x, y = scene.x[o], scene.y[o]
    if min(x - radius, y - radius) < 0 or max(x + radius, y + radius) > 1:
        return False
    others = np.arange(len(scene.x)) != o
    dist = np.hypot(scene.x[others] - x, scene.y[others] - y)
    return bool(np.all(dist >= radius + scene.r[others] + GAP))


def replacement(rng, scene: Scene, first: int, order: list[int], n_values: list[int], size: int,
                radii: np.ndarray, rules: list, seen: set) -> tuple[int, int, int]:
    """(object, kind, value) of one sibling: kind `first` if any of its replacements is valid, else the
    next kind of `order`; objects and values in a random order. Valid: another value than the object's,
    no held-out combination, the geometry still non-overlapping (a size changes the radius), and a scene
    unlike the parent and its earlier siblings."""
    shape = len(n_values) - 1
    for kind in [first] + [k for k in order if k != first]:
        for o in rng.permutation(len(scene.x)).tolist():
            for v in rng.permutation(n_values[kind]).tolist():
                if v == scene.codes[o, kind]:
                    continue
                new = scene.codes.copy()
                new[o, kind] = v
                if any(new[o, c] == val and new[o, shape] == s for c, val, s in rules):
                    continue
                if kind == size and not fits(scene, o, float(radii[v])):
                    continue
                if scene_key(new) in seen:
                    continue
                seen.add(scene_key(new))
                return o, kind, v
    raise StageError("siblings: a parent scene admits no valid replacement; lower --k")


def sibling_scenes(params: Params, train: pl.DataFrame, n: int, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(scene table of n scenes: group g = scene g of `train` at g(k+1), its k siblings after it,
    the record of every change: scene_id, parent_id, obj, type, old, new)."""
    group = k + 1
    if n % group:
        raise StageError(f"siblings: {n} scenes do not split into groups of k+1 = {group}; pick k so that "
                         f"k+1 divides the scene count")
    vocab = params.vocab
    kinds = [*vocab.attribute_types, SHAPE]
    values = [vocab.attributes[t] for t in vocab.attribute_types] + [vocab.shapes]
    parents = train.filter(pl.col("scene_id") < n // group).sort("scene_id", "obj")
    codes = np.stack([parents[t].replace_strict({v: i for i, v in enumerate(vs)}, return_dtype=pl.Int64).to_numpy()
                      for t, vs in zip(kinds, values)], axis=1)
    x, y, r = (parents[c].to_numpy().astype(np.float64) for c in ("x", "y", "radius"))
    counts = parents.group_by("scene_id", maintain_order=True).len()["len"].to_numpy().astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = rng_for(params, f"siblings:k{k}")   # its own stream: never a scene set's or a caption's
    rules, radii, size = holdout_rules(params, kinds), look.size_radii(len(vocab.attributes["size"])), kinds.index("size")
    n_values = [len(vs) for vs in values]
    changes = []
    for g, (a, c) in enumerate(zip(starts.tolist(), counts.tolist())):
        scene = Scene(codes[a:a + c], x[a:a + c], y[a:a + c], r[a:a + c])
        order = rng.permutation(len(kinds)).tolist()   # k different kinds per parent (cycling when k > kinds)
        seen = {scene_key(scene.codes)}
        for j in range(k):
            o, kind, v = replacement(rng, scene, order[j % len(kinds)], order, n_values, size, radii, rules, seen)
            changes.append((g * group + j + 1, g, o, kinds[kind], values[kind][scene.codes[o, kind]], values[kind][v]))
    record = pl.DataFrame(changes, schema={"scene_id": pl.Int64, "parent_id": pl.Int64, "obj": pl.Int64,
                                           "type": pl.String, "old": pl.String, "new": pl.String}, orient="row")
    return apply_changes(params, parents, record, group, starts, counts), record


def apply_changes(params: Params, parents: pl.DataFrame, record: pl.DataFrame, group: int,
                  starts: np.ndarray, counts: np.ndarray) -> pl.DataFrame:
    """Every parent's rows repeated for its group, then each change written into its sibling's row; the
    columns a change moves (radius, box, area, saliency rank) recomputed there, parents' rows as they were."""
    n = len(starts) * group
    size_of = counts[np.arange(n) // group]              # objects of each output scene
    out_start = np.concatenate([[0], np.cumsum(size_of)[:-1]])
    within = np.arange(size_of.sum()) - np.repeat(out_start, size_of)
    rows = np.repeat(starts[np.arange(n) // group], size_of) + within   # the parent row of each output row
    cols = {c: parents[c].to_numpy()[rows].copy() for c in SCENES}
    cols["scene_id"] = np.repeat(np.arange(n), size_of)
    radii = look.size_radii(len(params.vocab.attributes["size"]))
    sizes = params.vocab.attributes["size"]
    resized = np.zeros(n, dtype=bool)
    for sid, _, o, kind, _, new in record.iter_rows():
        row = out_start[sid] + o
        cols[kind][row] = new
        radius = float(radii[sizes.index(cols["size"][row])])
        if kind == "size":
            resized[sid] = True
            cols["radius"][row] = radius
            for c, sign, centre in (("x0", -1, "x"), ("x1", 1, "x"), ("y0", -1, "y"), ("y1", 1, "y")):
                cols[c][row] = float(cols[centre][row]) + sign * radius
        cols["area"][row] = look.unit_area(cols["shape"][row], cols["aspect"][row]) * radius ** 2
    _rerank(cols, resized, sizes)
    return pl.DataFrame(cols).select(list(SCENES)).cast(SCENES)


def _rerank(cols: dict, resized: np.ndarray, sizes: list[str]) -> None:
    """Saliency ranks of the scenes whose sizes changed: larger size first, then closer to the centre,
    then lower object index (bindlab/scenes.py)."""
    rows = np.flatnonzero(resized[cols["scene_id"]])
    if len(rows) == 0:
        return
    sid, obj = cols["scene_id"][rows], cols["obj"][rows].astype(np.int64)
    size = np.array([sizes.index(s) for s in cols["size"][rows]])
    dist = np.hypot(cols["x"][rows].astype(np.float64) - 0.5, cols["y"][rows].astype(np.float64) - 0.5)
    order = np.lexsort((obj, dist, -size, sid))
    first = np.searchsorted(sid[order], sid[order], side="left")
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows)) - first
    cols["saliency_rank"][rows] = rank


# --- the sampler that keeps a group in one batch -------------------------------------------------

def group_batch_indices(n: int, group: int, seed: int, step: int, batch_size: int) -> np.ndarray:
    """Scene ids of step `step`: the study's sampler (bindlab/sampler.py) drawn over groups of `group`
    consecutive scenes, each group taken whole, so a batch holds batch_size / group whole groups."""
    if n % group or batch_size % group:
        raise StageError(f"siblings: groups of {group} must divide the {n} scenes and the batch of {batch_size}")
    groups = sampler.batch_indices(n // group, seed, step, batch_size // group)
    return (groups[:, None] * group + np.arange(group)).reshape(-1)


def group_batches(n: int, group: int, seed: int, steps: int, batch_size: int) -> np.ndarray:
    return np.stack([group_batch_indices(n, group, seed, s, batch_size) for s in range(steps)])


class GroupedData(TrainData):
    """The training data with the group sampler: `group` is set per run (grouped_training)."""
    group = 1

    def batch_indices(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        return group_batch_indices(self.n, self.group, seed, step, batch_size)


def grouped_training(group: int):
    """train_stage as it is, drawing its batches from the group sampler: the one name it looks up for
    its data is replaced for the duration, so the library and its outputs stay as they are."""
    return mock.patch.object(bindlab.train, "TrainData", type("GroupedData", (GroupedData,), {"group": group}))


# --- the experiment -------------------------------------------------------------------------------

def experiment_params(base: Path, out: Path, steps: int, k: int) -> tuple[Params, str, str]:
    """params of the experiment (the base file with its profile applied, the ideal and the siblings
    variant at `steps`, the sibling scene set beside `train`), written to out/params.yaml;
    -> (params, ideal variant, siblings variant)."""
    raw = apply_profile(yaml.safe_load(Path(base).read_text()), base)
    ideal, name = raw.get("study", {}).get("ideal", "ideal"), f"siblings_k{k}"
    raw["scene_sets"] = {"train": raw["scene_sets"]["train"], name: dict(raw["scene_sets"]["train"])}
    knobs = raw["variants"][ideal] or {}
    raw["variants"] = {ideal: {**knobs, "steps": steps}, name: {**knobs, "scenes": name, "steps": steps}}
    raw.update(profile="default", profiles={})
    raw.pop("run_variants", None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(out / "params.yaml"), ideal, name


def link_inputs(src: DataPaths, work: DataPaths, seed: int) -> None:
    """The experiment's data root reads the study's train scenes, images, benchmark (and the seed's
    measured chance) through links, and writes only its own files."""
    needs = [(src.scenes("train"), work.scenes("train"), "bindlab sample --scenes train"),
             (src.images("train"), work.images("train"), "bindlab render --scenes train"),
             (src.benchmark, work.benchmark, "bindlab benchmark")]
    optional = [(src.chance(seed), work.chance(seed))]
    for have, link, made_by in needs:
        require(have, made_by)
    for have, link in [(a, b) for a, b, _ in needs] + [o for o in optional if o[0].exists()]:
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.resolve() == have.resolve():
                continue
            raise StageError(f"{link}: exists and is not a link to {have}; use another --out")
        link.symlink_to(have.resolve())


def reusable_ideal(src: DataPaths, ideal: str, seed: int, steps: int, batch_size: int) -> Path | None:
    """The study's eval.json of the ideal run when that run saw the same samples (steps x batch), else None."""
    f = src.metrics(ideal, seed) / "eval.json"
    if not (src.model(ideal, seed) / "last.pt").exists() or not f.exists():
        return None
    e = json.loads(f.read_text())
    return f if (e.get("steps"), e.get("batch_size")) == (steps, batch_size) else None


def train_and_score(params: Params, work: DataPaths, variant: str, seed: int, threads: int, fresh: bool,
                    group: int = 1) -> dict:
    # the ideal trains exactly as the study does; only the siblings need their groups kept together
    with grouped_training(group) if group > 1 else contextlib.nullcontext():
        train_stage(params, work, variant, seed, fresh=fresh, threads=threads, require_validation=False)
    return evaluate_stage(params, work, variant, seed, threads=threads, plots=False)


TABLE_KINDS = ["size", "aspect", "shade", "color", "texture", "outline", "shape"]


def summarize(e: dict, needs: dict) -> dict:
    """What the table shows of one run: per kind replace, swap and minimal-pair share; overall figures."""
    nan = float("nan")
    return {"i2t_pairwise": e["i2t_pairwise"], "i2t_strict": e["i2t_strict"],
            "replace": e.get("replace", {}).get("i2t_pairwise", nan), "steps": e.get("steps"),
            "singled_out_by_color_shape": needs["singled_out_by_color_shape"],
            "by_kind": {t: {"replace": e.get("by_replace", {}).get(t, {}).get("i2t_pairwise", nan),
                            "swap": e.get("by_swap", {}).get(t, {}).get("i2t_pairwise", nan),
                            "minimal_pair": needs["minimal_pair"].get(t, nan)} for t in TABLE_KINDS}}


def table(runs: dict[str, dict]) -> str:
    """Side by side: per kind replace (seeing), swap (binding) and the minimal-pair share of the run's
    batches (what the loss needs); then the overall figures."""
    names = list(runs)
    head = f"{'':<26}" + "".join(f"{n:^27}" for n in names)
    sub = f"{'type':<26}" + "".join(f"{'replace':>9}{'swap':>8}{'min.pair':>10}" for _ in names)
    lines = [head, sub]
    for t in TABLE_KINDS:
        lines.append(f"{t:<26}" + "".join(f"{r['by_kind'][t]['replace']:>9.3f}{r['by_kind'][t]['swap']:>8.3f}"
                                          f"{r['by_kind'][t]['minimal_pair']:>10.3f}" for r in runs.values()))
    for key, label in (("i2t_pairwise", "pairwise (swap)"), ("i2t_strict", "strict (swap)"),
                       ("replace", "replace (all)"), ("singled_out_by_color_shape", "colour+shape single out")):
        lines.append(f"{label:<26}" + "".join(f"{r[key]:>9.3f}{'':18}" for r in runs.values()))
    return "\n".join(lines)


def plot(results: list[dict]) -> bytes:
    """Seeing per type against the share of minimal pairs in the run's batches, one point per run and
    type (runs as markers, types as colours): does what the batches make necessary predict what is seen?"""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = {f"{name} ({r['steps']} steps)": run for r in results for name, run in r["runs"].items()}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = dict(zip(TABLE_KINDS, plt.get_cmap("tab10").colors))
    for marker, (label, run) in zip("os^Dv<>px*", runs.items()):
        for t in TABLE_KINDS:
            k = run["by_kind"][t]
            ax.scatter(k["minimal_pair"], k["replace"], marker=marker, color=colours[t], s=40)
        ax.scatter([], [], marker=marker, color="grey", label=label)
    for t, c in colours.items():
        ax.scatter([], [], marker="s", color=c, label=t)
    ax.set(xlabel="share of images with a minimal pair of this type in their batch",
           ylabel="replace i2t pairwise (seeing)", ylim=(0.45, 1.0))
    ax.axhline(0.95, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    return figure_png(fig, 110)


def collect(files: list[Path], png: Path) -> str:
    """One table and one plot from several runs of the experiment (their siblings_kK.json)."""
    for f in files:
        require(f, "python -m experiments.siblings --steps N --k K --out DIR")
    results = [json.loads(Path(f).read_text()) for f in files]
    with atomic_path(png) as tmp:
        tmp.write_bytes(plot(results))
    runs = {}
    for r in results:
        runs.update({f"{n} {r['steps']}": run for n, run in r["runs"].items()})
    return f"{table(runs)}\n-> {png}"


def run(data: Path, base_params: Path, out: Path, steps: int, k: int, threads: int = 2, seed: int | None = None,
        fresh: bool = False) -> dict:
    """The whole experiment; -> what out/siblings_kK.json holds."""
    out = Path(out).resolve()
    src = DataPaths(data)
    if out == src.root.resolve() or src.root.resolve() in out.parents:
        raise StageError(f"--out {out}: inside --data {src.root}; the experiment never writes into the study's data")
    params, ideal, name = experiment_params(base_params, out, steps, k)
    seed = params.study.seeds[0] if seed is None else seed
    v, n = params.variant(name), params.scene_sets["train"].n
    if n % (k + 1) or v.batch_size % (k + 1):   # checked before any work: a batch must hold whole groups
        fit = [g - 1 for g in range(2, 33) if n % g == 0 and v.batch_size % g == 0]
        raise StageError(f"--k {k}: k+1 must divide the {n} scenes and the batch of {v.batch_size} so that every "
                         f"batch holds whole groups; k may be {', '.join(map(str, fit)) or 'none'}")
    work = DataPaths(out / "data")
    link_inputs(src, work, seed)

    train = scenes_of(params, work, "train")
    scenes, record = sibling_scenes(params, train, n, k)
    write_parquet(scenes, work.scenes(name))
    write_parquet(record, work.root / "scenes" / f"{name}_changes.parquet")
    print(f"siblings: {n // (k + 1)} parents x {k} siblings -> {work.scenes(name)}; replaced per type: "
          f"{dict(record['type'].value_counts(sort=True).iter_rows())}", flush=True)
    render_stage(params, work, name, workers=threads)
    captions_stage(params, work, name)

    reused = reusable_ideal(src, ideal, seed, steps, v.batch_size)
    if reused is not None:
        print(f"ideal: the study's run at {steps} steps, {reused}", flush=True)
        ideal_eval = read_eval(reused, ideal, seed, params.study.metric)
    else:
        print(f"ideal: no run of {src.root} at {steps} steps; training it in {work.root}", flush=True)
        captions_stage(params, work, ideal)
        ideal_eval = train_and_score(params, work, ideal, seed, threads, fresh)
    sib_eval = train_and_score(params, work, name, seed, threads, fresh, group=k + 1)

    m = min(steps, stats.BATCHES)
    types = params.vocab.attribute_types
    needs = {ideal: stats.batch_needs(train, types,
                                      sampler.batches(n, seed, m, v.batch_size), n),
             name: stats.batch_needs(scenes, types, group_batches(n, k + 1, seed, m, v.batch_size), n)}
    runs = {ideal: summarize(ideal_eval, needs[ideal]), name: summarize(sib_eval, needs[name])}
    result = {"k": k, "steps": steps, "batch_size": v.batch_size, "seed": seed, "scenes": n,
              "samples_seen": steps * v.batch_size, "stat_batches": m,
              "ideal_source": str(reused) if reused else str(work.metrics(ideal, seed) / "eval.json"),
              "replaced": dict(record["type"].value_counts(sort=True).iter_rows()), "runs": runs}
    write_json(out / f"{name}.json", result)
    with atomic_path(out / f"{name}.png") as tmp:
        tmp.write_bytes(plot([result]))
    print(f"\n{steps} steps x batch {v.batch_size}, seed {seed}; minimal pairs and colour+shape over the first "
          f"{m} batches\n{table(runs)}\n-> {out / f'{name}.json'}", flush=True)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int)
    ap.add_argument("--k", type=int, default=3, help="siblings per parent scene")
    ap.add_argument("--out", type=Path, required=True, help="folder for everything the experiment writes")
    ap.add_argument("--data", type=Path, default=Path("data"), help="the study's data root (read only)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None, help="training seed (default: study.seeds[0])")
    ap.add_argument("--fresh", action="store_true", help="retrain runs that --out already holds")
    ap.add_argument("--collect", type=Path, nargs="+", metavar="JSON",
                    help="only join runs' siblings_kK.json into one table and OUT (a .png)")
    a = ap.parse_args(argv)
    if not a.collect and (a.steps is None or a.k < 1 or a.steps < 1):
        ap.error("--steps is required, and --k and --steps must be at least 1")
    try:
        if a.collect:
            print(collect(a.collect, a.out))
            return 0
        run(a.data, a.params, a.out, a.steps, a.k, a.threads, a.seed, a.fresh)
    except (ParamsError, StageError) as e:
        print(f"experiments.siblings: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
