"""Benchmark reader: the public queuery-client reads every row of one query.
Prints {"rows": N, "seconds": S}. Credentials from QUEUERY_ENDPOINT/TOKEN/TOKEN_SECRET."""
import json
import sys
import time

from queuery_client import QueueryClient

start = time.monotonic()
rows = sum(1 for _ in QueueryClient(timeout=3600).run(sys.argv[1]))
print(json.dumps({"rows": rows, "seconds": round(time.monotonic() - start, 3)}))
