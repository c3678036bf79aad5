"""Write failures: a full disk, a read-only file system, a folder that cannot be written, a file where a
folder should be.

Each case runs one stage the way a user does (`bindlab ...` in a subprocess) with its data root on a
small tmpfs, filled so that the stage's output does not fit, and checks the contract of a refused
write: exit status 2, one line on stderr (no traceback) naming the file, the reason, the space left
(for a full disk) and the command to rerun; no temporary file left behind, no new file, and every
file that was there before (the stage's own earlier outputs included) byte-identical. Mounting needs
root; elsewhere those cases are skipped with the reason, and the in-process cases, which make every
write fail with ENOSPC past a byte budget at the one place writes go through (bindlab/io.py), still
run.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from tiny import copy_study

from bindlab import io
from bindlab.cli import main
from bindlab.io import WriteError, atomic_dir, atomic_path, together, write_json

STALE = b"an earlier output\n"
BAR = re.compile(r"^render \S+:\s+\d+%\|")  # render's progress bar, on stderr as in a terminal
FREE = re.compile(r"\(\d+(\.\d)? (bytes|KiB|MiB|GiB) free of \d+(\.\d)? (bytes|KiB|MiB|GiB) on the file system of ")


# --- the tiny study, with the stages that the tiny_study fixture does not run --------------------------

@pytest.fixture(scope="module")
def base(tiny_study, tmp_path_factory) -> Path:
    """A copy of the tiny study with ideal's statistics and evaluation (what audit and report read)."""
    folder = tmp_path_factory.mktemp("write_failures")
    _, paths, params_file = copy_study(tiny_study, folder)
    common = ["--params", str(params_file), "--data", str(paths.root)]
    for cmd in (["stats", "--variant", "ideal"], ["evaluate", "--variant", "ideal"]):
        assert main([*cmd, *common]) == 0, cmd
    return folder


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _size(root: Path, rels) -> int:
    files = [f for rel in rels for f in ([root / rel] if (root / rel).is_file() else (root / rel).rglob("*"))]
    return sum(f.stat().st_size for f in files if f.is_file())


def _check(code: int, err: str, argv: list[str], data: Path, before: dict, named: tuple[str, ...],
           reason: str) -> str:
    """The contract of a refused write; -> the error line."""
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip() and not BAR.match(line)]
    assert code == 2, f"exit {code}; stderr: {err[-3000:]}"
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    line = lines[0]
    assert line.startswith(f"bindlab {argv[0]}: error: "), line
    assert any(f"{data / rel}" in line for rel in named), (named, line)
    assert reason in line, line
    if reason == "no space left on device":
        assert FREE.search(line), line
    assert line.endswith(f", then rerun `{shlex.join(['bindlab', *argv])}`"), line
    temps = sorted(str(p.relative_to(data)) for p in data.rglob(".*"))
    assert not temps, f"temporary files left: {temps}"
    after = _digest(data)
    new = sorted(after.keys() - before.keys())
    assert not new, f"new files: {new}"
    changed = sorted(k for k in before if before[k] != after.get(k))
    assert not changed, f"earlier files changed or removed: {changed}"
    return line


# --- a small file system (root: tmpfs) -----------------------------------------------------------

@lru_cache(maxsize=None)
def _cannot_mount() -> str | None:
    """Why a tmpfs cannot be mounted here (None: it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting a tmpfs needs root; the in-process cases below cover the same place"
    where = tempfile.mkdtemp(prefix="bindlab-mount-")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", where], capture_output=True, text=True)
        if r.returncode != 0:
            return f"`mount -t tmpfs` is refused here ({r.stderr.strip() or r.returncode})"
        subprocess.run(["umount", where], check=True)
        return None
    except OSError as e:
        return f"no mount command ({e})"
    finally:
        os.rmdir(where)


@pytest.fixture
def small_fs():
    """mount(size) -> a folder on a fresh tmpfs of that size (mode 755); unmounted at the end."""
    reason = _cannot_mount()
    if reason:
        pytest.skip(reason)
    mounted = []

    def mount(size: int) -> Path:
        where = Path(tempfile.mkdtemp(prefix="bindlab-wf-"))
        os.chmod(where, 0o755)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def _fill(folder: Path, free: int) -> None:
    """Leave about `free` bytes (whole pages) on folder's file system."""
    st = os.statvfs(folder)
    ballast = st.f_bavail * st.f_frsize - free
    if ballast > 0:
        fd = os.open(folder / "ballast", os.O_WRONLY | os.O_CREAT)
        try:
            os.posix_fallocate(fd, 0, ballast)
        finally:
            os.close(fd)


