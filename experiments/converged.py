"""The `converged` profile without DVC: dvc.yaml's stages of its run variants, side by side.

`make study PROFILE=converged` runs the profile through DVC, one 5,000-step run after another. A machine
without DVC and GX (the GPU machine this project is lent), or one that must spread the runs over several
sittings, runs the same stage commands here instead: the data stages, then each run's training followed
by its scoring, all runs at once (a GPU) or `--jobs` at a time (a CPU, one thread each). Validation is
not run (GX may not be there): each data file's md5 is recorded, to compare with the default study's
validated outputs in dvc.lock (the profile changes no data: its captions and images are the default
study's).

    python -m experiments.converged --work W --out OUT [--deadline 330] [--jobs N] [--resume] [--small]

Runs: every variant of `run_variants` with seed 0, and SEEDED with seeds 0-2 (finding 4's comparison and
its reference, whose seed spread the report combines with the image intervals), the runs that decide
verdicts first (`plan`). Each density variant is also scored on a benchmark whose
captions name its own k types per object (`benchmark.density` k). Every seed-0 run and every seed of
finding 7's run is scored at each weight snapshot (its curve says whether it levelled off). A training
still going at the deadline is stopped and scored where it got to, and does not count as finished.
`--resume` keeps W: the data and the finished runs are skipped, the others resume from their last
snapshot (training is deterministic across a resume). Writes OUT/converged.tar.gz: the metrics of every
run, both benchmarks' scores, the logs and a record of the run (`--collect`: only that, from W as it is).
`--small`: a smoke test of the whole path on a CPU.

Then, on any machine: `python -m experiments.converged --report OUT/converged.tar.gz` writes the two
reports (full descriptions; each density in its own format) of the finished runs into results/converged/.
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

from bindlab import timing
from bindlab.params import load_params
from bindlab.paths import DataPaths
from bindlab.report import CONVERGED
from experiments.level_off import STOPPED, link_root, sh, stop, wait_all

PROFILE = "converged"
SEEDED = ("ideal", "completeness_50", "saliency_100")
SEEDS = (0, 1, 2)
KEPT = ("eval.json", "per_image.parquet", "curve.json", "train.tsv", "binding.json", "timing.json")


def write_params(base: Path, out: Path, small: bool, benchmark_density: int | None = None) -> Path:
    """params.yaml with the profile chosen, the seeds and finding 7 judged at the level-off, as `dvc exp run -S`
    would."""
    p = yaml.safe_load(base.read_text())
    p["profile"] = PROFILE
    p["study"]["seeds"] = list(SEEDS)
    p["study"]["level_off"] = True   # 5,000 steps: the ideal run is trained to its level-off
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


def run_name(variant: str, seed: int) -> str:
    return f"{variant}/seed{seed}"


def done_mark(w: Path, run: str) -> Path:
    """Left in W by a run whose commands all succeeded (a resumed run skips it)."""
    return w / "done" / run.replace("/", "_")


def plan(params) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """The runs, in the order a machine with few cores should take them, and the density variants scored
    in their own format. First what decides verdicts: seed 0 of SEEDED (findings 4 and 7), the upper half
    of the density sweep (finding 1's "too many" half, whose peak is near the top), then the other seeds
    of finding 4's comparison (its effect lies near study.min_effect, within the seed spread); then the
    rest of the sweep and the other variants, and the ideal's other seeds last."""
    variants = list(params.run_variants)
    ideal = params.study.ideal
    # (density 0 names no attribute: its own format would be a benchmark of nouns, which tests no binding)
    densities = {v: int(params.variant(v).density) for v in variants if 0 < params.variant(v).density < 6}
    seeded = [v for v in SEEDED if v in variants]
    sweep = sorted((v for v in variants if v not in seeded and v.startswith("density_")),
                   key=lambda v: -params.variant(v).density)
    top = max((params.variant(v).density for v in sweep), default=0)
    upper = [v for v in sweep if 2 * params.variant(v).density >= top]
    rest = [v for v in sweep if v not in upper] + [v for v in variants if v not in seeded + sweep]
    runs = [(v, 0) for v in seeded + upper] + [(v, s) for v in seeded if v != ideal for s in SEEDS if s]
    return runs + [(v, 0) for v in rest] + [(ideal, s) for s in SEEDS if s and ideal in seeded], densities


def data(args, w: Path, main_p: Path, main: Path, variants: list[str], densities: dict[str, int]) -> dict:
    """The data stages: the scene set and its images, then the benchmark, captions and chance level side
    by side, and a benchmark in each density's own format beside them. Kept in `w` for a resumed run."""
    done = w / "data.json"
    if done.exists():
        return json.loads(done.read_text())
    t0, logs = time.time(), w / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for stage in ("sample", "render"):
        with (logs / f"{stage}.log").open("w") as log:
            rc = subprocess.run(bindlab(main_p, main, stage, "--scenes", "train"), stdout=log,
                                stderr=subprocess.STDOUT).returncode
        if rc:
            sys.exit(f"{stage} failed (exit status {rc}): {logs / stage}.log")
    procs = [("benchmark", sh(bindlab(main_p, main, "benchmark"), logs / "benchmark.log"))]
    procs += [(f"captions {v}", sh(bindlab(main_p, main, "captions", "--variant", v), logs / f"captions_{v}.log"))
              for v in variants]
    for v, k in densities.items():
        p, root = own_root(args, w, k)
        procs.append((f"benchmark own {k}", sh(bindlab(p, root, "benchmark"), logs / f"benchmark_own_{k}.log")))
    status = wait_all(procs, time.time() + 600)
    procs = [(f"chance {s}", sh(bindlab(main_p, main, "chance", "--seed", str(s)), logs / f"chance_{s}.log"))
             for s in SEEDS]
    status |= wait_all(procs, time.time() + 300)
    failed = {k: v for k, v in status.items() if v != 0}
    if failed:
        sys.exit(f"data stages failed: {failed}; their logs are in {logs}")
    record = {"data_s": round(time.time() - t0),
              "md5": {str(f.relative_to(main)): md5(f) for d in ("images", "captions", "scenes")
                      for f in sorted((main / d).rglob("*")) if f.is_file() and f.suffix in (".npy", ".parquet")}}
    done.write_text(json.dumps(record, indent=1))
    print(f"data: {record['data_s']} s", flush=True)
    return record


def own_root(args, w: Path, k: int) -> tuple[Path, Path]:
    """params.yaml and data root of the benchmark whose captions name k types per object."""
    p = w / f"own_{k}" / "params.yaml"
    if not p.exists():
        write_params(args.params, p, args.small, benchmark_density=k)
    return p, w / f"own_{k}" / "data"


def steps_of(main_p: Path, main: Path, w: Path, args, v: str, s: int, ideal: str,
             densities: dict[str, int]) -> list[tuple[str, list[str], Path]]:
    """One run's commands, in order: its training (resumed from its last snapshot, if any), its score at
    the end, at every snapshot (seed 0, and every seed of finding 7's run), and in its own format."""
    logs = w / "logs"
    out = [("train", bindlab(main_p, main, "train", "--variant", v, "--seed", str(s), "--unvalidated",
                             "--threads", "1"), logs / f"train_{v}_{s}.log")]   # a progress line every log_every steps
    base = bindlab(main_p, main, "evaluate", "--variant", v, "--seed", str(s), "--threads", "1")
    out.append(("eval", base, logs / f"eval_{v}_{s}.log"))
    if s == 0 or v == ideal:
        out.append(("curve", base + ["--curve"], logs / f"curve_{v}_{s}.log"))
    if v in densities and s == 0:
        p, root = own_root(args, w, densities[v])
        link_root(main, root, ("scenes", "images", "captions", "models"))
        out.append(("eval own", bindlab(p, root, "evaluate", "--variant", v, "--seed", "0", "--threads", "1"),
                    logs / f"eval_own_{v}.log"))
    return out


def run_all(pipelines: dict[str, list], jobs: int, train_end: float, end: float, w: Path) -> dict:
    """Each run's commands one after another, at most `jobs` runs at once (0: all at once). A training
    still going at `train_end` is stopped, and the run scored where it got to; a run not begun by then is
    not started; anything still going at `end` is stopped. A run whose commands all succeeded leaves its
    done_mark in W."""
    waiting = list(pipelines)
    active: dict[str, tuple[int, str, subprocess.Popen]] = {}
    status: dict[str, object] = {}
    while waiting or active:
        while waiting and (not jobs or len(active) < jobs) and time.time() < train_end:
            name = waiting.pop(0)
            label, cmd, log = pipelines[name][0]
            active[name] = (0, label, sh(cmd, log))
        if time.time() >= train_end and waiting:
            status |= {f"run {name}": "not started" for name in waiting}
            waiting = []
        if time.time() >= end:
            for name, (_, label, p) in active.items():
                stop(p)
                status[f"{label} {name}"] = STOPPED
            break
        for name, (i, label, p) in list(active.items()):
            if label == "train" and p.poll() is None and time.time() >= train_end:
                stop(p)
                status[f"train {name}"] = STOPPED
            if p.poll() is None:
                continue
            rc = status.setdefault(f"{label} {name}", p.returncode)
            if rc not in (0, STOPPED) or i + 1 == len(pipelines[name]):
                del active[name]
                if all(status.get(f"{lab} {name}") == 0 for lab, _, _ in pipelines[name]):
                    done_mark(w, name).touch()
                print(f"{time.strftime('%H:%M:%S')} {name}: {[status.get(f'{lab} {name}') for lab, _, _ in pipelines[name]]}",
                      flush=True)
                continue
            label, cmd, log = pipelines[name][i + 1]
            active[name] = (i + 1, label, sh(cmd, log))
        time.sleep(2)
    return status


def run(args) -> None:
    w = args.work
    if w.exists() and not args.resume:
        shutil.rmtree(w)
    main_p, main = w / "main" / "params.yaml", w / "main" / "data"
    if not main_p.exists():
        write_params(args.params, main_p, args.small)
    params = load_params(main_p)
    runs, densities = plan(params)
    record = {"command": " ".join(sys.argv), "steps": params.variant(params.study.ideal).steps,
              "runs": [run_name(v, s) for v, s in runs], "own_format": densities, "jobs": args.jobs}
    record |= data(args, w, main_p, main, list(params.run_variants), densities)
    previous = json.loads((w / "record.json").read_text()) if (w / "record.json").exists() else {}
    record["status"] = previous.get("status", {})   # of the earlier sittings of a resumed run
    (w / "record.json").write_text(json.dumps(record, indent=1))   # for --collect while it runs

    # every run: its training, then its scores; all at once on a GPU, --jobs at a time on a CPU
    t1 = time.time()
    (w / "done").mkdir(exist_ok=True)
    todo = {run_name(v, s): steps_of(main_p, main, w, args, v, s, params.study.ideal, densities)
            for v, s in runs if not done_mark(w, run_name(v, s)).exists()}
    print(f"{len(runs) - len(todo)} runs done before; {len(todo)} to go, {args.jobs or 'all'} at a time", flush=True)
    status = run_all(todo, args.jobs, t1 + args.deadline, t1 + args.deadline + args.score_deadline, w)
    record["status"] |= {k: str(v) for k, v in status.items()}
    collect(w, args.out, record)
    print(f"{round(time.time() - t1)} s of runs in this sitting", flush=True)


def collect(w: Path, out: Path, record: dict) -> None:
    """OUT/converged.tar.gz: the record, the params, the logs and the metrics of every run."""
    main = DataPaths(w / "main" / "data")
    record["complete"] = sorted(r for r in record["runs"] if done_mark(w, r).exists())
    for r in record["runs"]:
        tsv = main.root / "metrics" / r / "train.tsv"
        record.setdefault("last_step", {})[r] = tsv.read_text().splitlines()[-1].split("\t")[0] if tsv.exists() else None
    print(json.dumps(record["last_step"]), flush=True)
    (w / "record.json").write_text(json.dumps(record, indent=1))
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "converged.tar.gz", "w:gz") as tar:
        tar.add(w / "record.json", "record.json")
        tar.add(w / "main" / "params.yaml", "main/params.yaml")
        tar.add(w / "logs", "logs")
        owns = [f"own_{k}" for k in sorted(set(record["own_format"].values()))]
        for name in owns:
            tar.add(w / name / "params.yaml", f"{name}/params.yaml")
        for name in ["main"] + owns:
            root = w / name / "data"
            records = DataPaths(root).record(root / "metrics")   # the runs' timing records
            for f in sorted((root / "metrics").rglob("*")) + sorted(records.rglob("timing.json")):
                if f.name in KEPT:
                    tar.add(f, f"{name}/data/{f.relative_to(root)}")
    print(f"-> {out / 'converged.tar.gz'}", flush=True)


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
    # only runs that reached their last step and were scored are judged; the others count as missing
    complete = set(record.get("complete", record["runs"]))
    for run in record["runs"]:
        if run not in complete:
            for d in work.glob(f"*/data/metrics/{run}"):
                shutil.rmtree(d)
    variants = list(dict.fromkeys(r.split("/")[0] for r in record["runs"] if r in complete))
    own_format = {v: k for v, k in record["own_format"].items() if v in variants}
    p = yaml.safe_load((work / "main" / "params.yaml").read_text())
    p["profiles"][PROFILE]["run_variants"] = variants
    p["study"]["seeds"] = sorted({int(r.split("/seed")[1]) for r in complete})
    (work / "main" / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    if p["study"]["ideal"] not in variants:
        sys.exit(f"{tarball}: the ideal run has not finished, and every finding is judged against it; "
                 "resume the run (--resume) first")
    own = work / "own_format"
    p["study"]["seeds"] = [0]
    p["profiles"][PROFILE]["run_variants"] = [p["study"]["ideal"], *own_format]
    own.mkdir()
    (own / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    shutil.copytree(work / "main" / "data" / "metrics" / p["study"]["ideal"], own / "data" / "metrics" / p["study"]["ideal"])
    for v, k in own_format.items():
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
    keep = {k: record.get(k) for k in ("steps", "own_format", "jobs", "data_s", "last_step", "md5")}
    runs = [r for r in record["runs"] if r in complete]
    main = DataPaths(work / "main" / "data")
    seconds = {r: timing.train_seconds(main.timing(main.root / "metrics" / r)) for r in runs}
    minutes = {r: round(x / 60, 1) for r, x in seconds.items() if x is not None}
    keep |= {"command": portable(record["command"]), "runs": runs, "planned": record["runs"],
             "train_minutes": minutes}
    (results / "run.json").write_text(json.dumps(keep, indent=1, sort_keys=True) + "\n")
    print(f"-> {results}")


def portable(command: str) -> str:
    """The command as a user would type it, without this machine's paths (work and output folders by
    their role, the params file by its name)."""
    words, out = command.split()[1:], ["python", "-m", "experiments.converged"]
    roles = {"--work": "W", "--out": "OUT"}
    while words:
        w = words.pop(0)
        out.append(w)
        if w in roles | {"--params": None} and words:
            value = words.pop(0)
            out.append(roles.get(w) or Path(value).name)
    return " ".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/converged"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--deadline", type=float, default=330.0, help="seconds of training after the data")
    ap.add_argument("--score-deadline", type=float, default=150.0, help="seconds of scoring after the deadline")
    ap.add_argument("--jobs", type=int, default=0, help="runs at once, one thread each (0: all at once, on a GPU)")
    ap.add_argument("--resume", action="store_true",
                    help="keep --work: skip the data and the finished runs, resume the others from their snapshots")
    ap.add_argument("--collect", action="store_true", help="only write OUT/converged.tar.gz from --work's finished runs")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--report", type=Path, metavar="TARBALL", help="write results/converged/ from a run's tarball")
    ap.add_argument("--results", type=Path, default=CONVERGED)
    args = ap.parse_args(argv)
    if args.report:
        report(args.report, args.results)
    elif args.out and args.collect:
        collect(args.work, args.out, json.loads((args.work / "record.json").read_text()))
    elif args.out:
        run(args)
    else:
        ap.error("--out (run) or --report (write the reports) is needed")


if __name__ == "__main__":
    main()
