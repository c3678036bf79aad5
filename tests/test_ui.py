"""The UI as `make ui` runs it, on the tiny study: a real Prefect server on a free loopback port, the
deployments served by flows/serve.py's code, the data/ files server beside it. Runs are started through
the server's API (as the UI's Run button does), from a terminal with `prefect deployment run`, and,
last, by headless Chromium clicking Run > Quick run. All processes are stopped by their ids (served
deployments first), and the fixture checks they ended."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from browser import browser
from tiny import dvc, pipeline_raw, project

DONE = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, path: str, body: dict | None = None) -> object:
    """POST body (GET without one) to the server's API. A loaded 2-core machine makes the server slow
    or busy (SQLite): a generous timeout, and a few tries on 503 or a timeout."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(5):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except (urllib.error.HTTPError, TimeoutError) as e:
            if getattr(e, "code", 503) != 503 or attempt == 4:
                raise
            time.sleep(3)


def get(port: int, path: str) -> object:
    return api(port, path)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    from flows.serve import prefect_env, start_files, start_server, start_serving, stop_all, wait_healthy
    tmp = tmp_path_factory.mktemp("ui")
    port, files_port = free_port(), free_port()
    env = prefect_env(port, home=tmp / "prefect_home", files_port=files_port)
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "2"   # pick up triggered runs sooner than the default 10 s
    folder = project(tmp / "study", pipeline_raw(variants=("ideal",)))
    server = start_server(port, env, tmp / "server.log")
    files = serving = None
    try:
        wait_healthy(port, server, timeout=180)
        files = start_files(files_port, folder)
        serving = start_serving(env, folder, tmp / "serve.log")
        for _ in range(120):
            deps = {d["name"]: d for d in api(port, "/deployments/filter", {})}
            if {"study", "variant", "experiment"} <= set(deps):
                break
            time.sleep(1)
        else:
            raise AssertionError((tmp / "serve.log").read_text()[-3000:])
        yield {"port": port, "folder": folder, "deployments": deps, "log": tmp / "serve.log", "tmp": tmp,
               "env": env}
    finally:
        stop_all(serving, files, server)
    assert all(p.poll() is not None for p in (serving, files, server)), "a process outlived stop_all"


def trigger(ui, deployment: str, parameters: dict | None = None) -> str:
    """Create a run of the deployment, as the UI's Run button does ."""
    d = ui["deployments"][deployment]
    return api(ui["port"], f"/deployments/{d['id']}/create_flow_run", {"parameters": parameters or {}})["id"]


def wait_done(ui, ids: list[str], timeout: float = 900) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = {i: get(ui["port"], f"/flow_runs/{i}") for i in ids}
        if all(r["state"]["type"] in DONE for r in runs.values()):
            return runs
        time.sleep(2)
    raise AssertionError(f"runs not finished after {timeout} s: "
                         f"{ {i: r['state']['name'] for i, r in runs.items()} }\n{ui['log'].read_text()[-3000:]}")


def logs(ui, run_id: str | None = None, text: str | None = None) -> list[dict]:
    flt = {}
    if run_id:
        flt["flow_run_id"] = {"any_": [run_id]}
    if text:
        flt["text"] = {"query": f'"{text}"'}
    return api(ui["port"], "/logs/filter", {"logs": flt, "sort": "TIMESTAMP_ASC", "limit": 200})


def links(ui, key: str) -> list[str]:
    arts = api(ui["port"], "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC"})
    assert arts, f"no artifact {key}"
    return re.findall(r"\]\((http://[^)]+)\)", arts[0]["data"])


def test_runs_never_overlap_and_links_open(ui):
    """Two study runs and a variant run started at once: all complete, never two hold the project's
    run slot at once, the second study run was enqueued by the deployment's limit; training progress
    reached the run log; every link of the study-report artifact returns its page over http."""
    ids = [trigger(ui, "study"), trigger(ui, "study"), trigger(ui, "variant", {"variant": "ideal"})]
    runs = wait_done(ui, ids)
    assert all(r["state"]["type"] == "COMPLETED" for r in runs.values()), \
        {i: r["state"] for i, r in runs.items()}
    spans = []
    for i in ids:
        for _ in range(30):   # a run's last log lines reach the server a little after its final state
            stamps = {m["message"]: m["timestamp"] for m in logs(ui, i)}
            if "released the project's run slot" in stamps:
                break
            time.sleep(2)
        spans.append((stamps["holding the project's run slot"], stamps["released the project's run slot"]))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    history = [s["name"] for i in ids[:2] for s in get(ui["port"], f"/flow_run_states/?flow_run_id={i}")]
    assert "AwaitingConcurrencySlot" in history, history
    assert re.search(r"train ideal seed 0: step 4/4 \(100%\) loss [\d.]+, \d+ samples/s, ETA 0m 00s",
                     " ".join(m["message"] for m in logs(ui, text="samples/s")))
    urls = links(ui, "study-report")
    assert any(u.endswith("/report/index.html") for u in urls) and any("/audit/ideal/" in u for u in urls), urls
    for u in urls:
        with urllib.request.urlopen(u, timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read(2000).lower(), u


def test_a_run_started_from_the_cli_completes(ui):
    """`prefect deployment run variant/variant --watch` from a terminal: the run it starts (and each run
    that one starts) completes, as the server's API reports, and writes its artifacts (the variant's
    metrics table, the study-report links); the variant's eval.json and the report are there."""
    port, folder = ui["port"], ui["folder"]
    before = {r["id"] for r in api(port, "/flow_runs/filter", {})}
    run = subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "run", "variant/variant",
         "--param", "variant=ideal", "--watch", "--watch-timeout", "400"],
        env=ui["env"], cwd=folder, capture_output=True, text=True, timeout=450)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + ui["log"].read_text()[-3000:]
    runs = [r for r in api(port, "/flow_runs/filter", {"sort": "EXPECTED_START_TIME_DESC"}) if r["id"] not in before]
    states = {r["name"]: r["state"]["type"] for r in runs}
    assert "COMPLETED" in states.values() and all(s == "COMPLETED" for s in states.values()), states
    assert (folder / "data/metrics/ideal/seed0/eval.json").exists()
    assert (folder / "data/report/index.html").exists()
    artifacts = api(port, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [r["id"] for r in runs]}}})
    assert {"metrics-ideal", "study-report"} <= {a["key"] for a in artifacts}


