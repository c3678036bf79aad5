"""The `converged` profile on one GPU: dvc.yaml's stages of its run variants, side by side, without DVC.

`make study PROFILE=converged` runs the profile through DVC, one 5,000-step run after another. A machine
with a GPU but without DVC and GX (the device machine this project is lent) runs the same stage commands
here instead: the data stages, then every training at once (each in its own process, one thread, on
the GPU), then every scoring. Validation is not run (GX is not there): each data file's md5 is printed,
so it can be compared with the default study's validated outputs in dvc.lock (the profile changes no
data: its captions and images are those of the default study).

    python -m experiments.converged --work /tmp/converged --out OUT [--deadline 330] [--small]

Runs: every variant of `run_variants` with seed 0, and SEEDED with seeds 0-2 (finding 4's comparison and
its reference, whose seed spread the report combines with the image intervals). Each density variant
is also scored on a benchmark whose captions name its own k types per object (`benchmark.density` k).
Every long run is scored at each weight snapshot (its curve says whether it levelled off). A run still
going at the deadline is stopped and scored where it got to. Writes OUT/converged.tar.gz: the metrics
of every run, both benchmarks' scores, the logs and a record of the run. `--small`: a CPU smoke test.

Then, on any machine: `python -m experiments.converged --report OUT/converged.tar.gz` writes the two
reports (full descriptions; each density in its own format) into results/converged/.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

from bindlab.params import load_params
from bindlab.report import CONVERGED
from experiments.level_off import link_root, sh, wait_all

PROFILE = "converged"
SEEDED = ("ideal", "completeness_50", "saliency_100")
SEEDS = (0, 1, 2)
KEPT = ("eval.json", "per_image.parquet", "curve.json", "train.tsv", "binding.json")


def write_params(base: Path, out: Path, small: bool, benchmark_density: int | None = None) -> Path:
    """params.yaml with the profile chosen, the seeds and finding 7's run set, as `dvc exp run -S` would."""
    p = yaml.safe_load(base.read_text())
    p["profile"] = PROFILE
    p["study"]["seeds"] = list(SEEDS)
    p["study"]["ideal_long"] = p["study"]["ideal"]   # 5,000 steps: the ideal run is finding 7's long run
    p["benchmark"]["density"] = benchmark_density
    if small:
        p["scene_sets"]["train"]["n"] = 600
        p["benchmark"]["n"] = 60
        p["profiles"][PROFILE] |= {"base": {"steps": 40}, "train": {"checkpoint_every": 20, "warmup": 5}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(p, sort_keys=False))
    return out


