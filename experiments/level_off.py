"""Runs to their level-off on one GPU: is each look legible, and what does CLIP learn on it?

A *look* is a setting of the renderer's constants that decide how far apart the values of a type are
in pixels (the size radii, the texture period, the aspect squash, the shades). For each look: its own
data folder (the training scene set, the benchmark, the captions of the variants it runs), rendered
with the look patched in. Then, side by side on the device: the per-object readout of every look
(experiments/readout.py) and the CLIP runs of the plan, each long run scored at every checkpoint (per
type: swap and replace, `bindlab evaluate --curve`) and every run at its end (eval.json); a density
run is also scored on a benchmark whose captions name its own k types per object. Every run stops at
the deadline and is scored where it got to (the curve says whether it had levelled off).

    python -m experiments.level_off --work /tmp/level_off --out OUT [--deadline 300] [--small]

`--small` shrinks every size (scene sets, benchmark, steps) for a CPU smoke test of the whole plan.
Writes OUT/level_off.tar.gz: every eval.json, curve.json, train.tsv, readout curve and log.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

# name -> {module.CONSTANT: value}; "current" is the renderer as committed
LOOKS: dict[str, dict[str, object]] = {
    "current": {},
    "legible": {"look.RADIUS_RANGE": (0.11, 0.20), "render.TEXTURE_PERIOD": 6.0,
                "look.ASPECTS": {"regular": (1.0, 1.0), "tall": (0.5, 1.0), "wide": (1.0, 0.5)}},
    "legible_b": {"look.RADIUS_RANGE": (0.10, 0.20), "render.TEXTURE_PERIOD": 8.0,
                  "look.ASPECTS": {"regular": (1.0, 1.0), "tall": (0.5, 1.0), "wide": (1.0, 0.5)},
                  "look.SHADES": {"pale": 0.55, "vivid": 0.0, "dark": -0.6}},
    # legible_b with the committed texture period (a coarser one lost texture, for the readout and CLIP)
    "legible_c": {"look.RADIUS_RANGE": (0.10, 0.20),
                  "look.ASPECTS": {"regular": (1.0, 1.0), "tall": (0.5, 1.0), "wide": (1.0, 0.5)},
                  "look.SHADES": {"pale": 0.55, "vivid": 0.0, "dark": -0.6}},
}
# variants beside params.yaml's: the objective's levers on the ideal data
EXTRA_VARIANTS = {"ideal_hardneg": {"scenes": "train", "hard_negatives": 3},
                  "ideal_batch_512": {"scenes": "train", "batch_size": 512}}
# (look, variant): trained for the long budget, scored at every checkpoint. Plan "looks": which look
# is legible, the density sweep and saliency at the level-off, the seed spread; plan "levers": the
# chosen look with the objective's levers (hard negatives, a larger batch) and finding 4 on it.
LEVERS = [("legible_c", "ideal"), ("legible_c", "ideal_hardneg"), ("legible_c", "ideal_batch_512"),
          ("current", "ideal_hardneg"), ("legible_c", "completeness_50"), ("legible_c", "saliency_100"),
          ("legible_c", "density_5")]
LONG = [("current", "ideal"), ("legible", "ideal"), ("legible_b", "ideal"),
        ("legible", "density_3"), ("legible", "density_4"), ("legible", "density_5"),
        ("legible", "completeness_50"), ("legible", "saliency_100"),
        ("current", "completeness_50"), ("current", "saliency_100")]
# (look, variant, seed): the default study's budget, for the seed-to-seed spread
SEEDS = [("current", v, s) for v in ("ideal", "completeness_50") for s in (0, 1, 2)]
OWN_FORMAT = {"density_3": 3, "density_4": 4, "density_5": 5}   # scored also on a benchmark at this k
OWN_FORMAT_LOOK = "legible"
LINKED = ("scenes", "images", "captions")


def patch_look(name: str) -> None:
    import bindlab.look
    import bindlab.render
    modules = {"look": bindlab.look, "render": bindlab.render}
    for key, value in LOOKS[name].items():
        module, const = key.split(".")
        setattr(modules[module], const, value)


def make_params(base: Path, out: Path, steps: int | None, small: bool, benchmark_density: int | None = None,
                checkpoint_every: int = 1000) -> Path:
    p = yaml.safe_load(base.read_text())
    p["profile"] = "default"
    p["train"]["checkpoint_every"] = checkpoint_every
    p["benchmark"]["density"] = benchmark_density
    if small:
        p["scene_sets"]["train"]["n"] = 600
        p["benchmark"]["n"] = 60
        p["train"]["warmup"] = 5
    if steps is not None:
        for v in p["variants"].values():
            v["steps"] = steps
            v.pop("batch_size", None)
        p["variants"] |= {name: v | {"steps": steps} for name, v in EXTRA_VARIANTS.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(p, sort_keys=False))
    return out


def data_main(args) -> None:
    """One look's data: scene set, images, benchmark (at --benchmark-density), captions."""
    patch_look(args.look)
    from bindlab.benchmark import benchmark_stage
    from bindlab.captions import captions_stage
    from bindlab.params import load_params
    from bindlab.paths import DataPaths
    from bindlab.render import render_stage
    from bindlab.scenes import sample_stage
    params, paths = load_params(args.params), DataPaths(args.data)
    if args.variants:
        sample_stage(params, paths, "train")
        render_stage(params, paths, "train", workers=2)
        for v in args.variants.split(","):
            captions_stage(params, paths, v)
    benchmark_stage(params, paths, workers=2)