def test_what_if_from_the_form(ui):
    """A what-if with density 1.5 completes as a DVC experiment (in `dvc exp show` with its param and
    metrics) and links to its audit page and plots; a density the schema refuses fails the run at once
    with the schema's line and leaves params.yaml as it was."""
    folder = ui["folder"]
    before = (folder / "params.yaml").read_text()
    bad = wait_done(ui, [trigger(ui, "experiment", {"density": 7})])
    state = next(iter(bad.values()))["state"]
    assert state["type"] == "FAILED" and "density: 7.0 exceeds the 6 attribute types" in state["message"], state
    assert (folder / "params.yaml").read_text() == before
    good = wait_done(ui, [trigger(ui, "experiment", {"name": "dens15", "density": 1.5})])
    assert next(iter(good.values()))["state"]["type"] == "COMPLETED", good
    shown = json.loads(dvc(folder, "exp", "show", "--json").stdout)
    exps = [e for rev in shown for e in (rev.get("experiments") or []) if e.get("name", "").startswith("dens15-")]
    assert exps, json.dumps(shown)[:2000]
    data = exps[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["variants"]["dens15"]["density"] == 1.5
    assert 0 <= data["metrics"]["data/metrics/dens15/seed0/binding.json"]["data"]["i2t_strict"]["value"] <= 1
    urls = links(ui, "whatif-dens15-links")
    assert any(u.endswith("/audit/dens15/index.html") for u in urls) and any(u.endswith(".png") for u in urls)
    for u in urls:
        with urllib.request.urlopen(u, timeout=10) as r:
            assert r.status == 200, u
    rows = api(ui["port"], "/artifacts/filter", {"artifacts": {"key": {"any_": ["whatif-dens15"]}}})[0]["data"]
    shown = {r["variant"] for r in json.loads(rows)}   # beside ideal's when ideal was run (the test above)
    assert "dens15" in shown and ("ideal" in shown) == (folder / "data/metrics/ideal/seed0/eval.json").exists()


def test_browser_quick_run(ui):
    """Headless Chromium opens the served UI, finds the deployments, starts `study` with Run > Quick run,
    and sees the run page say Completed. On failure a screenshot is saved (path printed)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    driver, why = browser()
    if driver is None:
        pytest.skip(why)
    shot = ui["tmp"] / "ui_failure.png"
    keep = os.environ.get("BINDLAB_UI_SCREENSHOTS")   # a folder: save the walkthrough's screenshots (README)

    def snap(name: str) -> None:
        if keep:
            os.makedirs(keep, exist_ok=True)
            driver.save_screenshot(os.path.join(keep, f"{name}.png"))

    base = f"http://127.0.0.1:{ui['port']}"
    study_id = ui["deployments"]["study"]["id"]
    query = {"flow_runs": {"deployment_id": {"any_": [study_id]}}}
    before = {r["id"] for r in api(ui["port"], "/flow_runs/filter", query)}
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(base + "/deployments")
        for name in ("study", "variant", "experiment"):
            wait.until(ec.presence_of_element_located((By.XPATH, f"//a[normalize-space()='{name}']")))
        snap("1-deployments")
        driver.find_element(By.XPATH, "//a[normalize-space()='study']").click()
        new = []
        for attempt in range(3):  # on a loaded machine the UI's create-run call can fail ("Oops"): click again
            wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Run']"))).click()
            quick = wait.until(ec.element_to_be_clickable((By.XPATH, "//*[normalize-space()='Quick run']")))
            if attempt == 0:
                snap("2-run-menu")
            quick.click()
            for _ in range(40):   # the run the click created
                new = [r["id"] for r in api(ui["port"], "/flow_runs/filter", query) if r["id"] not in before]
                if new:
                    break
                time.sleep(1)
            if new:
                break
            print(f"no run after Quick run (attempt {attempt + 1}); clicking again")
            driver.get(base + f"/deployments/deployment/{study_id}")
        assert len(new) == 1, new
        wait_done(ui, new)
        driver.get(f"{base}/runs/flow-run/{new[0]}")
        WebDriverWait(driver, 120).until(
            ec.presence_of_element_located((By.XPATH, "//*[normalize-space()='Completed']")))
        time.sleep(2)   # let the graph draw before the picture
        snap("3-run-completed")
    except Exception:
        driver.save_screenshot(str(shot))
        print(f"screenshot of the failure: {shot}")
        raise
    finally:
        driver.quit()
