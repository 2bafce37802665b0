"""`sendline automations ...` and `sendline events send` on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from sendline.cli import app
from sendline.store.accounts import Accounts
from sendline.store.engine_models import AutomationRun
from sendline.store.models import Account
from tests.engine.automation_factories import NOON, account, contact, messages, runs

cli = CliRunner()

BLAST = """
name: Spring sale
trigger: {type: bulk, segment: {consent: opted_in}}
steps:
  - {type: send_sms, body: "Hi %FIRSTNAME|there%, spring sale: 20% off today"}
"""


@pytest.fixture
def owner(session: Session) -> Account:
    created = account(session, "shop")
    contact(session, created, tags=["vip"])
    contact(session, created, "06 12 34 56 78")
    contact(session, created, "+14158675310", consent=False)
    return created


def run(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {"SENDLINE_DATABASE_URL": database_url, "COLUMNS": "200"}  # tables unwrapped
    result = cli.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def _file(tmp_path: Path, text: str, name: str = "flow.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_it_handles_the_whole_lifecycle(
    database_url: str, owner: Account, tmp_path: Path, session: Session
) -> None:
    code, out, _ = run(database_url, "automations", "create", _file(tmp_path, BLAST), "-a", "shop")
    assert code == 0
    assert "created automation 'Spring sale' (id 1), version 1, draft" in out
    code, out, _ = run(database_url, "automations", "activate", "Spring sale", "-a", "shop")
    assert (code, "is active" in out) == (0, True)
    code, out, _ = run(database_url, "automations", "list")
    assert code == 0 and "Spring sale" in out and "bulk" in out
    code, out, _ = run(database_url, "automations", "start", "1", "--segment", '{"tag": "vip"}')
    assert (code, out.strip()) == (0, "started 1 contacts on automation 'Spring sale' (id 1)")
    code, out, _ = run(database_url, "automations", "show", "Spring sale")
    assert code == 0 and "send_sms" in out and "active 1" in out
    edited = _file(tmp_path, BLAST.replace("20%", "30%"), "v2.yaml")
    code, out, _ = run(database_url, "automations", "update", "Spring sale", edited)
    assert code == 0 and "version 2" in out
    code, out, _ = run(database_url, "automations", "pause", "Spring sale")
    assert code == 0 and "is paused" in out
    code, out, _ = run(database_url, "automations", "archive", "Spring sale")
    assert code == 0 and "is archived" in out
    assert [r.status for r in runs(session)] == ["exited"]


def test_it_handles_invalid_definitions_readably(
    database_url: str, owner: Account, tmp_path: Path
) -> None:
    bad = BLAST.replace("20% off today", "%COUPON% at bit.ly/sale")
    code, _, err = run(database_url, "automations", "create", _file(tmp_path, bad))
    assert code == 1
    assert "error [invalid_automation]: the automation was not saved" in err
    assert "✗ step step-1: %COUPON% is not a field of this account" in err
    assert "✗ step step-1: bit.ly/sale uses the public link shortener bit.ly; carriers" in err
    code, _, err = run(database_url, "automations", "create", _file(tmp_path, "name: [x"))
    assert code == 1 and "not valid YAML" in err
    code, _, err = run(database_url, "automations", "create", str(tmp_path / "missing.yaml"))
    assert code == 1 and "io_error" in err


def test_it_handles_accounts_without_sms(
    database_url: str, owner: Account, tmp_path: Path, session: Session
) -> None:
    Accounts(session).change_plan(owner.id, tier="starter")
    session.commit()
    code, out, _ = run(database_url, "automations", "create", _file(tmp_path, BLAST))
    assert code == 0 and "cannot be activated on this account" in out
    code, _, err = run(database_url, "automations", "activate", "Spring sale")
    assert code == 1 and "error [sms_not_in_plan]" in err


def test_it_handles_preflight_reports(database_url: str, owner: Account, tmp_path: Path) -> None:
    everyone = BLAST.replace("{type: bulk, segment: {consent: opted_in}}", "{type: bulk}")
    run(database_url, "automations", "create", _file(tmp_path, everyone))
    code, out, _ = run(database_url, "automations", "preflight", "Spring sale", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["audience"], report["to_send"], report["held"]) == (
        3,
        1,
        {"no_consent": 1, "invalid_phone": 1},
    )
    assert report["by_country"] == [{"region": "US", "messages": 1, "segments": 1, "credits": 1}]
    code, out, _ = run(database_url, "automations", "preflight", "Spring sale")
    assert code == 0
    for expected in (
        "3 contacts reached",
        "✓ 1 would be sent",
        "✗ 2 would be held",
        "Held, by reason",
        "invalid_phone",
        "fix the number",
        "By country",
        "06 12 34 56 78",
        "1 needed",
    ):
        assert expected in out
    code, out, _ = run(
        database_url, "automations", "preflight", "Spring sale", "--segment", '{"tag": "vip"}'
    )
    assert code == 0 and "1 contacts reached" in out


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("{not json", "--segment is not JSON"),
        ('{"colour": "red"}', "segment is not a condition"),
        ('{"field": "NOPE", "value": "x"}', "unknown field 'NOPE'"),
    ],
)
def test_it_handles_bad_segments(
    database_url: str, owner: Account, tmp_path: Path, segment: str, message: str
) -> None:
    run(database_url, "automations", "create", _file(tmp_path, BLAST))
    run(database_url, "automations", "activate", "Spring sale")
    code, _, err = run(database_url, "automations", "start", "Spring sale", "--segment", segment)
    assert code == 1 and "invalid_segment" in err and message in err


def test_it_handles_custom_events(
    database_url: str, owner: Account, tmp_path: Path, session: Session
) -> None:
    flow = (
        "name: Shipped\ntrigger: {type: event, name: order_shipped}\n"
        "steps: [{type: send_sms, body: 'Order %EVENT.ORDER_ID% shipped'}]"
    )
    run(database_url, "automations", "create", _file(tmp_path, flow))
    run(database_url, "automations", "activate", "Shipped")
    code, out, _ = run(
        database_url,
        "events",
        "send",
        "order_shipped",
        "--contact",
        "+1 415 867 5309",
        "--data",
        '{"order_id": "A-17"}',
    )
    assert code == 0
    assert out.strip() == "event 'order_shipped' for contact 1: 1 automation run started"
    [started] = runs(session)
    assert started.context["event"] == {"order_id": "A-17"}
    assert messages(session) == []  # the worker sends; the CLI only enrolls
    code, _, err = run(database_url, "events", "send", "x", "--contact", "1", "--data", "[1]")
    assert code == 1 and "JSON object" in err
    code, _, err = run(database_url, "events", "send", "x", "--contact", "nobody@example.com")
    assert code == 1 and "not_found" in err


VIP = """
name: Offer
trigger: {type: event, name: paid}
transactional: true
steps:
  - type: if_else
    condition: {tag: vip}
    then: [{type: send_sms, body: "VIP offer"}]
    else: [{type: send_sms, body: "Offer"}]
