"""Importing contacts through the pages, on both databases: the upload starts the job
and redirects to its page, htmx polls the progress until it is done, the counts and
the rejected-rows report show; a file that cannot import is refused beside the file
field; another account's import is a 404 page; and in Chromium, the whole flow."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from sendline.services import contacts as service
from sendline.services import import_jobs, import_runner
from sendline.services.import_jobs import ImportRequest
from sendline.store.import_models import ImportJob
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

PEOPLE = (
    "Email,First Name,Phone,Tags\n"
    "grace@example.com,Grace,(415) 555-0132,vip\n"
    "alan@example.com,Alan,+1 415 555 01,vip\n"  # a typo'd phone: stored, flagged
    "not-an-email,Eve,,\n"  # no usable email or phone: rejected
)
HTMX = {"HX-Request": "true"}
MANY = 200


def upload(client: Browserless, content: bytes, **form: str) -> Any:
    files = {"file": ("people.csv", content, "text/csv")}
    return client.post(
        "/app/contacts/import",
        data=form,
        files=files,
        follow_redirects=False,
    )


def job_path(answer: Any) -> str:
    assert answer.status_code == 303, answer.text
    location: str = answer.headers["location"]
    assert re.fullmatch(r"/app/contacts/imports/\d+", location), location
    return location


def polled_until_done(client: Browserless, path: str) -> str:
    """The fragment htmx fetches, until it no longer asks to be fetched again."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fragment = client.get(path, headers=HTMX)
        assert fragment.status_code == 200
        assert "<html" not in fragment.text  # the fragment alone
        if 'hx-trigger="every 1s"' not in fragment.text:
            return str(fragment.text)
        time.sleep(0.05)
    raise AssertionError(f"{path} did not finish")


