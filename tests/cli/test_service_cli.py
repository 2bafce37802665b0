"""`sendline serve` and `sendline worker` as real processes: what `make run` starts.

Each test starts the command with `python -m sendline.cli`, talks to it over loopback
HTTP or through the database, and stops it with SIGTERM the way a process manager would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from sendline.engine.actions import Actions
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.db import create_engine_for, session_factory
from sendline.store.engine_models import Message, WorkerHeartbeat
from sendline.store.types import utcnow
from tests.engine.automation_factories import account, automation, contact

SHIPPED = """
name: Shipped
trigger: {type: event, name: shipped}
reentry: always
steps:
  - {type: send_sms, body: "Your parcel is on its way: track it at trk.example/%EVENT.CODE%"}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENDLINE_")}
    return clean | {f"SENDLINE_{k.upper()}": v for k, v in settings.items()}


def _wait_for(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    return process.returncode, out


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started; killed at the end if the test left one running."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _launch(started: list[subprocess.Popen[str]], env: dict[str, str], *args: str) -> Any:
    process = subprocess.Popen(
        [sys.executable, "-m", "sendline.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(process)
    return process


def _sign_in_as_the_demo_user(base: str) -> None:
    """The sign-in the demo prints opens the dashboard."""
    with httpx.Client(base_url=base, follow_redirects=True) as browser:
        form = browser.get("/app/login").text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        signed = browser.post(
            "/app/login",
            data={"csrf_token": token, "email": "demo@example.com", "password": "sendline-demo"},
        )
        assert signed.status_code == 200, signed.text
        assert "<h1>Overview</h1>" in signed.text and "demo@example.com" in signed.text


def test_it_handles_make_run_from_demo_to_delivery(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    env = _env(data_dir=str(tmp_path), port=str(port))
    demo = subprocess.run(
        [sys.executable, "-m", "sendline.demo"], env=env, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr
    assert "sandbox outbox" in demo.stdout
    server = _launch(started, env, "serve")
    base = f"http://127.0.0.1:{port}"

    def ready() -> dict[str, Any] | None:
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2)
        except httpx.TransportError:
            return None
        return dict(answer.json()) if answer.status_code == 200 else None

    assert _wait_for(ready, "/readyz") == {"status": "ready", "database": "sqlite", "worker": True}
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    assert f"{base}/app/" in demo.stdout and "sendline-demo" in demo.stdout
    _sign_in_as_the_demo_user(base)
    engine = create_engine_for(f"sqlite:///{tmp_path / 'sendline.db'}")
    try:

        def welcomed() -> list[str]:
            with engine.connect() as conn:
                return list(conn.scalars(select(SandboxMessage.body)))

        bodies = _wait_for(welcomed, "the demo's welcome messages")
    finally:
        engine.dispose()
    assert any(body.startswith("Hi Ada, welcome to Demo Shop!") for body in bodies)

    def charged() -> str | None:
        command = [sys.executable, "-m", "sendline.cli", "credits", "show"]
        wide = env | {"COLUMNS": "200"}  # one line per entry
        shown = subprocess.run(command, env=wide, capture_output=True, text=True)
        return shown.stdout if " charge " in shown.stdout else None

    # The ledger tells what paid for them: each charge names the reservation it settles.
    ledger = _wait_for(charged, "the welcome messages' charges")
    assert " reserve " in ledger and "of reservation" in ledger
    code, out = _stop(server)
    # uvicorn ends by re-raising the SIGTERM it handled, so a process manager sees the
    # signal; what matters is that the shutdown ran: the worker stopped, claims released.
    assert code in (0, -signal.SIGTERM), out
    assert "stopped (0 claims released)" in out
    assert "Application shutdown complete" in out
    assert "Traceback" not in out


def test_it_handles_a_database_with_pending_migrations(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    env = _env(data_dir=str(tmp_path), port=str(_free_port()))
    server = _launch(started, env, "serve")
    out, _ = server.communicate(timeout=60)
    assert server.returncode != 0
    assert "sendline db upgrade" in out
    assert "Traceback" not in out


def test_it_handles_the_operators_shortener_list_in_the_worker(
    database_url: str, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    engine = create_engine_for(database_url)
    factory = session_factory(engine)
    with factory() as session:
        owner = account(session, quiet_start=0, quiet_end=24 * 60)
        ada = contact(session, owner)
        automation(session, owner, SHIPPED)
        Actions(session, owner.id).record_event(ada.id, "shipped", {"code": "X1"})
        session.commit()
    # trk.example is no public shortener the package knows; this operator lists it.
    extra = tmp_path / "shorteners.txt"
    extra.write_text("# our own list\ntrk.example\n", encoding="utf-8")
    worker = _launch(started, _env(database_url=database_url, shorteners_file=str(extra)), "worker")
    try:

        def held() -> list[tuple[str, str | None]]:
            with factory() as session:
                return [(m.status, m.held_reason) for m in session.scalars(select(Message))]

        assert _wait_for(held, "the message") == [("held", "public_shortener")]
    finally:
        engine.dispose()
    code, out = _stop(worker)
    assert code == 0, out
    assert "stopped (0 claims released)" in out


def test_it_handles_a_sender_rate_shared_by_worker_processes(
    database_url: str, backend: str, started: list[subprocess.Popen[str]]
) -> None:
    """SENDLINE_SENDER_MPS paces every worker together: a carrier policing the same rate
    (the sandbox's SENDLINE_SANDBOX_MPS) never has to refuse one of them."""
    engine = create_engine_for(database_url)
    factory = session_factory(engine)
    with factory() as session:
        owner = account(session, quiet_start=0, quiet_end=24 * 60)
        people = [contact(session, owner, phone=f"+1415555{n:04d}") for n in range(100, 140)]
        automation(session, owner, SHIPPED.replace("trk.example", "shop.example"))
        for person in people:
            Actions(session, owner.id).record_event(person.id, "shipped", {"code": "X1"})
        session.commit()
    env = _env(database_url=database_url, sender_mps="20", sandbox_mps="20")
    # SQLite has one writer, so one worker; PostgreSQL shares the rate between two.
    names = ["w1"] if backend == "sqlite" else ["w1", "w2"]
    workers = [_launch(started, env, "worker", "--worker-id", name) for name in names]
    try:

        def all_sent() -> list[tuple[str, int]] | None:
            with factory() as session:
                rows = session.execute(select(Message.status, Message.attempts)).all()
            # Accepted by the carrier: sent, or already delivered (receipts come quickly).
            accepted = all(status in ("sent", "delivered") for status, _ in rows)
            done = len(rows) == len(people) and accepted
            return [(status, attempts) for status, attempts in rows] if done else None

        # Sent at the first attempt, every one: no carrier refusal (20429) was retried.
        assert {attempts for _, attempts in _wait_for(all_sent, "40 sends")} == {1}
        with factory() as session:
            accepted = sorted(session.scalars(select(SandboxMessage.accepted_at)))
    finally:
        engine.dispose()
    span = (accepted[-1] - accepted[0]).total_seconds()
    assert span >= (len(people) - 1) / 20 * 0.9, span  # 40 messages at 20 a second
    for worker in workers:
        code, out = _stop(worker)
        assert code == 0, out


def test_it_refuses_a_second_worker_on_sqlite(
    database_url: str, backend: str, started: list[subprocess.Popen[str]]
) -> None:
    """SQLite is one node: a second worker (or `serve` with its embedded one) exits 1
    with one red line while the first runs; `serve --no-worker` may run beside it; once
    the first stops, the second starts. (PostgreSQL takes several: the test above.)"""
    if backend != "sqlite":
        pytest.skip("PostgreSQL runs any number of workers")
    port = _free_port()
    env = _env(database_url=database_url, port=str(port)) | {"COLUMNS": "400"}
    engine = create_engine_for(database_url)

    def beating(worker_id: str) -> Callable[[], bool]:
        def probe() -> bool:
            with engine.connect() as conn:
                expires = conn.scalar(
                    select(WorkerHeartbeat.expires_at).where(WorkerHeartbeat.id == worker_id)
                )
            return expires is not None and expires > utcnow()

        return probe

    try:
        first = _launch(started, env, "worker", "--worker-id", "first")
        _wait_for(beating("first"), "the first worker's heartbeat")
        for args in (["worker", "--worker-id", "second"], ["serve"]):
            refused = subprocess.run(
                [sys.executable, "-m", "sendline.cli", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert refused.returncode == 1, refused.stdout + refused.stderr
            [line] = refused.stderr.strip().splitlines()
            assert line.startswith("error [worker_already_running]: a worker is already running")
            assert "Sendline on" not in refused.stdout  # refused before it served anything
        beside = _launch(started, env, "serve", "--no-worker")
        ready = _wait_for(lambda: _ready(port), "serve --no-worker beside the worker")
        assert ready["worker"] is False
        assert _stop(beside)[0] in (0, -signal.SIGTERM)
        code, out = _stop(first)
        assert code == 0, out
        second = _launch(started, env, "worker", "--worker-id", "second")
        _wait_for(beating("second"), "the second worker, once the first stopped")
    finally:
        engine.dispose()
    code, out = _stop(second)
    assert code == 0, out


def _ready(port: int) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.TransportError:
        return None
    return dict(answer.json()) if answer.status_code == 200 else None
