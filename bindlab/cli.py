"""`bindlab`: one subcommand per stage.

The speed benchmarks are not stages: `python -m benchmarks` lists them.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import traceback

from bindlab.errors import StageError
from bindlab.io import WriteError
from bindlab.params import ParamsError, load_params
from bindlab.paths import DataPaths


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--data", default="data", help="data root (default: data)")


def _ctx(args):
    return load_params(args.params), DataPaths(args.data)


# Each handler imports its stage module inside the function, on purpose (the one place in the package
# that defers bindlab imports): the stage modules import torch and open_clip (train, evaluate: about
# 7 s) or Great Expectations (validate: about 4 s) at their top, which `bindlab sample` or
# `bindlab --help` must not pay for.

# --- data stages -------------------------------------------------------------------------------

def _sample(args) -> None:
    from bindlab.scenes import sample_stage
    params, paths = _ctx(args)
    sample_stage(params, paths, args.scenes)


def _render(args) -> None:
    from bindlab.render import render_stage
    params, paths = _ctx(args)
    render_stage(params, paths, args.scenes, workers=args.workers)


def _look(args) -> None:
    from bindlab.render import vocabulary_sheet
    params, paths = _ctx(args)
    out = args.out or paths.root / "vocabulary.png"
    n = vocabulary_sheet(params, out)
    print(f"vocabulary sheet: {n} images (every attribute value on every shape) -> {out}")


def _captions(args) -> None:
    from bindlab.captions import captions_stage
    params, paths = _ctx(args)
    captions_stage(params, paths, args.variant)


def _benchmark(args) -> None:
    from bindlab.benchmark import benchmark_stage
    params, paths = _ctx(args)
    benchmark_stage(params, paths, workers=args.workers)


# --- caption statistics, validation, audit -------------------------------------------------------

def _stats(args) -> None:
    from bindlab.stats import stats_stage
    params, paths = _ctx(args)
    stats_stage(params, paths, args.variant)


def _validate(args) -> None:
    from bindlab import validate
    params, paths = _ctx(args)
    if args.variant:
        validate.validate_variant(params, paths, args.variant)
    elif args.scenes:
        validate.validate_scenes(params, paths, args.scenes)
    else:
        validate.validate_benchmark(params, paths)


def _audit(args) -> None:
    from bindlab import audit
    params, paths = _ctx(args)
    if args.variant:
        audit.audit_variant(params, paths, args.variant)
    else:
        audit.audit_overview(params, paths)


# --- training and evaluation ----------------------------------------------------------------------

def _train(args) -> None:
    from bindlab.train import train_stage
    params, paths = _ctx(args)
    train_stage(params, paths, args.variant, args.seed, fresh=args.fresh, threads=args.threads,
                progress=not args.no_progress, require_validation=not args.unvalidated)


def _evaluate(args) -> None:
    from bindlab.evaluate import curve_stage, evaluate_stage
    params, paths = _ctx(args)
    if args.curve:
        if args.variant is None or args.checkpoint or args.model:
            raise StageError("evaluate --curve: give --variant NAME (a trained run's weight snapshots), "
                             "not --checkpoint or --model")
        curve_stage(params, paths, args.variant, args.seed, threads=args.threads)
        return
    r = evaluate_stage(params, paths, args.variant, args.seed, checkpoint=args.checkpoint,
                       model_name=args.model, out=args.out, threads=args.threads)
    print(f"evaluate {r['variant'] or r['model']}: i2t pairwise {r['i2t_pairwise']:.3f}  strict "
          f"{r['i2t_strict']:.3f} (chance {r['chance']['i2t_strict']:.3f})  t2i {r['t2i_pairwise']:.3f}  "
          f"probe {r['probe']:.3f}  R@1 i2t {r['r1_i2t']:.3f}")


def _chance(args) -> None:
    from bindlab.chance import chance_stage
    params, paths = _ctx(args)
    r = chance_stage(params, paths, args.seed, threads=args.threads)["chance_measured"]
    print(f"chance seed {r['seed']} (untrained model): i2t pairwise {r['i2t_pairwise']:.3f}  strict "
          f"{r['i2t_strict']:.3f}  probe {r['probe']:.3f} -> {paths.chance(r['seed'])}")


# --- the study's findings -------------------------------------------------------------------------

def _report(args) -> None:
    from bindlab.report import report_stage
    params, paths = _ctx(args)
    report_stage(params, paths, readme=args.readme)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bindlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sample", help="sample a scene set's scene graphs (parquet)")
    _common(p)
    p.add_argument("--scenes", required=True, help="scene set name from params.yaml scene_sets")
    p.set_defaults(func=_sample)

    p = sub.add_parser("render", help="render a scene set to a uint8 .npy and a contact sheet")
    _common(p)
    p.add_argument("--scenes", required=True, help="scene set name from params.yaml scene_sets")
    p.add_argument("--workers", type=int, default=None, help="processes (default: render.workers)")
    p.set_defaults(func=_render)

    p = sub.add_parser("look", help="the vocabulary sheet: every value of every attribute type on every shape (PNG)")
    _common(p)
    p.add_argument("--out", default=None, help="PNG path (default: DATA/vocabulary.png)")
    p.set_defaults(func=_look)

    p = sub.add_parser("captions", help="captions of one variant, from its scene graphs")
    _common(p)
    p.add_argument("--variant", required=True, help="variant name from params.yaml variants")
    p.set_defaults(func=_captions)

    p = sub.add_parser("benchmark", help="the binding benchmark: items, counterfactual images, probes")
    _common(p)
    p.add_argument("--workers", type=int, default=None, help="processes (default: render.workers)")
    p.set_defaults(func=_benchmark)

    p = sub.add_parser("stats", help="caption statistics of one variant (parquet + JSON summary)")
    _common(p)
    p.add_argument("--variant", required=True, help="variant name from params.yaml variants")
    p.set_defaults(func=_stats)

    p = sub.add_parser("validate", help="Great Expectations checks: a variant's captions, a scene set, "
                                        "or the benchmark; exits non-zero on any failure")
    _common(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--variant", help="variant name: its captions against its declared properties")
    which.add_argument("--scenes", help="scene set name: the scene table and its images")
    which.add_argument("--benchmark", action="store_true", help="the benchmark folder")
    p.set_defaults(func=_validate)

    p = sub.add_parser("audit", help="HTML audit page of a variant, or the overview across variants")
    _common(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--variant", help="variant name: data/audit/VARIANT/index.html")
    which.add_argument("--overview", action="store_true", help="data/audit/index.html across all variants")
    p.set_defaults(func=_audit)

    p = sub.add_parser("train", help="train CLIP from scratch on one variant (resumes from its last checkpoint)")
    _common(p)
    p.add_argument("--variant", required=True, help="variant name from params.yaml variants")
    p.add_argument("--seed", type=int, default=None, help="run seed (default: params seed)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--unvalidated", action="store_true",
                   help="train even if the variant has not passed `bindlab validate` (experiments only)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="binding metrics of a trained run or any checkpoint on the benchmark")
    _common(p)
    p.add_argument("--variant", default=None, help="variant name: evaluates data/models/VARIANT/seedS/last.pt")
    p.add_argument("--seed", type=int, default=None, help="run seed (default: params seed)")
    p.add_argument("--checkpoint", default=None, help="a bindlab checkpoint, or local weights with --model")
    p.add_argument("--model", default=None, help="an open_clip model name (architecture of --checkpoint)")
    p.add_argument("--out", default=None, help="output folder (default: the run's metrics folder, or "
                                               "data/metrics/external/CHECKPOINT_NAME)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads)")
    p.add_argument("--curve", action="store_true", help="score every weight snapshot of the run instead "
                                                        "(binding against training): data/metrics/VARIANT/seedS/curve.json")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("chance", help="the measured chance level of a seed (its untrained model on the benchmark), "
                                      "shared by every variant's evaluation: data/chance/seedS.json")
    _common(p)
    p.add_argument("--seed", type=int, default=None, help="run seed (default: params seed)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: train.threads)")
    p.set_defaults(func=_chance)

    p = sub.add_parser("report", help="the findings report: data/report/index.html, summary.md, findings.json")
    _common(p)
    p.add_argument("--readme", default=None, metavar="PATH",
                   help="also write the summary between the results markers of this README")
    p.set_defaults(func=_report)

    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except WriteError as e:  # the disk or the folder, not the study: say what to rerun once it is fixed
        # the stage's frames may still hold a memory map of a removed temporary file, which keeps its
        # space in use: release them before the message measures what the file system has left
        traceback.clear_frames(e.__traceback__)
        print(f"bindlab {args.command}: error: {e}, then rerun `{shlex.join(['bindlab', *argv])}`", file=sys.stderr)
        return 2
    except (ParamsError, StageError) as e:
        print(f"bindlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
