"""The accounts, credits, contacts and db commands, through the real CLI and databases."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import text
from typer.testing import CliRunner

from sendline.cli import app
from sendline.store.db import create_engine_for
from tests.store.test_import import DISCLOSURE, write_csv

runner = CliRunner()


def sendline(url: str, *args: str) -> Result:
    result = runner.invoke(app, list(args), env={"SENDLINE_DATABASE_URL": url})
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exception
    return result


def raw_ok(url: str, *args: str) -> str:
    result = sendline(url, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def ok(url: str, *args: str) -> str:
    """Stdout of a successful command, whitespace collapsed (Rich wraps long lines)."""
    return flat(raw_ok(url, *args))


def flat(text: str) -> str:
    return " ".join(text.split())


def refused(url: str, *args: str, code: str, exit_code: int = 1) -> str:
    result = sendline(url, *args)
    assert result.exit_code == exit_code, result.output
    assert f"[{code}]" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one message, no dump
    return flat(result.stderr)


@pytest.fixture
def acme(database_url: str) -> str:
    ok(
        database_url,
        "accounts",
        "create",
        "Acme",
        "--line",
        "marketing",
        "--tier",
        "plus",
        "--purchased-on",
        "2022-05-01",
        "--rate",
        "GB=2",
        "--quiet-hours",
        "09:00-20:00",
    )
    return database_url


def test_it_handles_db_upgrade_and_refuses_commands_before_it(empty_database_url: str) -> None:
    url = empty_database_url
    stderr = refused(url, "accounts", "list", code="pending_migrations")
    assert "run `sendline db upgrade`" in stderr
    assert "pending: 0001" in ok(url, "db", "status")
    assert "applied 0001" in ok(url, "db", "upgrade")
    assert "already up to date" in ok(url, "db", "upgrade")
    assert "pending: none" in ok(url, "db", "status")
    assert "no accounts yet" in ok(url, "accounts", "list")


def test_it_refuses_bad_settings_and_an_unreachable_database(tmp_path: Path) -> None:
    result = runner.invoke(app, ["accounts", "list"], env={"SENDLINE_PORT": "eighty"})
    assert result.exit_code == 1 and "SENDLINE_PORT" in result.stderr
    assert "[config_error]" in result.stderr and "Traceback" not in result.output
    url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    refused(url, "accounts", "list", code="database_unavailable")


def test_it_handles_accounts(acme: str) -> None:
    out = ok(
        acme,
        "accounts",
        "create",
        "Beta",
        "--line",
        "sales",
        "--tier",
        "starter",
        "--purchased-on",
        "2024-01-01",
    )
    assert "starter, current cohort, SMS refused (sms_not_in_plan)" in out
    listing = ok(acme, "accounts", "list")
    assert "Acme" in listing and "Beta" in listing
    shown = ok(acme, "accounts", "show", "Acme")
    assert "legacy cohort" in shown and "09:00-20:00" in shown and "GB=2" in shown
    refused(
        acme,
        "accounts",
        "create",
        "Acme",
        "--line",
        "sales",
        "--tier",
        "plus",
        "--purchased-on",
        "2024-01-01",
        code="conflict",
    )
    refused(
        acme,
        "accounts",
        "create",
        "X",
        "--line",
        "sales",
        "--tier",
        "gold",
        "--purchased-on",
        "2024-01-01",
        code="invalid_input",
    )
    refused(
        acme,
        "accounts",
        "create",
        "X",
        "--line",
        "sales",
        "--tier",
        "plus",
        "--purchased-on",
        "2024-01-01",
        "--max-segments",
        "11",
        code="invalid_input",
    )
    result = sendline(
        acme,
        "accounts",
        "create",
        "X",
        "--line",
        "sales",
        "--tier",
        "plus",
        "--purchased-on",
        "01/02/2024",
    )
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.stderr
    refused(acme, "accounts", "show", "Nope", code="not_found")


def test_it_handles_credits(acme: str) -> None:
    assert "1 account granted 25 credits" in ok(
        acme, "credits", "grant-monthly", "--period", "2026-11"
    )
    assert "0 accounts granted 0 credits" in ok(
        acme, "credits", "grant-monthly", "--period", "2026-11"
    )
    assert "125 available" in ok(acme, "credits", "purchase", "100", "--note", "inv-1")
    shown = ok(acme, "credits", "show", "--account", "Acme")
    assert "125 credits available (25 free, 100 purchased)" in shown
    assert "purchase" in shown and "grant" in shown
    refused(acme, "credits", "purchase", "0", code="invalid_input")
    refused(acme, "credits", "grant-monthly", "--period", "2026-13", code="invalid_input")
    ok(
        acme,
        "accounts",
        "create",
        "Lite",
        "--line",
        "sales",
        "--tier",
        "lite",
        "--purchased-on",
        "2024-01-01",
    )
    refused(acme, "credits", "purchase", "10", "--account", "Lite", code="sms_not_in_plan")
    refused(acme, "credits", "show", code="invalid_input")  # two accounts: which one?
    ok(
        acme,
        "accounts",
        "create",
        "New",
        "--line",
        "sales",
        "--tier",
        "plus",
        "--purchased-on",
        "2024-01-01",
    )
    refused(acme, "credits", "purchase", "10", "-a", "New", code="sms_addon_required")


def test_it_handles_contacts_import_show_history_export(acme: str, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "list.csv",
        [
            ["Email", "First Name", "Mobile", "Opt-in"],
            ["ann@example.com", "Ann", "(415) 892-1234", "yes"],
            ["bob@example", "Bob", "212 736 5000", "yes"],
        ],
    )
    args = ["contacts", "import", str(source), "--map", "Mobile=phone", "--map", "Opt-in=consent"]
    out = ok(acme, *args, "--disclosure", DISCLOSURE)
    assert "1 created" in out and "1 rejected" in out and "bad_email 1" in out
    report = tmp_path / "list.rejects.csv"
    assert list(csv.reader(report.open()))[1][:2] == ["3", "bad_email"]
    again = ok(acme, *args, "--disclosure", DISCLOSURE)
    assert "0 created, 0 updated, 1 unchanged" in again

    shown = ok(acme, "contacts", "show", "(415) 892-1234")
    assert "ann@example.com" in shown and "+14158921234" in shown and "opted_in" in shown
    history = ok(acme, "contacts", "consent-history", "ann@example.com")
    assert "opt_in" in history and "import" in history
    trail = raw_ok(acme, "contacts", "consent-history", "ann@example.com", "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(trail)))
    assert rows[0]["disclosure"] == DISCLOSURE and rows[0]["method"] == "import"
    saved = tmp_path / "trail.csv"
    assert "wrote 1 consent events" in ok(
        acme, "contacts", "consent-history", "1", "--csv", str(saved)
    )

    exported = raw_ok(acme, "contacts", "export")
    assert exported.splitlines()[1] == "ann@example.com,Ann,,(415) 892-1234,yes,,"
    target = tmp_path / "out.csv"
    assert "exported 1 contacts" in ok(acme, "contacts", "export", "-o", str(target))
    assert target.read_text() == exported


def test_it_refuses_bad_imports_with_a_readable_message(acme: str, tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,first_name\nzoe@example.com,Zoé\n".encode("latin-1"))
    stderr = refused(acme, "contacts", "import", str(latin), code="bad_encoding")
    assert "line 2" in stderr and "--encoding" in stderr
    assert "1 created" in ok(acme, "contacts", "import", str(latin), "--encoding", "latin-1")
    refused(acme, "contacts", "import", str(tmp_path / "missing.csv"), code="not_found")
    consent = write_csv(tmp_path / "c.csv", [["email", "consent"], ["a@example.com", "yes"]])
    refused(acme, "contacts", "import", str(consent), code="disclosure_required")
    unknown = write_csv(tmp_path / "u.csv", [["email", "Shoe size"], ["a@example.com", "9"]])
    stderr = refused(acme, "contacts", "import", str(unknown), code="unknown_column")
    assert "--map" in stderr
    refused(acme, "contacts", "show", "nobody@example.com", code="not_found")
    refused(acme, "contacts", "consent-history", "42", code="not_found")


def test_it_handles_accounts_update(acme: str) -> None:
    out = ok(
        acme,
        "accounts",
        "update",
        "Acme",
        "--tier",
        "enterprise",
        "--sms-addon",
        "--sender",
        "+1 415 892 1234",
        "--quiet-start",
        "07:00",
        "--frequency-cap",
        "5",
        "--max-segments",
        "2",
        "--optout-clause",
        "Text STOP to end",
        "--help-text",
        "Acme: help at acme.test. Reply STOP to opt out.",
        "--rate",
        "FR=3",
    )
    assert "updated account 'Acme'" in out and "enterprise" in out
    shown = ok(acme, "accounts", "show", "Acme")
    for expected in ("+14158921234", "07:00-20:00", "5 per 24 h", "Text STOP to end", "FR=3"):
        assert expected in shown
    assert "max segments 2" in shown and "SMS add-on yes" in shown
    ok(acme, "accounts", "update", "1", "--no-sms-addon", "--quiet-hours", "08:00-21:00")
    assert "SMS add-on no" in ok(acme, "accounts", "show", "Acme")


def test_it_refuses_a_bad_accounts_update_naming_the_option(acme: str) -> None:
    before = ok(acme, "accounts", "show", "Acme")
    stderr = refused(
        acme,
        "accounts",
        "update",
        "Acme",
        "--tier",
        "enterprise",
        "--max-segments",
        "eleven",
        "--quiet-end",
        "25:00",
        code="invalid_input",
    )
    assert "--max-segments: 'eleven' is not a whole number" in stderr
    assert "--quiet-end: time '25:00' is not a time of day" in stderr
    refused(acme, "accounts", "update", "Acme", "--quiet-start", "21:00", code="invalid_input")
    refused(acme, "accounts", "update", "Acme", code="invalid_input")
    refused(acme, "accounts", "update", "Nope", "--tier", "plus", code="not_found")
    assert ok(acme, "accounts", "show", "Acme") == before


def test_it_refuses_an_optout_clause_that_does_not_tell_how(acme: str) -> None:
    create = ["accounts", "create", "Thankful", "--line", "marketing", "--tier", "plus"]
    stderr = refused(
        acme,
        *create,
        "--purchased-on",
        "2022-05-01",
        "--optout-clause",
        "Thanks!",
        code="invalid_optout_clause",
    )
    assert "--optout-clause: opt-out clause 'Thanks!' does not tell how to opt out" in stderr
    refused(acme, "accounts", "show", "Thankful", code="not_found")
    refused(
        acme,
        "accounts",
        "update",
        "Acme",
        "--optout-clause",
        "Thanks!",
        code="invalid_optout_clause",
    )
    ok(acme, *create, "--purchased-on", "2022-05-01", "--optout-clause", "Text STOP to end")


def test_it_refuses_a_stored_clause_that_does_not_tell_how_in_one_line(
    acme: str, tmp_path: Path
) -> None:
    # As an older version could store it: straight into the table.
    engine = create_engine_for(acme)
    with engine.begin() as conn:
        conn.execute(text("UPDATE accounts SET optout_clause = 'Thanks!'"))
    engine.dispose()
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: Sale\ntrigger: {type: bulk}\nsteps:\n  - {type: send_sms, body: 'Sale today'}\n",
        encoding="utf-8",
    )
    stderr = refused(acme, "automations", "create", str(flow), code="invalid_optout_clause")
    assert "'Thanks!' does not tell how to opt out" in stderr
    assert "sendline accounts update ACCOUNT --optout-clause" in stderr
    assert "Thanks!" in ok(acme, "accounts", "show", "Acme")  # still readable, and fixable
    ok(acme, "accounts", "update", "Acme", "--optout-clause", "Reply STOP to opt out")
    assert "created automation 'Sale'" in ok(acme, "automations", "create", str(flow))
