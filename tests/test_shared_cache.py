"""Two clones run `make study` at the same moment against one user-level DVC cache (the Makefile's
`cache` target, BINDLAB_DVC_CACHE), both checking out and both storing outputs, on a tiny study:
both finish, the cache stays consistent (every object's name is the md5 of its bytes, every run-cache
entry's names are the hashes of its content, nothing half-written is left), and both dvc.lock files
are byte for byte what a lone run writes. A third clone, started when the first begins training,
restores the data stages from the cache while the other two keep storing into it, then trains beside
them; a fourth restores the whole study from that cache without running a stage. The lone run is the
session's `made_study` (conftest.py; test_reproducible compares its bytes with another fresh run), and
the scenario runs as a background job beside the other tests (tests/background.py).

DVC adds a file to its cache by hard-linking it into place (an existing object is skipped), a `.dir`
listing and a run-cache entry by writing a temporary file and renaming it, and each clone's repository
lock is its own: two studies that compute the same outputs do not step on each other. The READMEs are
not compared: `make study` writes training minutes into them only where the clone trained itself
(bindlab/timing.py's record is deliberately not a DVC output)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dvc.stage.cache import _get_cache_hash
from dvc.utils.serialize import load_yaml
from background import JOBS
from tiny import env, run, stale

STARTED: list[subprocess.Popen] = []

RAN = re.compile(r"^Running stage '([^']+)'", re.M)
RESTORED = re.compile(r"^Stage '([^']+)' is cached - skipping run", re.M)
UNCHANGED = re.compile(r"^Stage '([^']+)' didn't change, skipping", re.M)


def clone(origin: Path, name: str) -> Path:
    run(origin.parent, "git", "clone", "-q", str(origin), name)
    return origin.parent / name


def start_study(folder: Path, cache: Path) -> tuple[subprocess.Popen, Path]:
    """The Makefile's `make study` in `folder`, run with the running venv (its python target marked
    old, so it is not reinstalled) and `cache` as the user-level DVC cache. Stage commands and
    `python -m bindlab.cli` run the clone's own bindlab, as in a clone with its own venv."""
    log = folder.parent / f"{folder.name}.log"
    cmd = ["make", "study", f"VENV={sys.prefix}", "-o", f"{sys.prefix}/bin/python"]
    with log.open("w") as out:
        p = subprocess.Popen(cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True,
                             env=env() | {"BINDLAB_DVC_CACHE": str(cache), "PYTHONPATH": str(folder)})
    STARTED.append(p)
    return p, log


def finish(p: subprocess.Popen, log: Path) -> str:
    p.wait(timeout=1800)
    text = log.read_text()
    assert p.returncode == 0, f"{log.name}: make study exit {p.returncode}\n{text[-4000:]}"
    assert "Traceback" not in text and "ERROR: " not in text, text[-4000:]
    return text


