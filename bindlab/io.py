"""Atomic writes: a later stage never sees a half-written artifact, and a write that fails says why.

Every file a stage writes goes through `atomic_path` or `atomic_dir` (`write_json` and
`write_parquet` use them): it is built aside under a temporary name and renamed over its target only
when complete. When the operating system refuses the write -- no space left, over quota, permission
denied, a read-only file system, a file where a folder is expected -- the temporary file and any
folder made for it are removed, the target is left as it was, and WriteError says in one line which
file, why, and (for space) how much the file system has left; the CLI adds the command to rerun.

Writes inside `together()` are renamed into place only when all of them succeeded, so a stage with
several outputs leaves either all of them new or all of them as they were.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from bindlab.errors import StageError

SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
         errno.EFBIG: "file too large for that file system"}
DENIED = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
          errno.EROFS: "read-only file system"}
NOT_A_FOLDER = {errno.ENOTDIR, errno.EEXIST, errno.EISDIR}  # a file where a folder goes, or the reverse
REFUSED = {*SPACE, *DENIED, *NOT_A_FOLDER}


class WriteError(StageError):
    """The operating system refused to write `path` (an OSError with one of the errnos above). The
    message is built when shown, after the failed write has been cleaned up, so the free space it
    reports is what the file system has left."""

    def __init__(self, path: str | Path, error: OSError, folder: bool = False):
        super().__init__(str(path))
        self.path, self.error, self.folder = Path(path), error, folder

    def explain(self) -> tuple[str, str]:
        """-> (the reason, what to change before rerunning)."""
        e, path = self.error, self.path
        if e.errno in SPACE:
            where = _existing(path.parent)
            try:
                usage = shutil.disk_usage(where)
                left = f" ({_size(usage.free)} free of {_size(usage.total)} on the file system of {where})"
            except OSError:
                left = f" (on the file system of {where})"
            return SPACE[e.errno] + left, "free space on that file system (or point --data at a larger one)"
        if e.errno == errno.EROFS:
            return (f"{_existing(path.parent)} is on a read-only file system",
                    "remount it read-write (or point --data at a writable folder)")
        if e.errno in DENIED:
            return (f"{DENIED[e.errno]} in {_existing(path.parent)}",
                    "make that folder writable for this user (or point --data at one that is)")
        blocker = _blocker(path.parent)
        if blocker is not None:
            return f"{blocker} is a file where a folder is expected", "move that file away"
        if path.is_dir() and not self.folder:
            return f"{path} is a folder where a file is expected", "move that folder away"
        if path.exists() and not path.is_dir() and self.folder:
            return f"{path} is a file where a folder is expected", "move that file away"
        return os.strerror(e.errno).lower(), "check that folder"

    def __str__(self) -> str:
        reason, advice = self.explain()
        return f"{self.path}: cannot write it: {reason}; {advice}"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _existing(path: Path) -> Path:
    """The nearest folder at or above `path` that exists (the file system the write went to)."""
    p = path
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def _blocker(folder: Path) -> Path | None:
    """The first non-folder on the way from the root down to `folder` (a file where a folder should be)."""
    for p in reversed([folder, *folder.parents]):
        if p.exists() and not p.is_dir():
            return p
    return None


def write_error(e: OSError, path: str | Path, temp: Path | None = None, folder: bool = False) -> Exception:
    """The one translation of a refused write of `path` into WriteError; `temp`: the folder it was
    being built in (a file inside it is named where it goes). Any other OSError (a missing input, a
    failing disk) is returned as it is."""
    if e.errno not in REFUSED:
        return e
    if temp is not None and e.filename:
        with contextlib.suppress(ValueError):
            rel = Path(e.filename).relative_to(temp)
            return WriteError(Path(path) / rel, e, folder=False) if rel.parts else WriteError(path, e, folder)
    return WriteError(path, e, folder)


def _raise(e: OSError, path: Path, temp: Path | None = None, folder: bool = False):
    error = write_error(e, path, temp, folder)
    if error is e:
        raise e
    raise error from e


def _mkdirs(folder: Path) -> list[Path]:
    """mkdir -p; -> the folders it made, deepest first (removed again if the write fails)."""
    made = []
    p = folder
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    for p in reversed(made):
        p.mkdir(exist_ok=True)
    return made


def _remove(temp: Path | None, made: list[Path]) -> None:
    if temp is not None:
        if temp.is_dir() and not temp.is_symlink():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
    for p in made:
        with contextlib.suppress(OSError):
            p.rmdir()


def _permissions(temp: Path, mode: int) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the permissions a plain open() would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, mode & ~umask)


def _move(temp: Path, path: Path) -> None:
    if temp.is_dir():
        if path.exists():
            shutil.rmtree(path)
        temp.rename(path)
    else:
        os.replace(temp, path)


class _Open(threading.local):
    """Per thread: the open together() blocks (each: its pending (temp, target, folders made)) and the
    temporary folders of the open atomic_dir blocks."""

    def __init__(self):
        self.groups: list[list[tuple[Path, Path, list[Path]]]] = []
        self.dirs: list[Path] = []


_OPEN = _Open()


def _deferred(path: Path) -> bool:
    """Inside together(), and not a file inside a folder that is itself being built aside."""
    return bool(_OPEN.groups) and not any(d in path.parents for d in _OPEN.dirs)


@contextlib.contextmanager
def _atomic(path: str | Path, folder: bool) -> Iterator[Path]:
    path = Path(path)
    temp, made, done = None, [], False
    try:
        made = _mkdirs(path.parent)
        if folder:
            temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
            _OPEN.dirs.append(temp)
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temp = Path(name)
        try:
            yield temp
        finally:
            if folder:
                _OPEN.dirs.remove(temp)
        _permissions(temp, 0o777 if folder else 0o666)
        if _deferred(path):
            _OPEN.groups[-1].append((temp, path, made))
        else:
            _move(temp, path)
        done = True
    except OSError as e:
        _raise(e, path, temp if folder else None, folder)
    except WriteError as e:
        if folder and temp is not None and temp in e.path.parents:  # a file inside this folder: name it where it goes
            raise WriteError(path / e.path.relative_to(temp), e.error) from e.error
        raise
    finally:
        if not done:
            _remove(temp, made)


def atomic_path(path: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    return _atomic(path, folder=False)


def atomic_dir(path: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    return _atomic(path, folder=True)


@contextlib.contextmanager
def together() -> Iterator[None]:
    """The atomic writes of the block are renamed into place at its end, all of them, only if the
    whole block succeeded (a nested block joins the outer one)."""
    if _OPEN.groups:
        yield
        return
    group: list[tuple[Path, Path, list[Path]]] = []
    _OPEN.groups.append(group)
    try:
        yield
        _OPEN.groups.pop()
        while group:
            temp, path, made = group[0]
            try:
                _move(temp, path)
            except OSError as e:
                _raise(e, path, folder=temp.is_dir())
            group.pop(0)
    finally:
        if _OPEN.groups and _OPEN.groups[-1] is group:
            _OPEN.groups.pop()
        for temp, path, made in reversed(group):
            _remove(temp, made)


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """A plain write into a folder being built aside: an OSError that names no file (a full disk
    while writing, a copy) names `path`, so WriteError can say which file it was."""
    try:
        yield
    except OSError as e:
        if not e.filename:
            e.filename = str(path)
        raise


def staged(path: str | Path) -> Path:
    """Where a file written earlier in the open together() block can be read before the block ends."""
    for group in _OPEN.groups:
        for temp, target, _ in group:
            if target == Path(path):
                return temp
    return Path(path)


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(df, path: str | Path) -> None:
    """Polars frame -> parquet, atomically; statistics off so the bytes depend only on the data.
    Serialized in memory (the same bytes as polars writing the file itself), then written by Python:
    polars' own writer reports a refused write as a ComputeError that does not always keep the errno
    ("Invalid thrift: transport error" on a full disk)."""
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())
