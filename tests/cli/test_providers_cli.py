"""`sendline providers ...` through its real commands, on both databases: what they print
is masked (no auth token, no full SID or number, on stdout or stderr), refusals are one
line, and `providers test` sends through the sandbox to a worker running beside it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from sendline.cli import app
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.sandbox import SandboxProvider
from sendline.store.engine_models import ProviderConfig
from tests.engine.factories import make_account, make_contact

cli = CliRunner()
SID = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "fedcba9876543210" * 2
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
FROM = "+14158675310"
PHONE = "+14158675309"
KEY = Fernet.generate_key().decode()
NEVER_SHOWN = (TOKEN, SID, SERVICE, FROM, PHONE)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str | None]:
    return {
        "SENDLINE_DATABASE_URL": database_url,
        "SENDLINE_DATA_DIR": str(tmp_path),
        "SENDLINE_SECRET_KEY": KEY,
        "SENDLINE_PUBLIC_URL": None,
        "TWILIO_AUTH_TOKEN": None,
        "COLUMNS": "200",
    }


@pytest.fixture
def acme(session: Session) -> str:
    make_contact(session, make_account(session, "Acme"), PHONE)
    return "Acme"


def run(env: dict[str, str | None], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = cli.invoke(app, list(args), env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    out, err = " ".join(result.stdout.split()), " ".join(result.stderr.split())
    for secret in NEVER_SHOWN:
        assert secret not in result.stdout and secret not in result.stderr, (args, secret)
    return result.exit_code, out, err


ADD = ("providers", "add", "Acme", "twilio", "--account-sid", SID)


def test_it_handles_add_list_move_and_remove_masked(env: dict[str, str | None], acme: str) -> None:
    code, out, err = run(env, *ADD, "--auth-token-stdin", "--from", FROM, stdin=TOKEN + "\n")
    assert code == 0, err
    assert "added twilio:1 at position 1: Twilio +1415•••5310 (AC01…ef)" in out
    assert "the carrier confirms opt-outs" in out
    assert "warning: SENDLINE_PUBLIC_URL is not set" in err  # a warning, not an error
    env_token = env | {"TWILIO_AUTH_TOKEN": TOKEN, "SENDLINE_PUBLIC_URL": "https://s.example"}
    code, out, err = run(
        env_token, *ADD, "--messaging-service-sid", SERVICE, "--no-carrier-confirms-optout"
    )
    assert (code, err) == (0, "") and "added twilio:2 at position 2" in out
    assert "MGfe…10" in out and "Sendline confirms opt-outs" in out
    code, out, _ = run(env, "providers", "list", "Acme")
    assert code == 0 and out.index("twilio:1") < out.index("twilio:2")
    assert "AC01…ef" in out and "+1415•••5310" in out and "MGfe…10" in out
    code, out, _ = run(env, "providers", "list", "Acme", "--json")
    listed = json.loads(out)
    assert [(p["name"], p["position"], p["sender"]) for p in listed] == [
        ("twilio:1", 1, "+1415•••5310"),
        ("twilio:2", 2, "MGfe…10"),
    ]
    code, out, _ = run(env, "providers", "move", "Acme", "twilio:2", "--position", "1")
    assert (code, out) == (0, "failover order: 1. twilio:2, 2. twilio:1")
    code, out, _ = run(env, "providers", "remove", "Acme", "2")
    assert code == 0 and out.startswith("removed twilio:2")
    code, out, _ = run(env, "providers", "remove", "Acme", "twilio:1")
    code, out, _ = run(env, "providers", "list", "Acme")
    assert out == "Acme has no provider: it sends through the sandbox"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (
            ("--account-sid", "AC" + "0" * 31, "--auth-token", TOKEN, "--from", FROM),
            1,
            "error [invalid_account_sid]: the Account SID",
        ),
        (
            ("--account-sid", SID, "--auth-token", TOKEN + "0", "--from", FROM),
            1,
            "error [invalid_auth_token]",
        ),
        (
            ("--account-sid", SID, "--auth-token", TOKEN, "--from", PHONE[:-1]),
            1,
            "error [invalid_from_number]: the from-number +1415•••7530",
        ),
        (("--account-sid", SID, "--auth-token", TOKEN), 1, "error [invalid_sender]"),
        (("--auth-token", TOKEN, "--from", FROM), 2, "--account-sid"),
        (("--account-sid", SID, "--from", FROM), 2, "TWILIO_AUTH_TOKEN"),
        (("--account-sid", SID, "--auth-token", TOKEN, "--config", "x.yaml"), 2, "--config"),
    ],
)
def test_it_refuses_bad_input_in_one_line_storing_nothing(
    env: dict[str, str | None],
    acme: str,
    session: Session,
    args: tuple[str, ...],
    code: int,
    says: str,
) -> None:
    exit_code, _, err = run(env, "providers", "add", "Acme", "twilio", *args)
    assert exit_code == code and says in err, err
    if code == 1:
        assert len(err.splitlines()) == 1
    assert session.scalar(select(func.count()).select_from(ProviderConfig)) == 0
    session.commit()


def test_it_refuses_a_secret_without_a_key(
    env: dict[str, str | None], acme: str, session: Session
) -> None:
    no_key = env | {"SENDLINE_SECRET_KEY": None}
    code, _, err = run(no_key, *ADD, "--auth-token", TOKEN, "--from", FROM)
    assert code == 1 and err.startswith("error [config_error]: storing a provider secret needs")
    assert session.scalar(select(func.count()).select_from(ProviderConfig)) == 0
    session.commit()


def test_it_makes_a_new_key_and_rotates_the_secrets_to_it(
    env: dict[str, str | None], acme: str
) -> None:
    assert run(env, *ADD, "--auth-token", TOKEN, "--from", FROM)[0] == 0
    code, out, err = run(env, "providers", "new-key")
    assert code == 0 and "rotate-secrets" in err
    Fernet(out.encode())  # a valid key
    code, out, _ = run(env | {"SENDLINE_SECRET_KEY": f"{out},{KEY}"}, "providers", "rotate-secrets")
    assert code == 0 and out.startswith("re-sealed 1 provider secret(s) with the newest key")
    code, _, err = run(env | {"SENDLINE_SECRET_KEY": KEY}, "providers", "rotate-secrets")
    assert code == 1 and "[secret_unreadable]" in err and "twilio:1" in err


@pytest.fixture
def worker(session_factory: sessionmaker[Session]) -> Iterator[Worker]:
    """A worker in a thread, sending through the sandbox (receipts after a second)."""
    sandbox = SandboxProvider(session_factory, report_delay=timedelta(seconds=1))
    running = Worker(session_factory, sandbox, WorkerOptions(worker_id="test-worker"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_it_sends_a_test_message_through_the_sandbox_to_its_receipt(
    env: dict[str, str | None], acme: str, worker: Worker
) -> None:
    code, out, err = run(env, "providers", "test", "Acme", "--to", PHONE, "--timeout", "60")
    assert code == 0, err
    assert "test message 1 to +1415•••5309 queued for Acme, through the sandbox" in out
    assert out.index("sent via sandbox") < out.index("delivered via sandbox")
    assert out.endswith("delivered: the provider works")


def test_it_says_why_a_test_message_ended_undelivered(
    env: dict[str, str | None], acme: str, session: Session, worker: Worker
) -> None:
    account = make_account(session, "Other")
    make_contact(session, account, "+15005550030")  # the sandbox: 30003, unreachable
    code, out, err = run(env, "providers", "test", "Other", "--to", "+15005550030")
    assert code == 1 and "undelivered" in out
    assert err.startswith("error [provider_test_failed]: the test message ended undelivered")
    assert "30003" in err and "+15005550030" not in out + err


def test_it_refuses_a_test_to_a_stranger_and_times_out_without_a_worker(
    env: dict[str, str | None], acme: str
) -> None:
    code, _, err = run(env, "providers", "test", "Acme", "--to", "+14158675399")
    assert code == 1 and err.startswith("error [not_found]: no contact has +1415•••5399")
    code, out, err = run(env, "providers", "test", "Acme", "--to", PHONE, "--timeout", "1")
    assert code == 1 and "queued" in out
    assert err.startswith("error [test_timeout]: no final status within 1 s")
    assert "is `sendline worker` (or `sendline serve`) running?" in err


def test_it_refuses_a_bad_http_provider_in_one_line(
    env: dict[str, str | None], acme: str, session: Session, tmp_path: Path
) -> None:
    http = ("providers", "add", "Acme", "http")
    binary = tmp_path / "gateway.yaml"
    binary.write_bytes(b"url: \xff\xfe\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("url: https://gateway.example/send\n")
    cases = [
        ((*http,), "http needs --config FILE.yaml"),
        ((*http, "--config", str(binary), "--account-sid", SID), "are for twilio providers"),
        ((*http, "--config", str(binary)), "is not UTF-8 text"),
        ((*http, "--config", str(plain), "--secret", TOKEN), "a --secret is NAME=VALUE"),
        ((*http, "--config", str(tmp_path / "none.yaml")), "[io_error]"),
    ]
    for args, says in cases:
        code, _, err = run(env, *args)
        assert code in (1, 2) and says in err, (args, err)
    pytest.importorskip("sendline.providers.http_gateway")
    refused = tmp_path / "refused.yaml"
    refused.write_text("no_such_key: 1\n")
    code, _, err = run(env, *http, "--config", str(refused), "--secret", f"KEY={TOKEN}")
    assert code == 1 and len(err.splitlines()) == 1 and err.startswith("error [")
    assert session.scalar(select(func.count()).select_from(ProviderConfig)) == 0
    session.commit()
