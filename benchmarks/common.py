"""What the benchmarks share: their command line and how an error ends one."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from bindlab.errors import StageError
from bindlab.params import Params, ParamsError, load_params
from bindlab.paths import DataPaths


def parser(module: str, doc: str, n_help: str | None) -> argparse.ArgumentParser:
    """--params, --data and -n (none when `n_help` is None); `doc`: the module docstring, whose first
    line describes the benchmark."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.strip().splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--data", default="data", help="data root (default: data)")
    if n_help is not None:
        p.add_argument("-n", type=int, default=None, help=n_help)
    return p


def run(p: argparse.ArgumentParser, argv: list[str] | None,
        body: Callable[[Params, DataPaths, argparse.Namespace], None]) -> int:
    """Parse argv and run body(params, paths, args). A params file or an input that cannot be used ends
    it with one line on stderr and exit status 2, as the `bindlab` command does."""
    args = p.parse_args(argv)
    try:
        body(load_params(args.params), DataPaths(args.data), args)
    except (ParamsError, StageError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
