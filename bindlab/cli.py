"""`bindlab`: one subcommand per stage, plus `bindlab bench ...`.

Heavy libraries (torch, open_clip, great_expectations) are imported inside the handlers, so
`bindlab --help` and the light stages start fast.
"""
from __future__ import annotations

import argparse
import sys

from bindlab.errors import StageError
from bindlab.params import ParamsError, load_params
from bindlab.paths import DataPaths


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--data", default="data", help="data root (default: data)")


def _ctx(args):
    return load_params(args.params), DataPaths(args.data)


# --- data stages -------------------------------------------------------------------------------

def _sample(args) -> None:
    from bindlab.scenes import sample_stage
    params, paths = _ctx(args)
    sample_stage(params, paths, args.scenes)


def _render(args) -> None:
    from bindlab.render import render_stage
    params, paths = _ctx(args)
    render_stage(params, paths, args.scenes, workers=args.workers)


def _captions(args) -> None:
    from bindlab.captions import captions_stage
    params, paths = _ctx(args)
    captions_stage(params, paths, args.variant)


def _benchmark(args) -> None:
    from bindlab.benchmark import benchmark_stage
    params, paths = _ctx(args)
    benchmark_stage(params, paths, workers=args.workers)


def _bench(args) -> None:
    from bindlab import bench
    params = load_params(args.params)
    bench.run(args.what, params, args)


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

    p = sub.add_parser("captions", help="captions of one variant, from its scene graphs")
    _common(p)
    p.add_argument("--variant", required=True, help="variant name from params.yaml variants")
    p.set_defaults(func=_captions)

    p = sub.add_parser("benchmark", help="the binding benchmark: items, counterfactual images, probes")
    _common(p)
    p.add_argument("--workers", type=int, default=None, help="processes (default: render.workers)")
    p.set_defaults(func=_benchmark)

    p = sub.add_parser("bench", help="benchmarks that print throughput figures")
    _common(p)
    p.add_argument("what", choices=["render", "captions"], help="what to measure")
    p.add_argument("-n", type=int, default=None, help="items to process (default depends on bench)")
    p.set_defaults(func=_bench)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ParamsError, StageError) as e:
        print(f"bindlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