def bindlab(params: Path, root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bindlab.cli", *args[:1], "--params", str(params), "--data", str(root), *args[1:]]


def md5(path: Path) -> str:
    """As bindlab.validate.md5, which cannot be imported here: that module loads GX."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def run(args) -> None:
    t0 = time.time()
    w = args.work
    if w.exists():
        shutil.rmtree(w)
    logs = w / "logs"
    main_p = write_params(args.params, w / "main" / "params.yaml", args.small)
    main = w / "main" / "data"
    params = load_params(main_p)
    variants = list(params.run_variants)
    # (density 0 names no attribute: its own format would be a benchmark of nouns, which tests no binding)
    densities = {v: int(params.variant(v).density) for v in variants if 0 < params.variant(v).density < 6}
    runs = [(v, 0) for v in variants] + [(v, s) for v in SEEDED for s in SEEDS if s]
    record = {"command": " ".join(sys.argv), "steps": params.variant(params.study.ideal).steps,
              "runs": [f"{v}/seed{s}" for v, s in runs], "own_format": densities}

    # 1. data: the scene set and its images, then the benchmark, captions and chance level side by side;
    # a benchmark in each density's own format beside them
    logs.mkdir(parents=True)
    for stage in ("sample", "render"):
        with (logs / f"{stage}.log").open("w") as log:
            rc = subprocess.run(bindlab(main_p, main, stage, "--scenes", "train"), stdout=log,
                                stderr=subprocess.STDOUT).returncode
        if rc:
            sys.exit(f"{stage} failed (exit status {rc}): {logs / stage}.log")
    procs = [("benchmark", sh(bindlab(main_p, main, "benchmark"), logs / "benchmark.log"))]
    procs += [(f"captions {v}", sh(bindlab(main_p, main, "captions", "--variant", v), logs / f"captions_{v}.log"))
              for v in variants]
    own_roots = {}
    for v, k in densities.items():
        root = w / f"own_{k}" / "data"
        p = write_params(args.params, w / f"own_{k}" / "params.yaml", args.small, benchmark_density=k)
        own_roots[v] = (p, root)
        procs.append((f"benchmark own {k}", sh(bindlab(p, root, "benchmark"), logs / f"benchmark_own_{k}.log")))
    status = wait_all(procs, time.time() + 600)
    procs = [(f"chance {s}", sh(bindlab(main_p, main, "chance", "--seed", str(s)), logs / f"chance_{s}.log"))
             for s in SEEDS]
    status |= wait_all(procs, time.time() + 300)
    record["data_s"] = round(time.time() - t0)
    record["md5"] = {str(f.relative_to(main)): md5(f) for d in ("images", "captions", "scenes")
                     for f in sorted((main / d).rglob("*")) if f.is_file() and f.suffix in (".npy", ".parquet")}
    print(f"data: {record['data_s']} s {status}", flush=True)

    # 2. every training at once, one thread each, until the deadline
    t1 = time.time()
    procs = [(f"train {v} {s}", sh(bindlab(main_p, main, "train", "--variant", v, "--seed", str(s), "--fresh",
                                           "--unvalidated", "--no-progress", "--threads", "1"),
                                   logs / f"train_{v}_{s}.log")) for v, s in runs]
    status |= wait_all(procs, t1 + args.deadline)
    record["train_s"] = round(time.time() - t1)
    print(f"training: {record['train_s']} s", flush=True)

    # 3. scores: each run at its end and at every snapshot; each density in its own format
    t2 = time.time()
    procs = []
    for v, s in runs:
        base = bindlab(main_p, main, "evaluate", "--variant", v, "--seed", str(s), "--threads", "1")
        procs.append((f"eval {v} {s}", sh(base, logs / f"eval_{v}_{s}.log")))
        if s == 0 or v == params.study.ideal_long:   # finding 7 has a curve per seed
            procs.append((f"curve {v} {s}", sh(base + ["--curve"], logs / f"curve_{v}_{s}.log")))
    for v, (p, root) in own_roots.items():
        link_root(main, root, ("scenes", "images", "captions", "models"))
        procs.append((f"eval own {v}", sh(bindlab(p, root, "evaluate", "--variant", v, "--seed", "0", "--threads", "1"),
                                          logs / f"eval_own_{v}.log")))
    status |= wait_all(procs, t2 + args.score_deadline)
    record |= {"score_s": round(time.time() - t2), "wall_s": round(time.time() - t0),
               "status": {k: str(v) for k, v in status.items()}}
    for v, s in runs:
        tsv = main / "metrics" / v / f"seed{s}" / "train.tsv"
        last = tsv.read_text().splitlines()[-1].split("\t")[0] if tsv.exists() else None
        record.setdefault("last_step", {})[f"{v}/seed{s}"] = last
    print(json.dumps(record["last_step"]), f"scores: {record['score_s']} s; {record['wall_s']} s in all", flush=True)

    # 4. collect
    (w / "record.json").write_text(json.dumps(record, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.out / "converged.tar.gz", "w:gz") as tar:
        tar.add(w / "record.json", "record.json")
        tar.add(main_p, "main/params.yaml")
        tar.add(logs, "logs")
        for v, (p, root) in own_roots.items():
            tar.add(p, f"{p.parent.name}/params.yaml")
        for root, name in [(main, "main")] + [(r, p.parent.name) for p, r in own_roots.values()]:
            for f in sorted((root / "metrics").rglob("*")):
                if f.name in KEPT:
                    tar.add(f, f"{name}/data/{f.relative_to(root)}")
    print(f"-> {args.out / 'converged.tar.gz'}", flush=True)


def report(tarball: Path, results: Path) -> None:
    """Both reports of a converged run into `results`: full/ (every run, full descriptions) and
    own_format/ (the density sweep, each density scored in its own caption format; the ideal's own
    format is the full description)."""
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "bindlab_converged_report"
    if work.exists():
        shutil.rmtree(work)
    with tarfile.open(tarball) as tar:
        tar.extractall(work, filter="data")
    record = json.loads((work / "record.json").read_text())
    own = work / "own_format"
    p = yaml.safe_load((work / "main" / "params.yaml").read_text())
    p["study"]["seeds"] = [0]
    p["profiles"][PROFILE]["run_variants"] = [p["study"]["ideal"], *record["own_format"]]
    own.mkdir()
    (own / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    shutil.copytree(work / "main" / "data" / "metrics" / p["study"]["ideal"], own / "data" / "metrics" / p["study"]["ideal"])
    for v, k in record["own_format"].items():
        shutil.copytree(work / f"own_{k}" / "data" / "metrics" / v, own / "data" / "metrics" / v)
    for name, root in (("full", work / "main"), ("own_format", own)):
        rc = subprocess.run([sys.executable, "-m", "bindlab.cli", "report", "--params", str(root / "params.yaml"),
                             "--data", str(root / "data")]).returncode
        if rc:
            sys.exit(rc)
        out = results / name
        out.mkdir(parents=True, exist_ok=True)
        for f in ("summary.md", "details.json"):
            shutil.copy(root / "data" / "report" / f, out / f)
    keep = {k: record[k] for k in ("command", "steps", "runs", "own_format", "data_s", "train_s", "score_s",
                                   "wall_s", "last_step", "md5")}
    (results / "run.json").write_text(json.dumps(keep, indent=1, sort_keys=True) + "\n")
    print(f"-> {results}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/converged"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--deadline", type=float, default=330.0, help="seconds of training after the data")
    ap.add_argument("--score-deadline", type=float, default=150.0, help="seconds of scoring after training")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--report", type=Path, metavar="TARBALL", help="write results/converged/ from a run's tarball")
    ap.add_argument("--results", type=Path, default=CONVERGED)
    args = ap.parse_args(argv)
    if args.report:
        report(args.report, args.results)
    elif args.out:
        run(args)
    else:
        ap.error("--out (run) or --report (write the reports) is needed")


if __name__ == "__main__":
    main()
