"""`sendline contacts` commands that change contacts and record consent, through the real
CLI on both databases: one line out, one red line with a code on bad input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.store.test_cli import acme, flat, ok, raw_ok, refused
from tests.store.test_import import DISCLOSURE, write_csv

__all__ = ["acme"]  # the fixture, used by name


def test_it_handles_create_tag_subscribe_list_update_and_delete(acme: str) -> None:
    out = ok(
        acme,
        "contacts",
        "create",
        "--email",
        "ann@example.com",
        "--phone",
        "+1 415 867 5309",
        "--tag",
        "vip",
        "--list",
        "News",
    )
    assert "created contact" in out and "tags vip; lists News" in out
    assert "tags new, vip" in ok(acme, "contacts", "tag", "ann@example.com", "new")
    assert "lists News, Promo" in ok(acme, "contacts", "subscribe", "ann@example.com", "Promo")
    assert "lists Promo" in ok(acme, "contacts", "unsubscribe", "ann@example.com", "News")
    assert "tags vip" in ok(acme, "contacts", "untag", "ann@example.com", "new")
    assert "updated contact" in ok(
        acme, "contacts", "update", "ann@example.com", "--first-name", "Ann"
    )
    listed = ok(acme, "contacts", "list", "--tag", "vip")
    assert "ann@example.com" in listed and "Ann" in listed and "+1 415 867 5309" in listed
    assert "deleted contact" in ok(acme, "contacts", "delete", "ann@example.com")
    refused(acme, "contacts", "delete", "ann@example.com", code="not_found")
    refused(acme, "contacts", "create", "--first-name", "Nobody", code="no_identity")


def test_it_records_opt_in_and_opt_out_with_their_proof(acme: str) -> None:
    ok(acme, "contacts", "create", "--email", "ann@example.com")
    out = ok(
        acme,
        "contacts",
        "opt-in",
        "ann@example.com",
        "--method",
        "form",
        "--disclosure",
        DISCLOSURE,
        "--ip",
        "203.0.113.7",
        "--user-agent",
        "Mozilla/5.0",
        "--source",
        "shop 12",
        "--by",
        "alice",
    )
    assert "recorded opt_in via form" in out and "by alice" in out
    ok(acme, "contacts", "opt-out", "ann@example.com", "--method", "agent", "--by", "bob")
    assert "opted_out" in ok(acme, "contacts", "consent-history", "ann@example.com")
    trail = list(
        csv.DictReader(
            io.StringIO(
                raw_ok(acme, "contacts", "consent-history", "ann@example.com", "--csv", "-")
            )
        )
    )
    assert [(e["kind"], e["method"], e["recorded_by"]) for e in trail] == [
        ("opt_in", "form", "alice"),
        ("opt_out", "agent", "bob"),
    ]
    assert (trail[0]["ip"], trail[0]["user_agent"], trail[0]["source"]) == (
        "203.0.113.7",
        "Mozilla/5.0",
        "shop 12",
    )
    assert trail[0]["disclosure"] == DISCLOSURE


def test_it_refuses_bad_consent_commands_with_one_line(acme: str) -> None:
    ok(acme, "contacts", "create", "--email", "ann@example.com")
    stderr = refused(
        acme,
        "contacts",
        "opt-in",
        "ann@example.com",
        "--method",
        "paper",
        "--disclosure",
        "x",
        code="bad_consent_method",
    )
    assert "form, keyword, import, api, agent" in stderr
    refused(
        acme,
        "contacts",
        "opt-in",
        "ann@example.com",
        "--method",
        "form",
        code="disclosure_required",
    )
    refused(
        acme, "contacts", "opt-out", "nobody@example.com", "--method", "agent", code="not_found"
    )
    refused(
        acme,
        "contacts",
        "opt-in",
        "ann@example.com",
        "--method",
        "form",
        "--disclosure",
        "x",
        "--ip",
        "999.1.1.1",
        code="bad_ip",
    )
    assert "no consent events" in ok(acme, "contacts", "consent-history", "ann@example.com")


def test_it_reports_flagged_rows_of_an_import(acme: str, tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "list.csv",
        [
            ["email", "phone"],
            ["dan@example.com", "06 12 34 56 78"],
            ["eve@example.com", "+44 20 7946 0958"],
        ],
    )
    out = ok(acme, "contacts", "import", str(source))
    assert "2 created" in out and "0 rejected" in out and "2 flagged" in out
    assert "invalid_phone 1" in out and "landline 1" in out
    assert "06 12 34 56 78" in flat(ok(acme, "contacts", "show", "dan@example.com"))
    assert (tmp_path / "list.rejects.csv").read_text().count("flagged") == 2