def lock_objects(lock: dict) -> set[str]:
    """The md5 of every output in a dvc.lock (a directory output's listing too)."""
    return {out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def check_cache(cache: Path, lock: dict) -> dict[str, int]:
    """The cache is whole and consistent: every object under files/md5 is named by the md5 of its bytes
    (a `.dir` object too: the md5 of its JSON listing, with `.dir` appended), nothing else lies there
    (no temporary file left from an interrupted write), every object of `lock` and of its directory
    listings is there, and every run-cache entry is named by the hashes DVC derives from its content,
    one entry per stage (both clones computed the same outputs)."""
    assert {p.name for p in cache.iterdir()} == {"files", "runs"}
    objects = {}
    for prefix in (cache / "files" / "md5").iterdir():
        assert re.fullmatch(r"[0-9a-f]{2}", prefix.name), prefix
        for f in prefix.iterdir():
            assert re.fullmatch(r"[0-9a-f]{30}(\.dir)?", f.name), f"stray file in the cache: {f}"
            oid = prefix.name + f.name
            assert hashlib.md5(f.read_bytes()).hexdigest() == oid.removesuffix(".dir"), f"damaged object {f}"
            objects[oid] = f
    wanted = lock_objects(lock)
    for oid in [o for o in wanted if o.endswith(".dir")]:
        wanted |= {entry["md5"] for entry in json.loads(objects[oid].read_text())}
    assert wanted <= set(objects), f"missing from the cache: {sorted(wanted - set(objects))}"
    entries = list((cache / "runs").glob("*/*/*"))
    for f in entries:
        key, value = f.parent.name, f.name
        assert f.parent.parent.name == key[:2]
        entry = load_yaml(str(f))
        assert _get_cache_hash(dict(entry)) == value, f"run-cache entry {f} does not match its content"
        assert _get_cache_hash(dict(entry), key=True) == key, f"run-cache entry {f} is under the wrong key"
        assert {out["md5"] for out in entry.get("outs", [])} <= set(objects), f
    keys = [f.parent.name for f in entries]
    assert len(keys) == len(set(keys)), "two run-cache entries for one stage: the clones computed different outputs"
    assert len(keys) == len(lock["stages"]), (len(keys), len(lock["stages"]))
    return {"objects": len(objects), "runs": len(entries)}


def stages_of(text: str) -> dict[str, set[str]]:
    return {"ran": set(RAN.findall(text)), "restored": set(RESTORED.findall(text)),
            "unchanged": set(UNCHANGED.findall(text))}


def wait_for(p: subprocess.Popen, log: Path, pattern: str, timeout: float = 900) -> None:
    """Until `log` shows a line starting with `pattern` (or its study has ended)."""
    end = time.monotonic() + timeout
    while p.poll() is None and not re.search("^" + re.escape(pattern), log.read_text(), re.M):
        assert time.monotonic() < end, f"{log.name}: no {pattern!r} yet\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def check_clones(clones: list[Path], texts: list[str], reference: bytes, names: set[str]) -> dict:
    """Each clone ran, restored or found up to date every stage, its dvc.lock is the lone run's byte
    for byte, and DVC calls it up to date. -> how many stages each clone ran and restored."""
    seen = {}
    for folder, text in zip(clones, texts):
        s = stages_of(text)
        seen[folder.name] = {k: len(v) for k, v in s.items()}
        assert s["ran"] | s["restored"] | s["unchanged"] == names, s
        assert not (s["ran"] & s["restored"] or s["ran"] & s["unchanged"]), s
        assert (folder / "dvc.lock").read_bytes() == reference, f"{folder.name}: dvc.lock differs from a lone run's"
        assert stale(folder) == set()
        assert run(folder, "git", "status", "--porcelain", "dvc.lock").stdout == ""
    return seen


def stop_started() -> None:
    """Stops the studies a failed run leaves running (each is its own process group: make, dvc, stage)."""
    for p in STARTED:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=60)
    STARTED.clear()


def run_concurrent_studies(tmp: Path, made: dict) -> str:
    """The scenario of the module's docstring, as a background job (tests/background.py): its studies
    are subprocesses, so it runs on the spare core while other tests run; its assertions are raised in
    the test. -> the summary line."""
    try:
        return share_one_cache(tmp, made)
    finally:
        stop_started()


def share_one_cache(tmp: Path, made: dict) -> str:
    # the lone run with a cache of its own (the session's `made_study`, a clone of its `origin`): the
    # reference dvc.lock, committed in a clone of that origin as the project commits its own
    times = {"alone": made["seconds"]}
    text = made["out"]
    assert "Traceback" not in text and "ERROR: " not in text, text[-4000:]
    reference = (made["folder"] / "dvc.lock").read_bytes()
    lock = yaml.safe_load(reference)
    names = set(lock["stages"])
    assert stages_of(text)["ran"] == names
    run(tmp, "git", "clone", "-q", str(made["origin"]), "origin")
    origin = tmp / "origin"
    (origin / "dvc.lock").write_bytes(reference)
    run(origin, "git", "add", "dvc.lock")
    run(origin, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "dvc.lock")

    # two clones, one empty shared cache, started together: each checks out what the cache holds (at
    # first nothing), then runs (or restores from the run-cache) every stage and stores its outputs;
    # a third starts when the first begins training, so it restores the data stages from the cache
    # while the other two keep storing into it, and trains and evaluates beside them
    shared = tmp / "cache_shared"
    b, c, late = clone(origin, "b"), clone(origin, "c"), clone(origin, "late")
    t = time.monotonic()
    runs = [start_study(b, shared), start_study(c, shared)]
    wait_for(*runs[0], "Running stage 'train@")
    runs.append(start_study(late, shared))
    seen = check_clones([b, c, late], [finish(*r) for r in runs], reference, names)
    times["concurrent"] = time.monotonic() - t
    assert seen["late"]["restored"] + seen["late"]["unchanged"] > 0, seen
    counts = check_cache(shared, lock)

    # a fourth clone restores the whole study from the shared cache: no stage runs, outputs are links
    d = clone(origin, "d")
    t = time.monotonic()
    text = finish(*start_study(d, shared))
    times["restore"] = time.monotonic() - t
    s = stages_of(text)
    assert s["ran"] == set() and s["restored"] == set() and s["unchanged"] == names, s
    check_clones([d], [text], reference, names)
    # (the report stage's files are left out: `make study` rewrites them with `bindlab report --readme`)
    linked = 0
    for name, stage in lock["stages"].items():
        for out in stage.get("outs", []) if name != "report" else []:
            path, oid = d / out["path"], out["md5"]
            if not oid.endswith(".dir") and out["size"] > 0:  # DVC creates empty files instead of linking
                assert os.stat(path).st_ino == os.stat(shared / "files/md5" / oid[:2] / oid[2:]).st_ino, path
                linked += 1
    assert linked >= len(names), linked
    assert check_cache(shared, lock) == counts
    return (f"\nshared cache: {counts}; stages per clone {seen}; "
            + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))