def _bindlab() -> list[str]:
    exe = Path(sys.executable).parent / "bindlab"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bindlab.cli"]


def _on_small_fs(mount, base: Path, drop=(), stale=()) -> tuple[Path, Path]:
    """The study's params and data copied onto a fresh tmpfs; `drop`: outputs removed first (the stage
    has not run yet), `stale`: outputs replaced by STALE (an earlier run's, which must survive)."""
    root = mount(_size(base, ["data"]) + (24 << 20))
    shutil.copy(base / "params.yaml", root / "params.yaml")
    shutil.copytree(base / "data", root / "data")
    for rel in drop:
        p = root / "data" / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    for rel in stale:
        p = root / "data" / rel
        for f in [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]:
            f.write_bytes(STALE)
    return root, root / "data"


def _run(argv: list[str], user: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(user or []), *_bindlab(), *argv], capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir(), env=os.environ | {"HOME": tempfile.gettempdir()})


# (name, command, outputs under the data root, free bytes: a fraction of the outputs' size or a number,
#  outputs that exist before as an earlier run's (stale) rather than not at all (drop))
FULL = [
    ("sample", ["sample", "--scenes", "train"], ["scenes/train.parquet"], 0.5, True),
    ("render-2-workers", ["render", "--scenes", "train", "--workers", "2"],
     ["images/train.npy", "images/train_contact.png"], 0.3, True),
    ("render-1-worker", ["render", "--scenes", "train", "--workers", "1"],
     ["images/train.npy", "images/train_contact.png"], 0.3, False),
    ("captions", ["captions", "--variant", "ideal"], ["captions/ideal/captions.parquet"], 0.5, True),
    ("stats", ["stats", "--variant", "ideal"], ["stats/ideal"], 0.5, False),
    ("validate", ["validate", "--variant", "ideal"], ["validation/ideal", "runs/validation/ideal"], 1 << 20, False),
    ("benchmark", ["benchmark", "--workers", "2"], ["benchmark"], 0.5, True),
    ("audit", ["audit", "--variant", "ideal"], ["audit/ideal"], 0.5, False),
    ("train", ["train", "--variant", "ideal", "--unvalidated", "--fresh", "--no-progress"],
     ["models/ideal/seed0", "metrics/ideal/seed0/train.tsv", "runs/metrics/ideal/seed0/timing.json"], 0.4, True),
    ("evaluate", ["evaluate", "--variant", "ideal"],
     [f"metrics/ideal/seed0/{f}" for f in ("eval.json", "per_image.parquet", "binding.json", "by_swap.png",
                                           "train_curve.png")] + ["runs/metrics/ideal/seed0/timing.json"],
     0.85, True),  # the tables fit, a plot does not
    ("report", ["report"], ["report"], 0.5, False),
]


@pytest.mark.parametrize("name,argv,outputs,free,earlier", FULL, ids=[c[0] for c in FULL])
def test_full_disk(base, small_fs, name, argv, outputs, free, earlier):
    """The disk fills while the stage writes: no traceback, nothing new, earlier outputs kept."""
    root, data = _on_small_fs(small_fs, base, drop=() if earlier else outputs, stale=outputs if earlier else ())
    before = _digest(data)
    _fill(root, int(_size(base / "data", outputs) * free) if isinstance(free, float) else free)
    cmd = [*argv, "--params", str(root / "params.yaml"), "--data", str(data)]
    r = _run(cmd)
    _check(r.returncode, r.stderr, cmd, data, before, tuple(outputs), "no space left on device")


def test_full_disk_after_the_images(base, small_fs):
    """Room for the images but not their contact sheet: neither file appears (written together)."""
    outputs = ["images/train.npy", "images/train_contact.png"]
    root, data = _on_small_fs(small_fs, base, drop=outputs)
    before = _digest(data)
    _fill(root, _size(base / "data", outputs[:1]) + 8192)
    cmd = ["render", "--scenes", "train", "--workers", "2", "--params", str(root / "params.yaml"), "--data", str(data)]
    r = _run(cmd)
    line = _check(r.returncode, r.stderr, cmd, data, before, ("images/train_contact.png",), "no space left on device")
    assert f"{data / 'images/train.npy'}:" not in line


