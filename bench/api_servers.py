"""The servers and load generators of `bench api`, each a process of its own.

`Server` runs `sendline serve --no-worker` (the product's own command: uvicorn and
`create_app`) or `bench.api_bare` (the same uvicorn call on a bare ASGI endpoint), on a
free loopback port, and reads its CPU time from /proc. `saturate` and `open_loop` drive
one: saturation with `wrk` when it is installed (C, so the generator never competes
with the server for CPU; BENCH_API_GENERATOR=python forces the other way), otherwise
with `bench.api_load` processes; the open-loop latency always with `bench.api_load`.
Each result carries the generator's CPU seconds, to show it was not the bottleneck.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
EVENTS_PATH = "/api/v1/events"
WARMUP = 1.0
PROCESSES = 2  # load-generator processes (this machine has 2 cores)
WRK_THREADS = 2
_TICKS = os.sysconf("SC_CLK_TCK")

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local first, last, seq = %(first)d, %(last)d, 0
request = function()
  seq = seq + 1
  local body = string.format(
    '{"name":"shipped","contact_id":%%d,"payload":{"order":"A-%%d","total":42.5}}',
    math.random(first, last), seq)
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests":%%d,"duration_us":%%d,"non2xx":%%d,"errors":%%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# The per-key rate limit (50/s by default) would answer most of a saturation run 429:
# the bench measures the work behind it, so the limit is lifted (it still runs).
UNLIMITED = {"SENDLINE_API_RATE": "100000", "SENDLINE_API_BURST": "1000000"}


class Server:
    """One server process on a free port, up once it answers."""

    def __init__(self, command: list[str], database_url: str, data_dir: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "SENDLINE_DATABASE_URL": database_url,
            "SENDLINE_DATA_DIR": data_dir,
            "SENDLINE_HOST": HOST,
            "SENDLINE_PORT": str(self.port),
            **UNLIMITED,
        }
        # Its log to a file, not a pipe: a pipe nobody reads during the run would stop the
        # server once full. uvicorn's access log goes to stdout, discarded (both servers).
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://{HOST}:{self.port}/healthz", timeout=1)
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    self.log.seek(0)
                    log = self.log.read()[-800:]
                    raise RuntimeError(f"{command} did not start: {log}") from None
                time.sleep(0.1)

    @classmethod
    def sendline(cls, database_url: str, data_dir: str, *, worker: bool = False) -> Server:
        # --no-worker by default: what this measures is the API's request handling; the
        # worker's share of the embedded default is `bench engine` and `bench latency`'s
        # figure, and in this process it would take the GIL and SQLite's write lock from
        # the requests in proportion to the runs they start (`--worker` shows how much).
        command = [sys.executable, "-m", "sendline.cli", "serve"]
        return cls(command + ([] if worker else ["--no-worker"]), database_url, data_dir)

    @classmethod
    def bare(cls, database_url: str, data_dir: str) -> Server:
        return cls([sys.executable, "-m", "bench.api_bare"], database_url, data_dir)

    def cpu(self) -> float:
        """The server's CPU seconds so far (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Load:
    """What one measurement saw."""

    ok: int  # 2xx answers in the measured window
    seconds: float
    statuses: Counter[str]
    generator_cpu: float  # the generator processes' CPU seconds
    window: float  # seconds the load ran (its warm-up included, in the python generator)
    server_cpu: float  # the server's CPU seconds meanwhile
    answered: int  # every answer meanwhile, whatever its status
    connections: int
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def generator_cores(self) -> float:
        """The generator's CPU time over the window: how many cores it kept busy."""
        return self.generator_cpu / self.window

    @property
    def server_cores(self) -> float:
        return self.server_cpu / self.window

    @property
    def server_us(self) -> float:
        """The server's CPU microseconds per request: the figure the machine's other
        load moves least (req/s is this over the share of a core the server got)."""
        return self.server_cpu / max(1, self.answered) * 1e6

    @property
    def bad(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))


