"""`python -m bench web` runs end to end at tiny sizes (its figures are `make bench`'s).

Not a speed test: it proves the benchmark still seeds an account and a user, signs in
through the real form, types the message against the real server (every keystroke
answered with a counter) and prints its figures beside the floor.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_runs_bench_web_tiny() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDLINE_")}
    command = [sys.executable, "-m", "bench", "web", "--rounds", "1", "--contacts", "50"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "GET /healthz (floor)" in out
    assert "POST /app/composer/check (keystroke)" in out
    assert "composer keystroke p99 < 50 ms:" in out
