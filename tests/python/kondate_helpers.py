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
