"""One command for the UI: start the local Prefect server and serve the study's deployments.

    python -m flows.serve [--port 4200] [--files-port 4201]        (or: make ui)

The server keeps its SQLite database under `.prefect/` in the project (PREFECT_HOME, git-ignored) and
listens on 127.0.0.1 only. When it answers, the deployments `study/study`, `variant/variant` and
`experiment/experiment` are served from a second process; open http://127.0.0.1:PORT, pick a
deployment, "Run" > "Custom run", fill in the form. A third process serves the project's data/
(reports, audit pages, evaluation plots) read-only on http://127.0.0.1:FILES_PORT, so the links in
the runs' artifacts open from the UI (browsers refuse file:// links from an http page). Ctrl-C (or
SIGTERM) stops the served deployments first, then the files server and the Prefect server (the other
order hangs on shutdown).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prefect_env(port: int, home: Path | None = None, files_port: int | None = None) -> dict:
    """Environment for the server and its clients: project-local home, this server's API, and the
    files server's address for the artifacts' links (flows/study.py `files_url`)."""
    home = home or ROOT / ".prefect"
    home.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    files = {"BINDLAB_FILES_URL": f"http://127.0.0.1:{files_port}"} if files_port else {}
    return os.environ | files | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),  # stage commands and dvc
    }


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    url = f"http://127.0.0.1:{port}/api/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with status {proc.returncode} (port {port} in use?)")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer {url} within {timeout:.0f} s")


def start_server(port: int, env: dict, log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def start_files(port: int, folder: Path, log: Path | None = None) -> subprocess.Popen:
    """Python's own http.server on 127.0.0.1:PORT over folder/data (created when missing)."""
    (folder / "data").mkdir(exist_ok=True)
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(folder / "data")], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def start_serving(env: dict, cwd: Path, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else None
    return subprocess.Popen([sys.executable, "-m", "flows.deployments"], env=env, cwd=cwd,
                            stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM by process id, then SIGKILL if it does not exit."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_all(serving: subprocess.Popen | None, files: subprocess.Popen | None, server: subprocess.Popen) -> None:
    """Stop the served deployments first, then the files server, then the Prefect server (the other
    order hangs on shutdown); a process not started is None."""
    for proc in (serving, files, server):
        if proc is not None:
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=4200)
    ap.add_argument("--files-port", type=int, default=None, help="the data/ files server (default: PORT + 1)")
    args = ap.parse_args(argv)
    files_port = args.files_port or args.port + 1
    env = prefect_env(args.port, files_port=files_port)
    log = ROOT / ".prefect" / "server.log"
    server = start_server(args.port, env, log)
    serving = files = None
    try:
        wait_healthy(args.port, server)
        print(f"Prefect server: http://127.0.0.1:{args.port}  (log {log.relative_to(ROOT)})", flush=True)
        files = start_files(files_port, ROOT, ROOT / ".prefect" / "files.log")
        print(f"reports, audit pages and plots: http://127.0.0.1:{files_port}/", flush=True)
        serving = start_serving(env, ROOT)
        print("serving deployments study/study, variant/variant and experiment/experiment; Ctrl-C stops them",
              flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while serving.poll() is None and server.poll() is None and files.poll() is None:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(serving, files, server)


if __name__ == "__main__":
    sys.exit(main())
