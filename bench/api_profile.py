"""Where one `POST /api/v1/events` spends its time, in-process and single-threaded.

`python -m bench.api_profile [REQUESTS]` seeds `bench api`'s account on a scratch SQLite
file, then times, REQUESTS times each, one after another (no concurrency: the cost of
one request, not a queue): the key's authentication (`services.api_keys.authenticate`,
its own transaction), the event service alone (`send_account_event`: contact lookup,
event recording, the run it starts, the commit), and the whole request through the app
in-process (`create_app`, ASGI, no socket), with the bare endpoint the same way as the
floor. Then a cProfile of the service part, the functions that took the most time.
What is left between the parts and the whole is FastAPI: routing, validation of the
body and the response, the thread pool hop of a sync route.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.api_bare import bare
from bench.api_seed import seed_account
from bench.api_servers import UNLIMITED
from sendline.api.app import create_app
from sendline.bootstrap import start
from sendline.services.api_keys import authenticate
from sendline.services.automations import send_account_event


def per_call(work: Callable[[int], Any], count: int) -> float:
    """Microseconds per call of `work(index)`, best of three runs of `count`."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for index in range(count):
            work(index)
        best = min(best, (time.perf_counter() - started) / count)
    return best * 1e6


def asgi_post(app: Any, key: str, body: bytes) -> Callable[[int], None]:
    """A function that sends one POST /api/v1/events through `app` in-process."""
    loop = asyncio.new_event_loop()
    headers = [
        (b"host", b"bench"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/events",
        "raw_path": b"/api/v1/events",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    def post(_index: int) -> None:
        statuses = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        loop.run_until_complete(app(dict(scope), receive, send))
        if statuses != [202]:
            raise RuntimeError(f"answered {statuses}")

    return post


def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sendline-bench-") as workdir:
        url = f"sqlite:///{Path(workdir) / 'bench.db'}"
        seeded = seed_account(url, 10_000)
        env = {"SENDLINE_DATABASE_URL": url, "SENDLINE_DATA_DIR": workdir, **UNLIMITED}
        runtime = start(env=env)
        sessions = runtime.sessions
        first = seeded.contacts[0]
        payload = {"order": "A-1", "total": 42.5}
        body = json.dumps({"name": "shipped", "contact_id": first, "payload": payload}).encode()

        def event(index: int) -> None:
            send_account_event(sessions, seeded.account_id, str(first + index), "shipped", payload)

        parts = {
            "authenticate (key lookup, own transaction)": per_call(
                lambda _: authenticate(sessions, seeded.key), count
            ),
            "send_account_event (lookup, event, run, commit)": per_call(event, count),
            "whole request, create_app in-process": per_call(
                asgi_post(create_app(runtime), seeded.key, body), count
            ),
            "bare ASGI endpoint in-process": per_call(asgi_post(bare, seeded.key, body), count),
        }
        for name, micros in parts.items():
            print(f"   {name:<50} {micros:8,.0f} us")
        profile = cProfile.Profile()
        profile.enable()
        for index in range(count):
            event(index)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
        runtime.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
