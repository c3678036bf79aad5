"""The package's shape, checked from the source (no imports executed):

- bindlab's modules form layers; a module imports only its own or lower layers, with no cycle, and
  every bindlab import sits at the top of its module (cli.py alone defers its stage modules, so that
  `bindlab sample` does not pay for torch or Great Expectations);
- no module is over MAX_LINES;
- dvc.yaml's code dependencies of each stage are exactly the modules its command runs: cli.py, what
  cli.py imports, and what its handler imports, transitively. DVC decides staleness from that list, so
  a module missing from it would let `dvc status` call a stale result up to date.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "bindlab"
MAX_LINES = 450

# bottom layer first; a new module must be placed here
LAYERS = (
    ("errors", "paths", "io", "look", "figures", "intervals", "timing", "datadocs", "sampler", "kernels"),
    ("params",),
    ("contracts",),
    ("wording", "scenes", "model"),
    ("render", "captions", "stats", "benchmark", "train", "metrics", "suites", "sight", "findings", "audit"),
    ("expectations", "validate", "evaluate", "chance", "heatmap", "verdict_table", "report_pages", "report"),
    ("cli",),
)
LAYER = {m: i for i, names in enumerate(LAYERS) for m in names}
DEFERS_ON_PURPOSE = {"cli"}


def modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imported(node: ast.AST) -> list[str]:
    """bindlab modules an import statement names (`from bindlab import x` and `from bindlab.x import y`)."""
    if isinstance(node, ast.ImportFrom) and node.module:
        if node.module == "bindlab":
            return [a.name for a in node.names]
        if node.module.startswith("bindlab."):
            return [node.module.split(".")[1]]
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("bindlab.")]
    return []


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(bindlab modules imported at the top, those imported inside functions) of one module."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    top = {m for node in tree.body for m in _imported(node)}
    inner = {m for node in ast.walk(tree) for m in _imported(node)} - top
    return top, inner


def closure(start: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            top, inner = imports_of(m)
            todo += top | inner
    return seen


def test_every_module_has_a_layer():
    assert set(modules()) - set(LAYER) == set(), "place the new module in LAYERS"
    assert set(LAYER) - set(modules()) == set(), "LAYERS names a module that is gone"


@pytest.mark.parametrize("module", modules())
def test_imports_point_down_and_sit_at_the_top(module):
    top, inner = imports_of(module)
    up = {m for m in top | inner if LAYER[m] > LAYER[module]}
    assert not up, f"bindlab/{module}.py (layer {LAYER[module]}) imports a higher layer: {sorted(up)}"
    if module not in DEFERS_ON_PURPOSE:
        assert not inner, f"bindlab/{module}.py imports bindlab modules inside functions: {sorted(inner)}"


def test_no_import_cycle():
    graph = {m: imports_of(m)[0] | imports_of(m)[1] for m in modules()}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        for n in sorted(graph[m]):
            assert n not in path + [m], "import cycle: " + " -> ".join((path + [m])[(path + [m]).index(n):] + [n])
            if n not in done:
                visit(n, path + [m])
        done.add(m)

    for m in modules():
        visit(m, [])


ORCHESTRATION = ("prefect", "dvc", "flows", "tasks")


@pytest.mark.parametrize("module", modules())
def test_the_domain_package_leaves_orchestration_outside(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    used = sorted(n for n in names if n.split(".")[0] in ORCHESTRATION)
    assert not used, f"bindlab/{module}.py imports {used}: orchestration belongs in flows/ and tasks/"


@pytest.mark.parametrize("path", sorted(p for d in ("bindlab", "flows", "tasks", "benchmarks", "experiments", "tests")
                                         for p in (REPO / d).glob("*.py")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(REPO)}: {n} lines (at most {MAX_LINES}: split it along a seam)"


def handlers() -> dict[str, str]:
    """cli subcommand -> the name of its handler function, from build_parser's
    `p = sub.add_parser(NAME, ...)` ... `p.set_defaults(func=HANDLER)` pairs."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    build = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_parser")
    out, current = {}, None
    for node in ast.walk(build):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "add_parser" and node.args and isinstance(node.args[0], ast.Constant):
                current = node.args[0].value
            if node.func.attr == "set_defaults" and current:
                func = next(k.value for k in node.keywords if k.arg == "func")
                out[current] = func.id
    return out


def runs(subcommand: str) -> set[str]:
    """The bindlab modules `bindlab SUBCOMMAND` executes: cli.py, its top-level imports and the
    handler's own imports, transitively."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    name = handlers()[subcommand]
    handler = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    own = {m for node in ast.walk(handler) for m in _imported(node)}
    return {"cli"} | closure(imports_of("cli")[0] | own)   # cli.py's other handlers do not run


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(dvc_stages()))
def test_dvc_code_deps_are_what_the_stage_runs(stage):
    body = dvc_stages()[stage]
    body = body.get("do", body)
    match = re.match(r"bindlab (\S+)", body["cmd"])
    assert match, f"dvc.yaml stage {stage}: its cmd is not a `bindlab` subcommand: {body['cmd']}"
    listed = {d for d in body["deps"] if d.startswith("bindlab/")}
    wanted = {f"bindlab/{m}.py" for m in runs(match.group(1))}
    assert listed == wanted, (f"dvc.yaml stage {stage}: code deps differ from what `{body['cmd']}` runs; "
                              f"missing {sorted(wanted - listed)}, not run {sorted(listed - wanted)}")


def test_no_issue_numbers_in_code_or_params():
    pattern = re.compile(r"issue [0-9]", re.I)
    files = [*(p for d in ("bindlab", "flows", "tasks", "benchmarks", "experiments", "tests") for p in (REPO / d).glob("*.py")),
             REPO / "params.yaml", REPO / "README.md", REPO / "Makefile", REPO / "dvc.yaml"]
    hits = [f"{p.relative_to(REPO)}:{i}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"comments say why, not when; history lives in commits: {hits}"
