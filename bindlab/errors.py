"""Errors that the CLI turns into one clear line and exit status 2."""


class StageError(RuntimeError):
    """A stage cannot run (missing upstream output, bad input); the message names the file."""


def require(path, made_by: str):
    """Fail clearly when an upstream output is missing."""
    from pathlib import Path
    if not Path(path).exists():
        raise StageError(f"{path} is missing; run `{made_by}` first (or `dvc repro`)")
    return path
