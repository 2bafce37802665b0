"""`python -m bench api` runs end to end at tiny sizes (its figures are `make bench`'s).

Not a speed test: it proves the benchmark still starts both servers, drives them, finds
every accepted event's automation run, and either measures the messages list or says
the route is missing. The load comes from the Python generator (`bench.api_load`), the
one every machine has, whether or not `wrk` is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_runs_bench_api_tiny() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDLINE_")}
    env["BENCH_API_GENERATOR"] = "python"
    command = [sys.executable, "-m", "bench", "api", "--events-seconds", "1"]
    command += ["--messages-rows", "10000", "--messages-requests", "20", "--rounds", "1"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "POST /api/v1/events (8 conns)" in out
    assert "bare ASGI, parse JSON, 202 (32 conns)" in out
    assert "events at saturation / bare at saturation:" in out
    assert "p99 < 100 ms:" in out
    assert "automation runs started for" in out
    listed = "GET /api/v1/messages?limit=100" in out and "p99 < 50 ms:" in out
    assert listed or "GET /api/v1/messages: route missing" in out
