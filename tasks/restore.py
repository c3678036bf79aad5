"""`python -m tasks.restore`: let `dvc repro` restore from the run-cache what the committed dvc.lock
names but this cache lacks.

For a stage whose command, deps and params match dvc.lock, DVC restores the outputs *named in the
lock*; when the cache lacks them (the lock was written on a machine whose outputs never reached this
cache) it runs the stage, without looking at the run-cache entry another clone saved for the same
command, deps and params (dvc/stage/cache.py, `StageCache.restore`). Forgetting those outputs'
hashes in the lock sends DVC to its run-cache instead: the stage is restored if any clone on this
cache ran it, and run otherwise; either way DVC then writes the outputs it restored or made back into
the same entry, in place, so dvc.lock keeps its order and names what is really there. Entries whose
outputs the cache holds are not touched, and a lock whose outputs are all cached is not rewritten.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from dvc.repo import Repo
from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

from bindlab.io import atomic_path

HASH_KEYS = ("md5", "size", "nfiles")


def cached(cache, md5: str) -> bool:
    """Whether the cache holds the object (for a directory, its listing and every file in it)."""
    path = Path(cache.oid_to_path(md5))
    if not path.exists():
        return False
    if not md5.endswith(".dir"):
        return True
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return all(Path(cache.oid_to_path(e["md5"])).exists() for e in entries)


def missing_stages(lock: dict, cache) -> list[str]:
    """The lock's stages with an output whose hash the cache does not hold."""
    return [name for name, entry in lock.get("stages", {}).items()
            if any("md5" in out and not cached(cache, out["md5"]) for out in entry.get("outs", []))]


def forget_missing(root: Path) -> list[str]:
    """Drop the output hashes of the stages in `root/dvc.lock` whose outputs the cache lacks; returns them."""
    lock_file = root / "dvc.lock"
    if not lock_file.exists():
        return []
    # DVC's own round-trip parser and dumper: the lock keeps the formatting DVC gives it
    lock = parse_yaml_for_update(lock_file.read_text(), str(lock_file))
    with Repo(str(root)) as repo:
        stages = missing_stages(lock, repo.cache.local)
    for name in stages:
        for out in lock["stages"][name].get("outs", []):
            for key in HASH_KEYS:
                out.pop(key, None)
    if stages:
        with atomic_path(lock_file) as tmp:
            tmp.write_text(dumps_yaml(lock))
    return stages


def main() -> int:
    stages = forget_missing(Path.cwd())
    if stages:
        print(f"dvc.lock: {len(stages)} stages name outputs this cache lacks (e.g. {stages[0]}); "
              f"dvc repro restores them from the run-cache where a clone ran them, else runs them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