def test_it_imports_a_csv_and_shows_the_counts_and_the_report(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    form = signed_in.get("/app/contacts/import")
    assert form.status_code == 200 and 'type="file"' in form.text
    path = job_path(upload(signed_in, PEOPLE.encode()))
    page = signed_in.get(path)
    assert page.status_code == 200 and "<progress" in page.text and "people.csv" in page.text
    done = polled_until_done(signed_in, path)
    assert 'id="import-status">done<' in done
    for label, count in (("Created", 2), ("Rejected (not imported)", 1), ("Flagged", 1)):
        assert re.search(rf"{re.escape(label)}[^<]*</th><td>{count}</td>", done), label
    assert f'href="{path}/rejected.csv"' in done
    assert "invalid phone" in done  # the flagged reason, and the report's rows
    report = signed_in.get(f"{path}/rejected.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0][:4] == ["line", "code", "reason", "outcome"]
    assert [(row[0], row[3]) for row in rows[1:]] == [("3", "flagged"), ("4", "rejected")]
    alan = service.show(session_factory, acme.account_id, "alan@example.com")
    assert (alan.phone_status, alan.tags) == ("invalid_phone", ["vip"])
    listed = signed_in.get("/app/contacts/import")
    assert f'href="{path}"' in listed.text  # among the recent imports


def test_it_shows_why_a_job_failed_and_nothing_was_imported(
    signed_in: Browserless, acme: Member
) -> None:
    # A consent column needs the disclosure text: the whole file is refused.
    path = job_path(upload(signed_in, b"email,consent\nx@example.com,yes\n"))
    done = polled_until_done(signed_in, path)
    assert 'id="import-status">failed<' in done and "nothing was imported" in done
    assert signed_in.get(f"{path}/rejected.csv").status_code == 409
    with_text = upload(signed_in, b"email,consent\nx@example.com,yes\n", disclosure="Text me")
    assert 'id="import-status">done<' in polled_until_done(signed_in, job_path(with_text))


@pytest.mark.parametrize(
    ("content", "form", "field", "error"),
    [
        (b"", {}, "file", "the file is empty"),
        (b"PK\x03\x04\x14\x00\x00\x00binary xlsx", {}, "file", "not CSV text"),
        (b"name,city\nGrace,Paris\n", {}, "file", "phone"),
        (b"email\nx@example.com\n", {"encoding": "klingon"}, "encoding", "unknown encoding"),
        (b"email\nx@example.com\n", {"delimiter": "\x00"}, "delimiter", "separator"),
        (b"email\nx@example.com\n", {"map": "no equals sign"}, "map", ""),
        (b"email\nx@example.com\n", {"disclosure": "x" * 6000}, "disclosure", "at most"),
    ],
)
def test_it_refuses_a_file_that_cannot_import_beside_its_field(
    signed_in: Browserless, content: bytes, form: dict[str, str], field: str, error: str
) -> None:
    answer = upload(signed_in, content, consent_source="spring fair", **form)
    assert answer.status_code == 400, answer.text
    found = re.search(rf'id="error-{field}" role="alert">([^<]*)<', answer.text)
    assert found is not None and error in found.group(1)
    assert 'value="spring fair"' in answer.text  # what was typed is kept


def test_it_asks_for_a_file_when_none_was_chosen(signed_in: Browserless) -> None:
    answer = signed_in.post("/app/contacts/import", data={"disclosure": "kept"})
    assert answer.status_code == 400
    assert 'id="error-file"' in answer.text and "choose a CSV file" in answer.text
    assert ">kept</textarea>" in answer.text


def test_it_answers_another_accounts_import_with_a_404_page(
    signed_in: Browserless, globex: Member, session_factory: sessionmaker[Session]
) -> None:
    staged = import_jobs.stage_upload(io.BytesIO(b"email\nx@globex.example\n"), 1 << 20)
    theirs = import_jobs.start_import(
        session_factory, globex.account_id, staged, "globex.csv", ImportRequest()
    )
    for suffix in ("", "/rejected.csv"):
        answer = signed_in.get(f"/app/contacts/imports/{theirs.id}{suffix}")
        assert answer.status_code == 404 and "globex.csv" not in answer.text
    for odd in ("0", "-1", "abc", "9" * 40):
        assert signed_in.get(f"/app/contacts/imports/{odd}").status_code == 404


@sqlite_only
def test_it_imports_a_file_with_a_bad_row_in_chromium(
    page: Any, site: LiveApp, acme: Member, tmp_path: Path
) -> None:
    # On SQLite the import holds the write lock, so the job page waits for it: the
    # polling itself is watched in the next test.
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE + "".join(f"p{n}@example.com,P{n},,\n" for n in range(MANY)))
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/contacts/import")
    page.get_by_role("button", name="Start the import").click()
    assert "choose a CSV file" in page.get_by_role("alert").inner_text()
    page.get_by_label("CSV file", exact=True).set_input_files(str(people))
    page.get_by_role("button", name="Start the import").click()
    page.wait_for_url(re.compile(r".*/app/contacts/imports/\d+$"))
    status = page.locator("#import-status")
    status.filter(has_text="done").wait_for(timeout=30_000)  # htmx polled it there
    assert page.locator("progress").get_attribute("value") == page.locator(
        "progress"
    ).get_attribute("max")
    counts = page.locator("table.import-counts").inner_text()
    assert f"Created\t{MANY + 2}" in counts and "Rejected (not imported)\t1" in counts
    report = page.locator("table.import-report").inner_text()
    assert "rejected" in report and "flagged" in report
    screenshot(page, "import")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the rejected-rows report (CSV)").click()
    saved = tmp_path / "report.csv"
    download.value.save_as(str(saved))
    rows = list(csv.reader(io.StringIO(saved.read_text())))
    assert [row[3] for row in rows[1:]] == ["flagged", "rejected"]


@sqlite_only
def test_it_polls_a_running_import_until_it_is_done_in_chromium(
    page: Any, site: LiveApp, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    # A job this process runs (its owner is alive), 40 rows of 100 in.
    with session_factory.begin() as session:
        job = ImportJob(
            account_id=acme.account_id,
            status="running",
            filename="big.csv",
            options={},
            counts={},
            owner=import_runner.owner(),
            rows_done=40,
            rows_total=100,
            started_at=datetime.now(UTC),
        )
        session.add(job)
        session.flush()
        job_id = job.id
    sign_in_browser(page, site, acme)
    page.goto(f"{site.url}/app/contacts/imports/{job_id}")
    bar = page.locator("progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("40", "100")
    assert page.locator("#import-status").inner_text() == "running"
    counts = dict.fromkeys(import_runner.COUNTS, 0) | {"created": 100}
    with session_factory.begin() as session:
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(status="done", rows_done=100, counts=counts, finished_at=datetime.now(UTC))
        )
    page.locator("#import-status").filter(has_text="done").wait_for(timeout=10_000)
    assert bar.get_attribute("value") == "100"
    assert "Created\t100" in page.locator("table.import-counts").inner_text()
    # Done: the fragment no longer asks to be fetched again.
    assert page.locator("#import-progress").get_attribute("hx-trigger") is None
