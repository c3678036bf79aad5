"""Running a validation suite with Great Expectations: the one module that imports GX.

GX validates pandas frames of the suite's tables (bindlab/suites.py) and writes its Data Docs. Its
import takes about 4 s, so only `bindlab validate` imports this module (through bindlab/validate.py);
the suites themselves are built without it. GX runs under a fixed run id, so the page paths are the
same on every run. Each result row is turned into plain JSON: the expected range as text, the observed
value, pass or fail, and why the check exists.
"""
from __future__ import annotations

import datetime
import logging
import math
import sys
from pathlib import Path

import great_expectations as gx
import numpy as np
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.row_conditions import Column

from bindlab.io import writing
from bindlab.suites import Suite


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else round(float(x), 6)
    if isinstance(x, np.bool_):
        return bool(x)
    if x is None or isinstance(x, (int, str, bool)):
        return x
    return str(x)


def _num(x) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _expected(kind: str, kw: dict) -> str:
    if "min_value" in kw or "max_value" in kw:
        lo, hi = kw.get("min_value"), kw.get("max_value")
        text = f"{'-inf' if lo is None else _num(lo)} .. {'inf' if hi is None else _num(hi)}"
    elif "value_set" in kw:
        text = "in " + ", ".join(map(str, kw["value_set"]))
    elif "value" in kw:
        text = f"= {kw['value']}"
    elif kind == "ExpectColumnPairValuesAToBeGreaterThanB":
        text = f"{kw['column_A']} > {kw['column_B']}"
    elif kind == "ExpectColumnPairValuesToBeEqual":
        text = f"{kw['column_A']} == {kw['column_B']}"
    elif kind == "ExpectColumnValuesToNotBeNull":
        text = "no nulls"
    elif kind in ("ExpectColumnValuesToBeUnique", "ExpectCompoundColumnsToBeUnique"):
        text = "unique"
    else:
        text = kind
    if kw.get("row_condition"):
        text += f" where {kw['row_condition']}"
    return text


def _observed(result: dict) -> str:
    if "observed_value" in result:
        v = result["observed_value"]
        return f"{v:.6g}" if isinstance(v, float) else str(v)
    if "unexpected_count" in result:
        examples = ", ".join(map(str, (result.get("partial_unexpected_list") or [])[:5]))
        return (f"{result['unexpected_count']} of {result.get('element_count')} rows "
                f"({result.get('unexpected_percent') or 0:.2f}%) outside" + (f", e.g. {examples}" if examples else ""))
    return "-"


class _DocsErrors(logging.Handler):
    """GX logs an exception raised while it writes Data Docs and goes on with the pages missing. A
    failed write (an OSError, e.g. a full disk) is kept here, to be raised once GX returns; other
    records go on where they went before (the root logger's handlers, else stderr)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.error: OSError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]  # GX logs from inside its `except` block
        if isinstance(exc, OSError):
            self.error = self.error or exc
        else:
            logging.getLogger().callHandlers(record)


GX_RUN_TIME = "2000-01-01T00:00:00+00:00"  # a fixed run time: GX puts it in the Data Docs page paths


def run_suites(suite: Suite, docs: Path) -> tuple[list[dict], dict, dict]:
    """Run every table's checks with GX; Data Docs under `docs`.
    -> (rows for results.json, GX results, table -> its Data Docs page relative to `docs`)."""
    log = logging.getLogger("great_expectations")
    log.setLevel(logging.ERROR)
    errors = _DocsErrors()
    log.addHandler(errors)
    log.propagate = False  # the handler passes on what it does not keep
    try:
        with writing(docs):  # GX's own write errors name no file: name the Data Docs folder
            return _run(suite, docs, errors)
    finally:
        log.removeHandler(errors)
        log.propagate = True


def _raise_kept(errors: _DocsErrors) -> None:
    if errors.error is not None:
        raise errors.error


def _run(suite: Suite, docs: Path, errors: _DocsErrors) -> tuple[list[dict], dict, dict]:
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ctx.add_data_docs_site(site_name="local", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(docs).resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    source = ctx.data_sources.add_pandas(suite.name)
    definitions, frames = [], {}
    for table, frame in suite.tables.items():
        checks = [c for c in suite.checks if c.table == table]
        if not checks:
            continue
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        gx_suite = ctx.suites.add(gx.ExpectationSuite(name=f"{suite.name}.{table}"))
        for c in checks:
            kw = dict(c.kwargs)
            if "where" in kw:  # (column, value): the check applies to the rows where column == value
                col, value = kw.pop("where")
                kw["row_condition"] = Column(col) == value
            gx_suite.add_expectation(getattr(gx.expectations, c.kind)(**kw, notes=c.why or None,
                                                                      meta={"kind": c.kind}))
        definitions.append(ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite.name}.{table}", data=batch, suite=gx_suite)))
        frames[table] = frame.to_pandas()  # GX runs on pandas; polars stops at this boundary
    rows, raw, pages = [], {}, {}
    run_id = RunIdentifier(run_name=suite.name, run_time=datetime.datetime.fromisoformat(GX_RUN_TIME))
    for vd in definitions:
        table = vd.name.split(".", 1)[1]
        cp = ctx.checkpoints.add(gx.Checkpoint(
            name=vd.name, validation_definitions=[vd], result_format={"result_format": "SUMMARY"},
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["local"])]))
        result = cp.run(batch_parameters={"dataframe": frames[table]}, run_id=run_id)
        _raise_kept(errors)
        new = sorted(set((Path(docs) / "validations").rglob("*.html")) - set(pages.values()))
        if new:
            pages[table] = new[0]
        for vr in result.run_results.values():
            raw[table] = vr.to_json_dict()
            for r in vr.results:
                cfg = r.expectation_config
                kw = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
                rc = kw.get("row_condition")
                if isinstance(rc, dict) and "column" in rc:
                    kw["row_condition"] = f"{rc['column']['name']} {rc['operator']} {rc['parameter']}"
                rows.append(_jsonable({
                    "table": table, "expectation": cfg.type,
                    "column": kw.get("column") or ", ".join(kw.get("column_list") or [])
                    or f"{kw.get('column_A', '')}, {kw.get('column_B', '')}".strip(", ") or "(table)",
                    "expected": _expected((cfg.meta or {}).get("kind", cfg.type), kw),
                    "observed": "error: " + str(r.exception_info.get("exception_message"))
                    if (r.exception_info or {}).get("raised_exception") else _observed(r.result),
                    "success": bool(r.success), "why": cfg.notes or "",
                }))
    return rows, _jsonable(raw), {t: p.relative_to(docs).as_posix() for t, p in pages.items()}
