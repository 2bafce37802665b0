"""/api/v1/imports on both databases: a CSV upload imported in the background with the
CLI's import, its progress, counts and rejected-rows report; refusals (empty, binary,
no phone or email column, too large); a job whose process died is failed, not left
running; another account's import is 404."""

from __future__ import annotations

import csv
import io
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline.services import automations, import_runner
from sendline.services import contacts as service
from sendline.store.import_models import ImportJob
from tests.api.conftest import Tenant, app_client
from tests.api.test_v1 import problem_of

V1 = "/api/v1"
DISCLOSURE = "Yes, text me Acme offers (up to 3/week). Reply STOP to opt out."
PEOPLE = (
    "Email,First Name,Phone,Tags\n"
    "grace@example.com,Grace,(415) 555-0132,vip\n"
    "alan@example.com,Alan,+1 415 555 01,vip\n"  # a typo'd phone: stored, flagged
    "not-an-email,Eve,,\n"  # no usable email or phone: rejected
    "=1+2,=HYPERLINK(1),,\n"  # rejected; its cells are defused in the report
)


def upload(client: TestClient, tenant: Tenant, content: bytes, **form: Any) -> dict[str, Any] | Any:
    files = {"file": ("people.csv", content, "text/csv")}
    return client.post(f"{V1}/imports", headers=tenant.headers, files=files, data=form)


def finished(client: TestClient, tenant: Tenant, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"{V1}/imports/{job_id}", headers=tenant.headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"import {job_id} did not finish: {job}")


def test_it_imports_an_upload_in_the_background(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    automation = automations.create_automation(
        session_factory,
        "Acme",
        "name: Vip\ntrigger: {type: tag_added, tag: vip}\nsteps: [{type: send_sms, body: Hi}]",
    )
    automations.change_status(session_factory, "Acme", automation.name, "activate")
    response = upload(client, acme, PEOPLE.encode())
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] in ("queued", "running", "done")
    assert queued["filename"] == "people.csv"
    job = finished(client, acme, queued["id"])
    assert job["status"] == "done", job
    assert job["progress"] == {"done": 4, "total": 4}
    assert job["counts"] == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 2,
        "flagged": 1,
        "consent_events": 0,
        "runs_started": 2,
    }
    assert job["flagged_reasons"] == {"invalid_phone": 1}
    assert sum(job["rejected_reasons"].values()) == 2
    assert job["error"] is None
    alan = service.show(session_factory, acme.account_id, "alan@example.com")
    assert (alan.phone, alan.phone_status, alan.tags) == ("+1 415 555 01", "invalid_phone", ["vip"])

    report = client.get(f"{V1}/imports/{job['id']}/rejected", headers=acme.headers)
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0][:4] == ["line", "code", "reason", "outcome"]
    assert [(r[0], r[3]) for r in rows[1:]] == [
        ("3", "flagged"),
        ("4", "rejected"),
        ("5", "rejected"),
    ]
    assert rows[3][4:6] == ["'=1+2", "'=HYPERLINK(1)"]  # defused, not formulas

    listed = client.get(f"{V1}/imports", headers=acme.headers).json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]


