#!/usr/bin/env python3
"""The web console's page times on the demo's data.

    bench/console_pages.py KONDATE_BIN [REQUESTS]

Runs `KONDATE_BIN demo DIR --serve` (200,000 recipes, its jobs, runs, labels and models) in a
temporary project on a free loopback port, signs in with the local link it prints, then asks
for each main page of the console REQUESTS times (default 20), one request at a time, and
prints for each its median and slowest time to the last byte and its size. The baseline,
measured in the same run on the same server: the API's JSON for the same table
(`GET /v1/catalog/objects/...`, with the demo's token), and `GET /healthz` as the floor.
"""

import base64
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def timed_get(port, path, headers):
    """(milliseconds to the last byte, status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    res = conn.getresponse()
    body = res.read()
    took = (time.perf_counter() - start) * 1000
    conn.close()
    return took, res.status, body


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    kondate = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    work = tempfile.mkdtemp(prefix="kondate-console-bench-")
    project = os.path.join(work, "demo")
    subprocess.run([kondate, "init", project], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    with open(os.path.join(project, "kondate.toml")) as f:
        config = f.read()
    config = config.replace("[server]\n", f'[server]\nlisten = "127.0.0.1:{port}"\n', 1)
    with open(os.path.join(project, "kondate.toml"), "w") as f:
        f.write(config)
    demo = subprocess.Popen(
        [kondate, "demo", project, "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    signin = token = run_id = None
    try:
        for line in demo.stdout:
            if "full scan" in line:
                # The query path, through this server: the demo's own scan with the Rust client.
                print("demo's" + line.rstrip()[line.index("full scan") - 1 :])
            m = re.search(r"(/signin/local\?code=[0-9a-f]+)", line)
            if m:
                signin = m.group(1)
            m = re.search(r"QUEUERY_TOKEN=(\S+) QUEUERY_TOKEN_SECRET=(\S+)", line)
            if m:
                token = (m.group(1), m.group(2))
            m = re.search(r"apps/train\.jsonnet in [0-9.]+s \(run (\S+)\)", line)
            if m:
                run_id = m.group(1)
            if line.startswith("Serving"):
                break
        if not (signin and token and run_id):
            sys.exit("the demo did not print its sign-in link, token and training run")
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", signin)
        res = conn.getresponse()
        res.read()
        cookie = res.getheader("Set-Cookie").split(";")[0]
        console = {"Cookie": cookie}
        api = {
            "Authorization": "Basic "
            + base64.b64encode(f"{token[0]}:{token[1]}".encode()).decode()
        }
        table = "/catalog/table/service/main/recipe_categories"
        pages = [
            ("home", "/", console),
            ("jobs", "/jobs", console),
            ("job", "/jobs/weekly_training", console),
            ("instance", "/instances/1", console),
            ("apps", "/apps", console),
            ("runs", "/runs", console),
            ("run", f"/runs/{run_id}", console),
            ("labels", "/labels", console),
            ("label set", "/labels/recipe_category", console),
            ("label revision (5,000 rows added)", "/labels/recipe_category/revisions/1", console),
            ("models", "/models", console),
            ("model", "/models/recipe-category", console),
            ("model version", "/models/recipe-category/versions/production", console),
            ("queries", "/queries", console),
            ("catalog", "/catalog", console),
            ("catalog search", "/catalog?q=recipe", console),
            ("catalog source", "/catalog/source/warehouse", console),
            ("result table page", table, console),
            ("lineage", "/catalog-lineage", console),
            ("admin: people", "/admin/users", console),
            ("admin: tokens", "/admin/tokens", console),
            ("admin: audit", "/admin/audit", console),
            ("baseline: API table JSON", "/v1/catalog/objects" + table[len("/catalog"):], api),
            ("floor: GET /healthz", "/healthz", {}),
        ]
        print(f"{'page':40} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
        for name, path, headers in pages:
            times = []
            size = 0
            for _ in range(n):
                took, status, body = timed_get(port, path, headers)
                if status != 200:
                    sys.exit(f"{path}: HTTP {status}\n{body[:500]!r}")
                times.append(took)
                size = len(body)
            print(f"{name:40} {statistics.median(times):10.1f} {max(times):8.1f} {size:9d}")
    finally:
        demo.terminate()
        demo.wait()


if __name__ == "__main__":
    main()