def saturate(
    server: Server, key: str, contacts: tuple[int, int], seconds: float, connections: int
) -> Load:
    """Closed-loop requests to POST /api/v1/events as fast as the server answers, on
    `connections` keep-alive connections."""
    if _use_wrk():
        return _wrk(server, key, contacts, seconds, connections)
    spec = {"mode": "closed", "connections": max(1, connections // PROCESSES)}
    return _python(server, key, contacts, seconds, spec)


def open_loop(
    server: Server, key: str, contacts: tuple[int, int], seconds: float, rate: float
) -> Load:
    """POST /api/v1/events at a constant arrival rate; every request's latency."""
    spec = {"mode": "open", "rate": rate, "connections": 32}
    return _python(server, key, contacts, seconds, spec)


def generator_name() -> str:
    if _use_wrk():
        return f"wrk ({WRK_THREADS} threads)"
    # Measured on 2026-12-06: the bare floor read 1,950/s this way against wrk's 3,000/s.
    return (
        f"{PROCESSES} bench.api_load processes (no wrk installed: they cap the bare "
        "floor at about 2/3 of what wrk measures, so the ratio reads high)"
    )


def _use_wrk() -> bool:
    return bool(shutil.which("wrk")) and os.environ.get("BENCH_API_GENERATOR", "wrk") == "wrk"


def _wrk(
    server: Server, key: str, contacts: tuple[int, int], seconds: float, connections: int
) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % {"key": key, "first": contacts[0], "last": contacts[1]})
        script.flush()
        url = f"http://{HOST}:{server.port}{EVENTS_PATH}"

        def wrk(duration: float) -> dict[str, int]:
            command = [
                "wrk",
                f"-t{min(WRK_THREADS, connections)}",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "-s",
                script.name,
                "--timeout",
                "10s",
            ]
            out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
            return dict(json.loads(out.strip().splitlines()[-1]))

        wrk(WARMUP)  # connections, caches, the thread pool: not part of the figure
        server_before, before = server.cpu(), _children_cpu()
        started = time.perf_counter()
        summary = wrk(seconds)
        wall = time.perf_counter() - started
        used, server_used = _children_cpu() - before, server.cpu() - server_before
    bad = summary["non2xx"] + summary["errors"]
    statuses = Counter({"2xx": summary["requests"] - bad, "other": bad})
    return Load(
        ok=summary["requests"] - bad,
        seconds=summary["duration_us"] / 1e6,
        statuses=statuses,
        generator_cpu=used,
        window=wall,
        server_cpu=server_used,
        answered=summary["requests"],
        connections=connections,
    )


def _python(
    server: Server, key: str, contacts: tuple[int, int], seconds: float, spec: dict[str, Any]
) -> Load:
    start = time.time() + 1.0  # every generator connected before the first request
    common = {"host": HOST, "port": server.port, "path": EVENTS_PATH, "key": key}
    common |= {"contacts": contacts, "start": start, "warmup": WARMUP, "seconds": seconds}
    common |= {"processes": PROCESSES}
    server_before, before = server.cpu(), _children_cpu()
    generators = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.api_load", json.dumps(common | spec | {"index": i})],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    results = []
    for generator in generators:
        out, _ = generator.communicate(timeout=seconds * 10 + 120)
        if generator.returncode != 0:
            raise RuntimeError(f"a load generator exited with {generator.returncode}")
        results.append(json.loads(out))
    used, server_used = _children_cpu() - before, server.cpu() - server_before
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    for result in results:
        statuses.update(result["statuses"])
        latencies.extend(result["latencies"])
    return Load(
        ok=sum(n for status, n in statuses.items() if status.startswith("2")),
        seconds=seconds,
        statuses=statuses,
        generator_cpu=used,
        window=WARMUP + seconds,
        server_cpu=server_used,
        answered=sum(result["answered"] for result in results),
        connections=spec["connections"] * PROCESSES,
        latencies=sorted(latencies),
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