def test_it_fails_the_job_and_imports_nothing_when_the_file_cannot_import(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    # A consent column needs the disclosure text: the importer refuses the whole file.
    content = f"email,consent\nx@example.com,yes\n{'y@example.com,maybe'}\n".encode()
    job = finished(client, acme, upload(client, acme, content).json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "disclosure_required"
    assert job["error"]["detail"].endswith("nothing was imported")
    assert [c.id for c in service.list_contacts(session_factory, "Acme")] == [acme.contact_id]
    not_done = client.get(f"{V1}/imports/{job['id']}/rejected", headers=acme.headers)
    problem_of(not_done, 409, "import_not_done")
    with_text = upload(client, acme, content, disclosure=DISCLOSURE)
    done = finished(client, acme, with_text.json()["id"])
    counts = done["counts"]
    assert (done["status"], counts["created"], counts["consent_events"]) == ("done", 1, 1)
    assert (counts["rejected"], done["rejected_reasons"]) == (1, {"bad_consent": 1})


@pytest.mark.parametrize(
    ("content", "code", "form"),
    [
        (b"", "empty_file", {}),
        (b"\n\n", "empty_file", {}),
        (b"PK\x03\x04\x14\x00\x00\x00binary xlsx", "not_csv", {}),
        (b"name,city\nGrace,Paris\n", "unknown_column", {}),
        (b"name,city\nGrace,Paris\n", "bad_map", {"map": ["name=-", "city=-"]}),
        (b"email\nx@example.com\n", "bad_map", {"map": "no equals sign"}),
        (b"email\nx@example.com\n", "bad_encoding", {"encoding": "klingon"}),
        (b"email\nx@example.com\n", "bad_encoding", {"encoding": "rot13"}),
        (b"email\nx@example.com\n", "invalid_input", {"delimiter": "\x00"}),
    ],
)
def test_it_refuses_a_file_that_cannot_import_with_422(
    client: TestClient, acme: Tenant, content: bytes, code: str, form: dict[str, Any]
) -> None:
    response = upload(client, acme, content, **form)
    assert problem_of(response, 422, code)["field"] in ("file", "map", "encoding", "delimiter")
    assert client.get(f"{V1}/imports", headers=acme.headers).json()["data"] == []


def test_it_refuses_an_upload_over_the_limit_with_413(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path, acme: Tenant
) -> None:
    big = b"email\n" + b"someone@example.com\n" * 60_000  # 1.2 MB
    for client in app_client(engine, session_factory, tmp_path, max_upload_mb=1):
        response = upload(client, acme, big)
        assert problem_of(response, 413, "upload_too_large")["field"] == "file"
        assert client.get(f"{V1}/imports", headers=acme.headers).json()["data"] == []


def _orphan(session: Session, account_id: int, owner: str, beat: datetime) -> int:
    job = ImportJob(
        account_id=account_id,
        status="running",
        filename="big.csv",
        options={},
        counts={},
        owner=owner,
        heartbeat_at=beat,
        started_at=beat,
    )
    session.add(job)
    session.commit()
    return job.id


def test_it_fails_a_job_whose_process_died_instead_of_leaving_it_running(
    client: TestClient, acme: Tenant, session: Session
) -> None:
    now = datetime.now(UTC)
    here = socket.gethostname()
    dead = _orphan(session, acme.account_id, f"{here}:999999999:123", now)
    gone = _orphan(session, acme.account_id, "other-host:42:7", now - timedelta(minutes=5))
    busy = _orphan(session, acme.account_id, "other-host:43:7", now)
    for job_id in (dead, gone):
        job = client.get(f"{V1}/imports/{job_id}", headers=acme.headers).json()
        assert (job["status"], job["error"]["code"]) == ("failed", "import_abandoned")
        assert "nothing was imported" in job["error"]["detail"]
    listed = client.get(f"{V1}/imports", headers=acme.headers).json()["data"]
    assert [(j["id"], j["status"]) for j in listed] == [
        (busy, "running"),
        (gone, "failed"),
        (dead, "failed"),
    ]


def test_it_answers_404_for_another_accounts_import(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    job = finished(client, globex, upload(client, globex, PEOPLE.encode()).json()["id"])
    for path in (f"/imports/{job['id']}", f"/imports/{job['id']}/rejected"):
        response = client.get(V1 + path, headers=acme.headers)
        assert "Globex" not in problem_of(response, 404, "not_found")["detail"]
    assert client.get(f"{V1}/imports", headers=acme.headers).json()["data"] == []
    # Acme's own import lands in Acme only.
    mine = finished(client, acme, upload(client, acme, PEOPLE.encode()).json()["id"])
    assert mine["counts"]["created"] == 2
    theirs = client.get(f"{V1}/contacts", headers=globex.headers).json()["data"]
    assert len(theirs) == 3  # the fixture's contact and Globex's own two


def test_it_removes_the_upload_folders_of_processes_that_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"{import_runner.UPLOAD_PREFIX}999999999-abc"
    dead.mkdir()
    (dead / "upload.csv").write_text("email\n")
    mine = import_runner.new_upload_folder()
    import_runner._sweep_uploads()
    assert (dead.exists(), mine.exists()) == (False, True)