JOBS.register("concurrent_studies", run_concurrent_studies, needs=("made_study",))


@pytest.fixture
def concurrent_studies(background_jobs):
    """The background job's outcome, waited for inside the test (so its assertions fail the test)."""
    return lambda: background_jobs.result("concurrent_studies")


def test_concurrent_studies_share_one_cache(concurrent_studies):
    print(concurrent_studies())


# --- a committed dvc.lock written on another machine -------------------------------------------

MACHINE_BOUND = ("train", "chance", "evaluate", "curve", "report")   # what training's floating point decides


def foreign_lock(reference: bytes) -> bytes:
    """The reference lock as another machine would have written it: every output of the stages that
    depend on training's floating point carries another hash (in the deps that name it too)."""
    lock = yaml.safe_load(reference)
    text = reference.decode()
    for name, stage in lock["stages"].items():
        if name.split("@")[0] in MACHINE_BOUND:
            for out in stage.get("outs", []):
                oid = out["md5"]
                other = hashlib.md5(b"another machine " + oid.encode()).hexdigest()
                text = text.replace(oid.removesuffix(".dir"), other)
    return text.encode()


def restore_foreign_lock(tmp: Path, made: dict) -> str:
    """Two clones of a project whose committed dvc.lock names outputs absent from their shared cache:
    the first computes them, the second runs no stage (the run-cache the first filled); both end
    with this machine's lock."""
    try:
        reference = (made["folder"] / "dvc.lock").read_bytes()
        names = set(yaml.safe_load(reference)["stages"])
        run(tmp, "git", "clone", "-q", str(made["origin"]), "origin")
        origin = tmp / "origin"
        (origin / "dvc.lock").write_bytes(foreign_lock(reference))
        run(origin, "git", "add", "dvc.lock")
        run(origin, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "another machine's lock")
        shared = tmp / "cache_shared"
        seen, times = {}, {}
        for name in ("first", "second"):
            folder = clone(origin, name)
            t = time.monotonic()
            seen[name] = stages_of(finish(*start_study(folder, shared)))
            times[name] = time.monotonic() - t
            assert (folder / "dvc.lock").read_bytes() == reference, f"{name}: dvc.lock is not this machine's"
            assert stale(folder) == set()
        trained = {n for n in names if n.startswith("train@")}
        assert trained and trained <= seen["first"]["ran"], seen["first"]
        assert seen["second"]["ran"] == set(), f"the second clone ran {sorted(seen['second']['ran'])}"
        assert seen["second"]["restored"] >= trained, seen["second"]
        return f"\nforeign lock: first clone {times['first']:.0f} s, second {times['second']:.0f} s (no stage ran)"
    finally:
        stop_started()


JOBS.register("foreign_lock", restore_foreign_lock, needs=("made_study",))


@pytest.fixture
def foreign_lock_restored(background_jobs):
    return lambda: background_jobs.result("foreign_lock")


def test_a_lock_from_another_machine_is_restored_from_the_run_cache(foreign_lock_restored):
    print(foreign_lock_restored())