"""


def test_it_shows_the_step_graph_and_failed_runs(
    database_url: str, owner: Account, tmp_path: Path, session: Session
) -> None:
    code, _, _ = run(database_url, "automations", "create", _file(tmp_path, VIP))
    assert code == 0
    session.execute(
        insert(AutomationRun).values(
            account_id=owner.id,
            automation_id=1,
            version_id=1,
            contact_id=1,
            status="failed",
            error="ValueError: something broke",
            created_at=NOON,
            updated_at=NOON,
        )
    )
    session.commit()
    code, out, _ = run(database_url, "automations", "show", "Offer")
    assert code == 0
    for expected in (
        "transactional  yes: no quiet hours, no frequency cap",
        "then: step-1.then-1; else: step-1.else-1",
        "  then: step-1.then-1",
        "  else: step-1.else-1",
        "1 failed runs; the latest:",
        "run 1, contact 1, 2026-11-25 20:00:00 UTC: ValueError: something broke",
    ):
        assert expected in out
    code, out, _ = run(database_url, "automations", "list")
    assert code == 0 and "failed" in out


def test_it_refuses_branches_that_run_into_each_other(
    database_url: str, owner: Account, tmp_path: Path
) -> None:
    flow = (
        "name: F\ntrigger: {type: bulk}\nsteps:\n"
        "  - {type: if_else, condition: {tag: vip}, then: gold, else: plain}\n"
        "  - {id: gold, type: send_sms, body: Gold}\n"
        "  - {id: plain, type: send_sms, body: Plain}\n"
    )
    code, _, err = run(database_url, "automations", "create", _file(tmp_path, flow))
    assert code == 1 and "step step-1: its then branch (from 'gold') runs on into" in err
    wait = "name: W\ntrigger: {type: bulk}\nsteps: [{type: wait, duration: 99999999999999d}]"
    code, _, err = run(database_url, "automations", "create", _file(tmp_path, wait))
    assert code == 1 and "step step-1: duration '99999999999999d' is longer than the" in err
    assert "Traceback" not in err


def test_it_says_why_an_event_started_no_run(
    database_url: str, owner: Account, tmp_path: Path
) -> None:
    code, out, _ = run(database_url, "events", "send", "paid", "--contact", "1")
    assert code == 0
    assert out.splitlines() == [
        "event 'paid' for contact 1: 0 automation runs started",
        "  no automation listens to event 'paid'",
    ]


def test_it_prints_the_json_schema(database_url: str) -> None:
    code, out, _ = run(database_url, "automations", "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "Sendline automation"
    assert set(schema["properties"]) == {"name", "trigger", "reentry", "transactional", "steps"}
