"""What the Python tests share: the kondate binary, free ports, running kondate, waiting
for a server."""

import os
import socket
import subprocess
import time
import urllib.request

KONDATE = os.environ.get("KONDATE_BIN", "kondate")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, cwd, env=None):
    return subprocess.run([KONDATE, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)


def wait_ready(endpoint, proc):
    """Wait until `kondate serve` answers /healthz (or fail with its output if it exits)."""
    for _ in range(200):
        try:
            urllib.request.urlopen(endpoint + "/healthz", timeout=1)
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode())
            time.sleep(0.05)
    raise RuntimeError(f"kondate serve did not answer at {endpoint}")


def serve(project, env, scopes=("query",)):
    """Create a token with `scopes` and start `kondate serve` on a free port in `project`;
    returns the token, the process and the endpoint once it answers."""
    import json

    # A token is owned by a user and holds only what it needs.
    run(["users", "add", "py@example.com", "--role", "viewer"], cwd=project, env=env)
    args = ["tokens", "create", "py", "--owner", "py@example.com", "--format", "json"]
    for scope in scopes:
        args += ["--scope", scope]
    token = json.loads(run(args, cwd=project, env=env).stdout)
    port = free_port()
    proc = subprocess.Popen(
        [KONDATE, "serve", "--listen", f"127.0.0.1:{port}"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_ready(endpoint, proc)
    except Exception:
        proc.kill()
        raise
    return token, proc, endpoint
