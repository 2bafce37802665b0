"""The dashboard's composer, keystroke by keystroke: `POST /app/composer/check`.

The composer asks the server to count the draft on each pause in typing (htmx, 150 ms
debounce), so each request must come back well inside a keystroke: target p99 < 50 ms.
`sendline serve --no-worker` (the product's uvicorn call and `create_app`) on SQLite
with an account of `--contacts` opted-in contacts (`bench_engine.prepare`) and a user
who signs in through the real form; then one client types a realistic message a
character at a time (a growing body with tags, a per cent, curly quotes and an em dash
that force UCS-2, a branded link and a public shortener), one request per keystroke,
every tenth with a contact to preview for, as a typist does: sequential, no overlap.
The floor beside it is `GET /healthz` on the same server, timed the same way.

`python -m bench web [--rounds R] [--contacts N] [--database sqlite|postgresql]`;
tiny sizes (`--rounds 1 --contacts 50`) are the smoke test's.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Sequence

import httpx
from sqlalchemy import select

from bench.api_servers import HOST, Server
from bench.bench_engine import prepare
from bench.common import on_database, print_table
from sendline.services.users import create_user
from sendline.store.db import create_engine_for, session_factory
from sendline.store.models import Contact

TARGET_P99 = 0.050
EMAIL, PASSWORD = "bench@example.com", "correct horse battery"
CHECK_PATH = "/app/composer/check"
TEXT = (
    "Hi %FIRSTNAME|there%! Our spring sale starts today: 20% off everything in store "
    "and online. Don\u2019t miss it \u2014 shop at https://shop.example.com/spring "
    "or bit.ly/spring before Sunday."
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench web")
    parser.add_argument("--rounds", type=int, default=5, help="times the message is typed")
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    return parser.parse_args(list(argv))


def run(argv: Sequence[str] = ()) -> None:
    args = options(argv)
    on_database(args.database, lambda url, workdir: _measure(url, workdir, args))


def _seed(url: str, contacts: int) -> int:
    """The account, its contacts and a user; the id of a contact to preview for."""
    engine = create_engine_for(url)
    try:
        account_id, _ = prepare(engine, contacts)
        sessions = session_factory(engine)
        create_user(sessions, account_id, EMAIL, PASSWORD)
        with sessions() as session:
            first = session.scalar(select(Contact.id).where(Contact.account_id == account_id))
        assert first is not None
        return int(first)
    finally:
        engine.dispose()


def _measure(url: str, workdir: str, args: argparse.Namespace) -> None:
    contact_id = _seed(url, args.contacts)
    server = Server.sendline(url, workdir)
    try:
        with httpx.Client(base_url=f"http://{HOST}:{server.port}", timeout=30) as client:
            token = _sign_in(client)
            floor = _timed(lambda: client.get("/healthz"), len(TEXT) * args.rounds)
            typed = _type(client, token, contact_id, args.rounds)
    finally:
        server.close()
    print(
        f"   {args.database}, {args.contacts:,} contacts; sendline serve --no-worker; one "
        f"signed-in client typing a {len(TEXT)}-character message {args.rounds} times, one "
        f"request per keystroke, sequential; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    rows = [_row("GET /healthz (floor)", floor), _row(f"POST {CHECK_PATH} (keystroke)", typed)]
    print_table(["request", "requests", "p50 ms", "p99 ms", "max ms"], rows)
    p99 = _percentile(typed, 0.99)
    verdict = "yes" if p99 < TARGET_P99 else "NO"
    print(f"   composer keystroke p99 < 50 ms: {verdict} ({p99 * 1000:.1f} ms)")


def _sign_in(client: httpx.Client) -> str:
    token = _token(client.get("/app/login").text)
    answer = client.post(
        "/app/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD}
    )
    if answer.status_code != 303:  # a refused sign-in is the form again, 400
        raise RuntimeError(f"sign-in failed: {answer.status_code}")
    return _token(client.get("/app/").text)


def _token(page: str) -> str:
    found = CSRF.search(page)
    if found is None:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1)


def _type(client: httpx.Client, token: str, contact_id: int, rounds: int) -> list[float]:
    """One request per keystroke, as htmx sends them: the session cookie, the CSRF
    header, the textarea's name and value, and sometimes the contact to preview for."""
    headers = {"HX-Request": "true", "X-CSRF-Token": token}
    latencies: list[float] = []
    for _ in range(rounds):
        for end in range(1, len(TEXT) + 1):
            data = {"composer_field": "body", "body": TEXT[:end], "composer_contact.body": ""}
            if end % 10 == 0:
                data["composer_contact.body"] = str(contact_id)
            started = time.perf_counter()
            answer = client.post(CHECK_PATH, data=data, headers=headers)
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200 or 'data-count="segments"' not in answer.text:
                raise RuntimeError(f"keystroke {end}: {answer.status_code} {answer.text[:200]}")
    return latencies


def _timed(request: object, count: int) -> list[float]:
    assert callable(request)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        request()
        latencies.append(time.perf_counter() - started)
    return latencies


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _row(name: str, values: list[float]) -> list[object]:
    return [
        name,
        len(values),
        f"{statistics.median(values) * 1000:.1f}",
        f"{_percentile(values, 0.99) * 1000:.1f}",
        f"{max(values) * 1000:.1f}",
    ]
