"""OWASP CSV injection: every CSV Sendline writes defuses formula-like cells, in one place."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

import sendline
from sendline.csv_safety import safe_cell, unquote_cell
from sendline.importing.importer import ImportOptions, import_contacts
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from tests.store.conftest import MakeAccount
from tests.store.test_import import write_csv


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+1 415 867 5309", "'+1 415 867 5309"),  # a phone: shown as text, + kept
        ("-2+3", "'-2+3"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Ann", "Ann"),
        ("a=b", "a=b"),
        ("", ""),
        (42, 42),
        (-5, -5),
    ],
)
def test_it_defuses_cells_that_start_like_a_formula(value: object, written: object) -> None:
    assert safe_cell(value) == written
    if isinstance(value, str):
        assert unquote_cell(str(written)) == value


def test_it_writes_every_csv_through_the_one_safe_writer() -> None:
    root = Path(sendline.__file__).parent
    raw = re.compile(r"csv\.(writer|DictWriter)\(")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "csv_safety.py" and raw.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_it_defuses_the_consent_trail_and_the_import_report(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    ann = Contacts(session, account.id).create(email="ann@example.com")
    Consent(session, account.id).record(
        ann.id, "opt_in", "form", source='=HYPERLINK("http://evil.example")', disclosure="@SUM(1)"
    )
    out = io.StringIO()
    Consent(session, account.id).write_csv(ann.id, out)
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["source"].startswith("'=") and row["disclosure"] == "'@SUM(1)"
    path = write_csv(
        tmp_path / "in.csv", [["email", "first_name"], ["bad email", '=HYPERLINK("x")']]
    )
    report = tmp_path / "report.csv"
    import_contacts(session, account.id, path, ImportOptions(report_path=report))
    [rejected] = list(csv.DictReader(report.open(encoding="utf-8")))
    assert rejected["first_name"] == '\'=HYPERLINK("x")'
