"""The reference recipe project end to end from Python: `kondate demo` builds it (labels,
data, the Rust training and inference apps, the result table and its warehouse copy); then
the Python training job (examples/recipes/python/train.py, scikit-learn and the public
queuery-client) trains on the same labels and data through a running server, and the
public client reads the result table back from the warehouse.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from queuery_client import QueueryClient

from kondate_helpers import run, serve

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    project = base / "recipes"
    env = dict(os.environ)
    env.pop("KONDATE_PROJECT", None)
    out = run(["demo", str(project), "--rows", "8000"], cwd=base, env=env).stdout
    # The Python training job queries and reads the label revisions it learns from.
    token, proc, url = serve(project, env, scopes=("query", "labels:read"))
    try:
        yield {"url": url, "token": token, "report": out}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_demo_reports_accuracy_above_the_baseline(demo_server):
    report = demo_server["report"]
    line = next(l for l in report.splitlines() if "held-out" in l)
    accuracy = float(line.split("accuracy ")[1].split(",")[0])
    baseline = float(line.split("baseline ")[1].split(")")[0])
    assert accuracy > baseline + 0.4, line


def test_python_training_job_learns_from_the_same_labels(demo_server):
    env = dict(os.environ)
    env.update(
        QUEUERY_ENDPOINT=demo_server["url"],
        QUEUERY_TOKEN=demo_server["token"]["name"],
        QUEUERY_TOKEN_SECRET=demo_server["token"]["secret"],
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/recipes/python/train.py")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    r = json.loads(done.stdout)
    assert r["test_rows"] > 100, r
    assert r["accuracy"] > r["baseline_accuracy"] + 0.4, r
    assert r["macro_f1"] > 0.6, r


def test_queuery_client_reads_the_result_table_from_the_warehouse(demo_server, monkeypatch):
    monkeypatch.setenv("QUEUERY_TOKEN", demo_server["token"]["name"])
    monkeypatch.setenv("QUEUERY_TOKEN_SECRET", demo_server["token"]["secret"])
    client = QueueryClient(endpoint=demo_server["url"], enable_cast=True)
    df = client.run(
        "SELECT category, count(*) AS n FROM results.recipe_categories GROUP BY category"
    ).read(use_pandas=True)
    assert set(df["category"]) == {"主菜", "副菜", "汁物", "主食", "デザート"}
    assert int(df["n"].sum()) == 8000