READ_ONLY = [
    ("sample", ["sample", "--scenes", "train"], ["scenes/train.parquet"]),
    ("render", ["render", "--scenes", "train", "--workers", "2"], ["images/train.npy"]),
    ("validate", ["validate", "--variant", "ideal"], ["validation/ideal"]),
]


@pytest.mark.parametrize("name,argv,outputs", READ_ONLY, ids=[c[0] for c in READ_ONLY])
def test_read_only_file_system(base, small_fs, name, argv, outputs):
    root, data = _on_small_fs(small_fs, base, stale=outputs if name != "validate" else ())
    before = _digest(data)
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
    cmd = [*argv, "--params", str(root / "params.yaml"), "--data", str(data)]
    r = _run(cmd)
    _check(r.returncode, r.stderr, cmd, data, before, tuple(outputs), "read-only file system")


def test_folder_not_writable(base, tmp_path, request):
    """A data folder this user may not write to. Root may write anywhere, so as root the command runs
    as `nobody` (setpriv) on a tmpfs it can reach; chmod alone is enough for anyone else."""
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: root ignores folder permissions")
        if _cannot_mount():
            pytest.skip(_cannot_mount())
        mount = request.getfixturevalue("small_fs")
        root = mount(1 << 20)
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        root, user = tmp_path, None
    shutil.copy(base / "params.yaml", root / "params.yaml")
    data = root / "data"
    (data / "scenes").mkdir(parents=True)
    (data / "scenes" / "train.parquet").write_bytes(STALE)
    os.chmod(data / "scenes", 0o555)
    os.chmod(root / "params.yaml", 0o644)
    before = _digest(data)
    cmd = ["sample", "--scenes", "train", "--params", str(root / "params.yaml"), "--data", str(data)]
    try:
        r = _run(cmd, user)
    finally:
        os.chmod(data / "scenes", 0o755)
    _check(r.returncode, r.stderr, cmd, data, before, ("scenes/train.parquet",), "permission denied")


def test_file_where_the_data_folder_should_be(base, tmp_path):
    data = tmp_path / "data"
    data.write_bytes(STALE)
    cmd = ["sample", "--scenes", "train", "--params", str(base / "params.yaml"), "--data", str(data)]
    r = _run(cmd)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{data} is a file where a folder is expected; move that file away" in lines[0], lines[0]
    assert lines[0].endswith(f", then rerun `{shlex.join(['bindlab', *cmd])}`"), lines[0]
    assert data.read_bytes() == STALE


def test_file_where_a_stage_folder_should_be(base, tmp_path):
    _, paths, params_file = copy_study(base, tmp_path / "study")
    shutil.rmtree(paths.root / "stats")
    (paths.root / "stats").write_bytes(STALE)
    before = _digest(paths.root)
    cmd = ["stats", "--variant", "ideal", "--params", str(params_file), "--data", str(paths.root)]
    r = _run(cmd)
    _check(r.returncode, r.stderr, cmd, paths.root, before, ("stats/ideal",), "is a file where a folder is expected")


# --- in process: every write fails past a byte budget, at the one place writes go through ---------------

@pytest.fixture
def budget(monkeypatch):
    """set(n): from now on, a finished atomic write that would take the bytes written past n fails
    with ENOSPC, as on a file system with n bytes free."""
    used = [0, None]
    real = io._permissions

    def check(temp: Path, mode: int) -> None:
        size = (sum(f.stat().st_size for f in temp.rglob("*") if f.is_file()) if temp.is_dir()
                else temp.stat().st_size)
        if used[1] is not None and used[0] + size > used[1]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temp))
        used[0] += size
        real(temp, mode)

    monkeypatch.setattr(io, "_permissions", check)
    return lambda n: used.__setitem__(1, n)


