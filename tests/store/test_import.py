"""CSV import: mapping, upsert, consent, rejects with line numbers, idempotence, bad files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.errors import InvalidInput
from sendline.importing.importer import ImportOptions, ImportReport, import_contacts
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from sendline.store.models import ConsentEvent, Contact, ContactTag, CustomField, ListMember
from tests.store.conftest import MakeAccount

DISCLOSURE = "Acme: marketing texts, up to 4/month. Msg & data rates may apply. Reply STOP."


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def run(session: Session, account_id: int, path: Path, **options: Any) -> ImportReport:
    options.setdefault("report_path", path.with_suffix(".rejects.csv"))
    report = import_contacts(session, account_id, path, ImportOptions(**options))
    session.commit()
    return report


def rejects(report: ImportReport, outcome: str = "rejected") -> list[tuple[int, str]]:
    assert report.report_path is not None
    with report.report_path.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        return [(int(row["line"]), row["code"]) for row in rows if row["outcome"] == outcome]


def snapshot(session: Session) -> dict[str, Any]:
    session.expire_all()
    contacts = session.execute(select(Contact.__table__).order_by(Contact.id)).all()
    return {
        "contacts": [tuple(row) for row in contacts],
        "events": session.scalar(select(func.count()).select_from(ConsentEvent)),
        "tags": session.execute(select(ContactTag.__table__).order_by("contact_id", "tag")).all(),
        "members": session.scalar(select(func.count()).select_from(ListMember)),
        "fields": session.scalar(select(func.count()).select_from(CustomField)),
    }


HEADER = ["Email", "First Name", "Last Name", "Mobile", "Opt-in", "Tags", "Lists", "AGE"]
MAP = ["Mobile=phone", "Opt-in=consent", "AGE=AGE:number"]


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "messy.csv",
        [
            HEADER,
            ["ann@example.com", "Ann", "Lee", "(415) 892-1234", "yes", "vip;new", "News", "42"],
            ["BOB@example.com", "Bob", "", "212-736-5000", "no", "", "", ""],
            ["carl at example", "Carl", "", "212 736 5001", "yes", "", "", ""],  # bad email
            ["dan@example.com", "Dan", "", "06 12 34 56 78", "yes", "", "", ""],  # invalid
            ["eve@example.com", "Eve", "", "+44 20 7946 0958", "yes", "", "", ""],  # landline
            ["ann@example.com", "Ann again", "", "", "yes", "", "", ""],  # duplicate
            ["fay@example.com", "Fay", "", "", "maybe", "", "", ""],  # bad consent
            ["gus@example.com", "Gus", "", "", "", "", "", "old"],  # bad number
            ["", "Nobody", "", "", "", "", "", ""],  # no email or phone
            ["hal@example.com", "Hal"],  # ragged
            ["", "Ivy", "", "+33 6 12 34 56 78", "yes", "", "News;VIP list", ""],
        ],
    )


def test_it_handles_a_messy_file_with_a_report(
    session: Session, make_account: MakeAccount, messy: Path
) -> None:
    account = make_account()
    report = run(session, account.id, messy, mapping=MAP, disclosure=DISCLOSURE)
    assert (report.rows, report.created, report.rejected, report.flagged) == (11, 5, 6, 2)
    assert rejects(report) == [
        (4, "bad_email"),
        (7, "duplicate_in_file"),
        (8, "bad_consent"),
        (9, "bad_field"),
        (10, "no_identity"),
        (11, "ragged_row"),
    ]
    contacts = Contacts(session, account.id)
    ann = contacts.resolve("ann@example.com")
    assert (ann.phone, ann.phone_e164, ann.sms_consent) == (
        "(415) 892-1234",
        "+14158921234",
        "opted_in",
    )
    assert ann.fields == {"AGE": 42}
    assert contacts.tags(ann.id) == ["new", "vip"] and contacts.lists(ann.id) == ["News"]
    bob = contacts.resolve("bob@example.com")
    assert (bob.first_name, bob.sms_consent) == ("Bob", "opted_out")
    ivy = contacts.resolve("+33612345678")
    assert ivy.email is None and ivy.time_zone == "Europe/Paris"
    assert contacts.lists(ivy.id) == ["News", "VIP list"]
    [event] = Consent(session, account.id).history(ann.id)
    assert (event.kind, event.method, event.source) == ("opt_in", "import", "import:messy.csv")
    assert event.disclosure == DISCLOSURE
    assert contacts.custom_fields()["AGE"].type == "number"
    assert rejects(report, "flagged") == [(5, "invalid_phone"), (6, "landline")]
    assert report.flags == {"invalid_phone": 1, "landline": 1}


def test_it_stores_contacts_whose_phone_cannot_be_texted_with_email_and_consent(
    session: Session, make_account: MakeAccount, messy: Path
) -> None:
    account = make_account()
    run(session, account.id, messy, mapping=MAP, disclosure=DISCLOSURE)
    contacts = Contacts(session, account.id)
    dan, eve = contacts.resolve("dan@example.com"), contacts.resolve("eve@example.com")
    assert (dan.phone, dan.phone_e164, dan.phone_status) == (
        "06 12 34 56 78",
        None,
        "invalid_phone",
    )
    assert (eve.phone, eve.phone_status, eve.sms_consent) == (
        "+44 20 7946 0958",
        "landline",
        "opted_in",
    )
    [event] = Consent(session, account.id).history(dan.id)
    assert (event.kind, event.disclosure) == ("opt_in", DISCLOSURE)


def test_it_recognises_a_phone_only_row_with_an_untextable_phone_on_a_rerun(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    path = write_csv(
        tmp_path / "phones.csv",
        [["phone", "first_name"], ["06 12 34 56 78", "Dan"], ["06 12 34 56 78", "Dan again"]],
    )
    first = run(session, account.id, path)
    assert (first.created, first.flagged, rejects(first)) == (1, 1, [(3, "duplicate_in_file")])
    path.write_text("phone,first_name\n06 12 34 56 78,Daniel\n", encoding="utf-8")
    second = run(session, account.id, path)
    assert (second.created, second.updated) == (0, 1)
    assert Contacts(session, account.id).count() == 1
    assert session.scalar(select(Contact.first_name)) == "Daniel"


def test_it_handles_a_rerun_that_changes_nothing(
    session: Session, make_account: MakeAccount, messy: Path
) -> None:
    account = make_account()
    first = run(session, account.id, messy, mapping=MAP, disclosure=DISCLOSURE)
    before = snapshot(session)
    first_report = messy.with_suffix(".rejects.csv").read_text()
    second = run(session, account.id, messy, mapping=MAP, disclosure=DISCLOSURE)
    assert snapshot(session) == before
    assert (second.created, second.updated, second.unchanged) == (0, 0, first.created)
    assert second.consent_events == 0 and second.rejected == first.rejected
    assert messy.with_suffix(".rejects.csv").read_text() == first_report


def test_it_handles_upserts_by_email_or_phone(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    contacts = Contacts(session, account.id)
    ann = contacts.create(email="ann@example.com", phone="415 892 1234", first_name="Ann")
    bob = contacts.create(email="bob@example.com", first_name="Bob")
    session.commit()
    path = write_csv(
        tmp_path / "update.csv",
        [
            ["email", "first_name", "phone"],
            ["", "Annie", "+1 (415) 892-1234"],  # by phone: new name, phone re-submitted
            ["BOB@example.com", "", "212 736 5000"],  # by email: gets a phone, keeps the name
            ["bob@example.com", "Robert", ""],  # the same contact again
            ["ann@example.com", "", "212 736 5000"],  # ann's email, bob's new phone: conflict
            ["new@example.com", "New", ""],
        ],
    )
    report = run(session, account.id, path, batch_size=2)
    assert (report.created, report.updated, report.unchanged) == (1, 2, 0)
    assert rejects(report) == [(4, "duplicate_in_file"), (5, "conflict")]
    session.refresh(ann)
    session.refresh(bob)
    assert (ann.first_name, ann.phone, ann.email) == (
        "Annie",
        "+1 (415) 892-1234",
        "ann@example.com",
    )
    assert (bob.first_name, bob.phone, bob.phone_e164) == ("Bob", "212 736 5000", "+12127365000")


def test_it_refuses_to_opt_back_in_a_contact_who_texted_stop(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    contacts = Contacts(session, account.id)
    ann = contacts.create(email="ann@example.com")
    bob = contacts.create(email="bob@example.com")
    consent = Consent(session, account.id)
    consent.record(ann.id, "opt_out", "keyword", source="inbound STOP")
    consent.record(bob.id, "opt_out", "agent", source="phone call")
    session.commit()
    path = write_csv(
        tmp_path / "optin.csv",
        [["email", "consent"], ["ann@example.com", "yes"], ["bob@example.com", "yes"]],
    )
    report = run(session, account.id, path, disclosure=DISCLOSURE)
    assert rejects(report) == [(2, "opted_out_by_contact")]
    assert report.consent_events == 1
    session.refresh(ann)
    session.refresh(bob)
    assert (ann.sms_consent, bob.sms_consent) == ("opted_out", "opted_in")
    assert consent.status(bob.id) == "opted_in"


def test_it_handles_consent_changes_on_reimport(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    yes = write_csv(tmp_path / "yes.csv", [["email", "consent"], ["ann@example.com", "yes"]])
    no = write_csv(tmp_path / "no.csv", [["email", "consent"], ["ann@example.com", "no"]])
    assert run(session, account.id, yes, disclosure=DISCLOSURE).consent_events == 1
    assert run(session, account.id, no, disclosure=DISCLOSURE).consent_events == 1
    assert run(session, account.id, no, disclosure=DISCLOSURE).consent_events == 0
    ann = Contacts(session, account.id).resolve("ann@example.com")
    history = Consent(session, account.id).history(ann.id)
    assert [e.kind for e in history] == ["opt_in", "opt_out"]
    assert ann.sms_consent == "opted_out"


def test_it_refuses_a_file_in_the_wrong_encoding_before_writing(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    path = tmp_path / "latin1.csv"
    lines = ["email,first_name,NOTE", "ann@example.com,Ann,x"] + [
        f"u{i}@example.com,U{i},x" for i in range(3000)
    ]
    lines.append("zoe@example.com,Zoé,x")
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(InvalidInput) as caught:
        run(session, account.id, path, mapping=["NOTE=NOTE"])
    assert caught.value.code == "bad_encoding"
    assert "line 3003" in caught.value.message and "--encoding" in caught.value.message
    session.rollback()
    assert snapshot(session)["contacts"] == [] and snapshot(session)["fields"] == 0
    report = run(session, account.id, path, mapping=["NOTE=NOTE"], encoding="latin-1")
    assert report.created == 3002
    assert Contacts(session, account.id).resolve("zoe@example.com").first_name == "Zoé"


def test_it_handles_ragged_rows_and_a_ten_megabyte_field(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    path = tmp_path / "huge.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("email,first_name\n")
        handle.write("ann@example.com,Ann\n")
        handle.write("big@example.com," + "x" * 10_000_000 + "\n")
        handle.write('multi@example.com,"two\nlines"\n')
        handle.write("short@example.com\n")
        handle.write("wide@example.com,Wide,extra\n")
        handle.write("mid@example.com," + "y" * 20_000 + "\n")
        handle.write("last@example.com,Last\n")
    report = run(session, account.id, path)
    assert rejects(report) == [
        (3, "malformed_row"),
        (6, "ragged_row"),
        (7, "ragged_row"),
        (8, "field_too_long"),
    ]
    assert report.created == 3
    assert Contacts(session, account.id).resolve("multi@example.com").first_name == "two\nlines"
    assert report.report_path is not None
    assert report.report_path.stat().st_size < 10_000  # the report does not copy 10 MB


@pytest.mark.parametrize(
    ("rows", "options", "code"),
    [
        ([["email", "Mystery"], ["a@example.com", "x"]], {}, "unknown_column"),
        ([["email"], ["a@example.com"]], {"mapping": ["Mobile=phone"]}, "bad_map"),
        ([["first_name"], ["Ann"]], {}, "bad_map"),
        ([["email", "consent"], ["a@example.com", "yes"]], {}, "disclosure_required"),
        ([["email"], ["a@example.com"]], {"disclosure": "text"}, "bad_map"),
        (
            [["email", "Tel", "phone"], ["a@example.com", "1", "2"]],
            {"mapping": ["Tel=phone"]},
            "bad_map",
        ),
        ([], {}, "empty_file"),
    ],
)
def test_it_refuses_unusable_headers_before_writing(
    session: Session,
    make_account: MakeAccount,
    tmp_path: Path,
    rows: list[list[str]],
    options: dict[str, Any],
    code: str,
) -> None:
    account = make_account()
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(InvalidInput) as caught:
        run(session, account.id, path, **options)
    assert caught.value.code == code
    session.rollback()
    assert snapshot(session)["contacts"] == []


def test_it_handles_an_interrupted_import_as_nothing_imported(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    rows = [["email"]] + [[f"u{i}@example.com"] for i in range(50)]
    path = write_csv(tmp_path / "big.csv", rows)

    def stop(done: int, _expected: int) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_contacts(session, account.id, path, ImportOptions(batch_size=10), stop)
    session.rollback()
    assert snapshot(session)["contacts"] == []


def test_it_handles_phone_checks_in_a_worker_process(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    a, b = make_account(), make_account()
    rows = [["email", "phone"]]
    for i in range(120):
        phone = [
            f"(415) 892-{i:04d}",
            f"+44 20 7946 {i:04d}",
            "",
            f"+33 6 12 34 {i // 100:02d} {i % 100:02d}",
        ][i % 4]
        rows.append([f"u{i}@example.com", phone])
    path = write_csv(tmp_path / "phones.csv", rows)
    inline = run(session, a.id, path, workers=0, batch_size=25)
    parallel = run(session, b.id, path, workers=2, batch_size=25)
    assert (inline.created, inline.flagged) == (parallel.created, parallel.flagged) == (120, 30)
    columns = (
        Contact.email,
        Contact.phone,
        Contact.phone_e164,
        Contact.phone_status,
        Contact.time_zone,
    )
    query = select(*columns).order_by(Contact.email)
    assert (
        session.execute(query.where(Contact.account_id == a.id)).all()
        == session.execute(query.where(Contact.account_id == b.id)).all()
    )


def test_it_refuses_to_import_into_another_accounts_contacts(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    a, b = make_account(), make_account()
    Contacts(session, b.id).create(email="ann@example.com", first_name="B's Ann")
    session.commit()
    path = write_csv(tmp_path / "a.csv", [["email", "first_name"], ["ann@example.com", "A's Ann"]])
    report = run(session, a.id, path)
    assert report.created == 1
    assert Contacts(session, b.id).resolve("ann@example.com").first_name == "B's Ann"
    assert Contacts(session, a.id).resolve("ann@example.com").first_name == "A's Ann"


def test_it_handles_excel_habits(
    session: Session, make_account: MakeAccount, tmp_path: Path
) -> None:
    account = make_account()
    path = tmp_path / "excel.csv"
    text = "Email;First Name;Phone;\r\nann@example.com;Ann;(415) 892-1234;\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # BOM, ';', trailing separator
    report = run(session, account.id, path, delimiter=";")
    assert (report.created, report.rejected) == (1, 0)
    ann = Contacts(session, account.id).resolve("ann@example.com")
    assert (ann.first_name, ann.phone) == ("Ann", "(415) 892-1234")
    with pytest.raises(InvalidInput):
        run(session, account.id, path, delimiter=";;")
