"""A real Prefect server on a free loopback port, the study's deployments served by the same code as
`make ui` (flows/serve.py), a run triggered through the CLI and its completion checked through the
API; both processes are stopped by their process ids."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

from tiny_pipeline import project, raw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, path: str, body: dict) -> object:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_served_deployment_runs_to_completion(tmp_path):
    from flows.serve import prefect_env, start_server, start_serving, stop_all, wait_healthy
    port = free_port()
    env = prefect_env(port, home=tmp_path / "prefect_home")
    folder = project(tmp_path / "study", raw(variants=("ideal",)))
    server = start_server(port, env, tmp_path / "server.log")
    serving = None
    try:
        wait_healthy(port, server)
        serving = start_serving(env, folder, tmp_path / "serve.log")  # runs execute in the project
        # the served process registers its deployments; then trigger one through the CLI and watch it
        for _ in range(60):
            deps = api(port, "/deployments/filter", {})
            if {d["name"] for d in deps} >= {"study", "variant"}:
                break
            __import__("time").sleep(1)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text()[-3000:])
        run = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "run", "variant/variant",
             "--param", "variant=ideal", "--watch", "--watch-timeout", "400"],
            env=env, cwd=folder, capture_output=True, text=True, timeout=450)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + (tmp_path / "serve.log").read_text()[-3000:]
        runs = api(port, "/flow_runs/filter", {"sort": "EXPECTED_START_TIME_DESC"})
        states = {r["name"]: r["state"]["type"] for r in runs}
        assert "COMPLETED" in states.values() and all(s == "COMPLETED" for s in states.values()), states
        assert (folder / "data/metrics/ideal/seed0/eval.json").exists()
        assert (folder / "data/report/index.html").exists()
        artifacts = api(port, "/artifacts/filter", {})
        assert {"metrics-ideal", "study-report"} <= {a["key"] for a in artifacts}
    finally:
        stop_all(serving, None, server)
    assert server.poll() is not None and (serving is None or serving.poll() is not None)