# (name, command, outputs removed first, the file the error names, the byte budget from the study's data)
INJECTED = [
    ("sample", ["sample", "--scenes", "train"], [], "scenes/train.parquet", lambda data: 0),
    ("stats", ["stats", "--variant", "ideal"], ["stats/ideal"], "stats/ideal",      # the first table fits
     lambda data: _size(data, ["stats/ideal/captions.parquet"])),
    ("render", ["render", "--scenes", "train", "--workers", "1"], ["images/train.npy", "images/train_contact.png"],
     "images/train_contact.png", lambda data: _size(data, ["images/train.npy"])),  # the images fit
    ("audit", ["audit", "--variant", "ideal"], ["audit/ideal"], "audit/ideal", lambda data: 0),
]


@pytest.mark.parametrize("name,argv,drop,named,limit", INJECTED, ids=[c[0] for c in INJECTED])
def test_injected_full_disk(base, tmp_path, budget, capsys, name, argv, drop, named, limit):
    _, paths, params_file = copy_study(base, tmp_path / "study")
    for rel in drop:
        p = paths.root / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    before = _digest(paths.root)
    cmd = [*argv, "--params", str(params_file), "--data", str(paths.root)]
    budget(limit(base / "data"))
    capsys.readouterr()
    code = main(cmd)
    err = capsys.readouterr().err
    _check(code, err, cmd, paths.root, before, (named,), "no space left on device")


# --- the one place, directly ----------------------------------------------------------------------------

def test_a_refused_write_leaves_no_folder_it_made(tmp_path, monkeypatch):
    def full(temp, mode):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(io, "_permissions", full)
    with pytest.raises(WriteError) as e:
        write_json(tmp_path / "a" / "b" / "x.json", {})
    assert e.value.path == tmp_path / "a" / "b" / "x.json"
    assert list(tmp_path.iterdir()) == []


def test_a_folder_where_a_file_goes(tmp_path):
    (tmp_path / "x.json").mkdir()
    with pytest.raises(WriteError, match="x.json is a folder where a file is expected; move that folder away"):
        write_json(tmp_path / "x.json", {})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_file_inside_a_folder_built_aside_is_named_where_it_goes(tmp_path, monkeypatch):
    real = io._permissions

    def full(temp, mode):
        if temp.name.startswith(".inner.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(temp, mode)
    monkeypatch.setattr(io, "_permissions", full)
    with pytest.raises(WriteError) as e:
        with atomic_dir(tmp_path / "out") as tmp:
            write_json(tmp / "inner.json", {})
    assert e.value.path == tmp_path / "out" / "inner.json"
    assert list(tmp_path.iterdir()) == []


def test_together_keeps_every_earlier_file(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old a\n")
    real = io._permissions

    def full(temp, mode):
        if temp.name.startswith(".b.txt"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        real(temp, mode)
    monkeypatch.setattr(io, "_permissions", full)
    with pytest.raises(WriteError, match="disk quota exceeded"):
        with together():
            with atomic_path(tmp_path / "a.txt") as tmp:
                tmp.write_text("new a\n")
            with atomic_path(tmp_path / "b.txt") as tmp:
                tmp.write_text("new b\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old a\n"


def test_gx_docs_errors_are_raised_not_logged(capsys):
    """GX logs an exception while it writes Data Docs and goes on; the handler keeps a failed write."""
    from bindlab.expectations import _DocsErrors
    log = logging.getLogger("great_expectations.render.test")
    handler = _DocsErrors()
    root = logging.getLogger("great_expectations")
    root.addHandler(handler)
    root.propagate = False
    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except Exception:
            log.error("An unexpected Exception occurred during data docs rendering.")
    finally:
        root.removeHandler(handler)
        root.propagate = True
    assert isinstance(handler.error, OSError) and handler.error.errno == errno.ENOSPC
    assert capsys.readouterr().err == ""


def test_a_short_positional_write_is_finished(tmp_path, monkeypatch):
    """On a filling disk a write can come back short; render's workers write the rest (the next
    write then fails with ENOSPC) instead of leaving a hole of zeros in the images."""
    from bindlab import render
    real = os.pwrite
    monkeypatch.setattr(render.os, "pwrite", lambda fd, data, offset: real(fd, memoryview(data)[:7], offset))
    block = bytes(range(100))
    fd = os.open(tmp_path / "x", os.O_WRONLY | os.O_CREAT)
    try:
        render._pwrite_all(fd, block, 3)
    finally:
        os.close(fd)
    assert (tmp_path / "x").read_bytes() == bytes(3) + block