def sh(cmd: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


STOPPED = "stopped at the deadline"


def stop(p: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 20 s."""
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()


def wait_all(procs: list[tuple[str, subprocess.Popen]], deadline: float) -> dict[str, object]:
    """Wait until every process ends or the deadline passes; then stop the rest."""
    while time.time() < deadline and any(p.poll() is None for _, p in procs):
        time.sleep(2)
    status = {}
    for name, p in procs:
        if p.poll() is None:
            stop(p)
            status[name] = STOPPED
        else:
            status[name] = p.returncode
    return status


def link_root(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        (src / n).mkdir(parents=True, exist_ok=True)
        if not (dst / n).exists():
            (dst / n).symlink_to((src / n).resolve())


def summary(w: Path) -> None:
    """One line per readout and per run: where each ended, per type (replace / swap)."""
    for f in sorted((w / "results").glob("readout_*.json")):
        last = json.loads(f.read_text())["curve"][-1]
        print(f.stem, json.dumps(last), flush=True)
    for f in sorted(w.rglob("eval.json")):
        e = json.loads(f.read_text())
        per = " ".join(f"{t}:{e['by_replace'][t]['i2t_pairwise']:.3f}/{e['by_swap'][t]['i2t_pairwise']:.3f}"
                       for t in sorted(e.get("by_replace", {})) if t in e["by_swap"])
        sal = e.get("by_saliency", {})
        print(f"{f.parent.relative_to(w)} step {e['steps']}: pairwise {e['i2t_pairwise']:.3f} strict "
              f"{e['i2t_strict']:.3f} replace {e.get('replace', {}).get('i2t_pairwise', float('nan')):.3f} "
              f"least {sal.get('least', {}).get('i2t_pairwise', float('nan')):.3f} least_pair "
              f"{sal.get('least_pair', {}).get('i2t_pairwise', float('nan')):.3f} | {per}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    d = sub.add_parser("data")
    d.add_argument("--look", required=True)
    d.add_argument("--params", required=True)
    d.add_argument("--data", required=True)
    d.add_argument("--variants", default="")
    ap.add_argument("--work", type=Path, default=Path("/tmp/level_off"))
    ap.add_argument("--out", type=Path, required=False)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--long-steps", type=int, default=5000)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds of training after the data")
    ap.add_argument("--readout-steps", type=int, default=6000)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--plan", choices=("looks", "levers"), default="looks")
    args = ap.parse_args(argv)
    if args.cmd == "data":
        data_main(args)
        return
    t0 = time.time()
    w, py = args.work, sys.executable
    if w.exists():
        shutil.rmtree(w)
    long_steps = 60 if args.small else args.long_steps
    # the smoke test: one run of each kind
    plan_long = {"looks": LONG, "levers": LEVERS}[args.plan]
    plan_seeds = SEEDS if args.plan == "looks" else []
    own_format = OWN_FORMAT if args.plan == "looks" else {}
    if args.small:  # one run of each kind
        plan_long, plan_seeds = plan_long[1:2] + [r for r in plan_long if r[1].startswith("density")][:1], plan_seeds[:1]
    every = 20 if args.small else 1000
    status: dict[str, object] = {}

    # 1. data, one process per look (and per own-format benchmark)
    procs = []
    for look in LOOKS:
        variants = sorted({v for lk, v in plan_long if lk == look} | {v for lk, v, _ in plan_seeds if lk == look})
        if not variants:
            continue
        root = w / look / "long"
        make_params(args.params, root / "params.yaml", long_steps, args.small, checkpoint_every=every)
        procs.append((f"data {look}", sh([py, "-m", "experiments.level_off", "data", "--look", look, "--params",
                                          str(root / "params.yaml"), "--data", str(root), "--variants",
                                          ",".join(variants)], w / "logs" / f"data_{look}.log")))
    for variant, k in own_format.items():
        root = w / OWN_FORMAT_LOOK / f"own_{variant}"
        make_params(args.params, root / "params.yaml", long_steps, args.small, benchmark_density=k,
                    checkpoint_every=every)
        procs.append((f"data own {variant}", sh([py, "-m", "experiments.level_off", "data", "--look",
                                                 OWN_FORMAT_LOOK, "--params", str(root / "params.yaml"),
                                                 "--data", str(root)], w / "logs" / f"data_own_{variant}.log")))
    status |= wait_all(procs, time.time() + 600)
    print(f"data: {time.time() - t0:.0f} s {status}", flush=True)

    # 2. training and readouts, side by side until the deadline
    short = w / "current" / "short"
    if plan_seeds:
        make_params(args.params, short / "params.yaml", 30 if args.small else None, args.small,
                    checkpoint_every=10 if args.small else 200)
        link_root(w / "current" / "long", short, LINKED + ("benchmark",))
    runs = [(w / lk / "long", v, 0) for lk, v in plan_long] + [(short, v, s) for _, v, s in plan_seeds]
    procs = []
    for root, v, s in runs:
        procs.append((f"train {root.relative_to(w)} {v} {s}",
                      sh([py, "-m", "bindlab.cli", "train", "--params", str(root / "params.yaml"), "--data",
                          str(root), "--variant", v, "--seed", str(s), "--unvalidated", "--no-progress",
                          "--threads", "1"], w / "logs" / f"train_{root.parent.name}_{root.name}_{v}_{s}.log")))
    t_train = time.time()
    for look in sorted({lk for lk, _ in plan_long}) if args.plan == "looks" else ["legible_c"]:
        root = w / look / "long"
        procs.append((f"readout {look}", sh([py, "-m", "experiments.readout", "--data", str(root), "--params",
                                            str(root / "params.yaml"), "--steps",
                                            str(100 if args.small else args.readout_steps), "--eval-every",
                                            str(50 if args.small else 500), "--limit-s", str(args.deadline - 20),
                                            "--out", str(w / "results" / f"readout_{look}.json")],
                                           w / "logs" / f"readout_{look}.log")))
    (w / "results").mkdir(parents=True, exist_ok=True)
    status |= wait_all(procs, t_train + args.deadline)
    print(f"training: {time.time() - t_train:.0f} s", flush=True)

    # 3. scores: every checkpoint of the long runs, the end of every run, own format for densities
    procs = []
    for root, v, s in runs:
        tag = f"{root.parent.name}_{root.name}_{v}_{s}"
        base = [py, "-m", "bindlab.cli", "evaluate", "--params", str(root / "params.yaml"), "--data", str(root),
                "--variant", v, "--seed", str(s)]
        procs.append((f"eval {tag}", sh(base, w / "logs" / f"eval_{tag}.log")))
        if root.name == "long":
            procs.append((f"curve {tag}", sh(base + ["--curve"], w / "logs" / f"curve_{tag}.log")))
        if v in own_format and root.parent.name == OWN_FORMAT_LOOK:
            own = w / OWN_FORMAT_LOOK / f"own_{v}"
            link_root(root, own, LINKED + ("models",))
            procs.append((f"eval own {v}", sh([py, "-m", "bindlab.cli", "evaluate", "--params",
                                               str(own / "params.yaml"), "--data", str(own), "--variant", v,
                                               "--seed", "0"], w / "logs" / f"eval_own_{v}.log")))
    status |= wait_all(procs, time.time() + (300 if args.small else 110))
    print(f"scores: {time.time() - t0:.0f} s in all", flush=True)

    summary(w)

    # 4. collect
    (w / "results" / "status.json").write_text(json.dumps(status, indent=1) + "\n")
    out = args.out or w
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "level_off.tar.gz", "w:gz") as tar:
        for f in sorted(w.rglob("*")):
            rel = f.relative_to(w)
            if not f.is_file() or any((w / Path(*rel.parts[:i])).is_symlink() for i in range(1, len(rel.parts) + 1)):
                continue
            if f.suffix in (".json", ".tsv", ".log", ".yaml", ".png") and "benchmark" not in rel.parts:
                tar.add(f, arcname=str(rel))
    print(f"done in {time.time() - t0:.0f} s -> {out / 'level_off.tar.gz'}", flush=True)


if __name__ == "__main__":
    main()
