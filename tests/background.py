"""Jobs on the spare core. The suite runs one test at a time, and most tests keep one core busy, so
the from-scratch DVC studies (pure subprocesses, no state of the pytest process) run on a worker
thread beside the other tests: conftest's autouse session fixture starts the jobs that the collected
tests use (by fixture name, with what they need), one after another in the order the tests need
them, and a fixture or test that needs a job's outcome waits for it (`JOBS.result`); an exception of
the job is raised there, as if the job had run in that test. A job that was not started (no
collected test asked for it) runs inline.

The worker runs its subprocesses with the environment of the session's start: a test that changes
os.environ (monkeypatch) must not change what a study sees."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import tiny


class Jobs:
    def __init__(self):
        self.specs: dict[str, tuple[Callable, tuple[str, ...]]] = {}
        self.events: dict[str, threading.Event] = {}
        self.outcomes: dict[str, tuple[bool, object]] = {}
        self.tmp: dict[str, Path] = {}
        self.factory = None
        self.thread: threading.Thread | None = None
        self.cancelled = False

    def register(self, name: str, fn: Callable, needs: tuple[str, ...] = ()) -> None:
        """fn(tmp folder, *the outcomes of `needs`) -> the job's outcome."""
        self.specs[name] = (fn, needs)

    def _order(self, wanted: list[str]) -> list[str]:
        """The jobs of `wanted` (fixture names in the order the tests first use them) and what they
        need, each after what it needs: the job the earliest test waits for comes first."""
        order: list[str] = []

        def visit(n: str) -> None:
            if n not in order:
                for d in self.specs[n][1]:
                    visit(d)
                order.append(n)
        for n in wanted:
            if n in self.specs:
                visit(n)
        return order

    def start(self, wanted: list[str], factory) -> None:
        self.factory = factory
        order = self._order(wanted)
        if not order:
            return
        for name in order:
            self.tmp[name] = factory.mktemp(name)
            self.events[name] = threading.Event()
        environ = dict(os.environ)
        self.thread = threading.Thread(target=self._work, args=(order, environ), name="spare-core", daemon=True)
        self.thread.start()

    def _run(self, name: str) -> None:
        """Run one job and keep its outcome, an exception included (handed to whoever waits for it)."""
        try:
            if self.cancelled:
                raise RuntimeError(f"background job {name} not run: the session ended first")
            fn, needs = self.specs[name]
            self.outcomes[name] = (True, fn(self.tmp[name], *[self.result(d) for d in needs]))
        except BaseException as e:  # noqa: BLE001
            self.outcomes[name] = (False, e)
        finally:
            self.events[name].set()

    def _work(self, order: list[str], environ: dict) -> None:
        tiny.pin_environ(environ)
        for name in order:
            self._run(name)

    def result(self, name: str):
        if name not in self.events:  # nobody collected asked for it at the start: run it here
            self.tmp[name] = self.factory.mktemp(name)
            self.events[name] = threading.Event()
            self._run(name)
        self.events[name].wait()
        ok, value = self.outcomes[name]
        if not ok:
            raise value
        return value

    def finish(self) -> None:
        """Jobs not yet begun are dropped; the one running ends on its own (its subprocesses with it)."""
        self.cancelled = True
        if self.thread is not None:
            self.thread.join()


JOBS = Jobs()
