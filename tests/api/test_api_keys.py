"""services/api_keys.py and `sendline keys ...` on both databases: a key is shown once
and stored only as its hash; list shows prefixes; a revoked or unknown key does not
authenticate; last_used_at is written at most once a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from sendline.cli import app
from sendline.errors import InvalidInput, NotFound
from sendline.services.api_keys import (
    InvalidApiKey,
    authenticate,
    create_key,
    hash_key,
    list_keys,
    revoke_key,
)
from sendline.store.engine_models import ApiKey
from tests.engine.factories import make_account

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def acme(session: Session) -> int:
    account_id = make_account(session, "Acme").id
    session.commit()
    return account_id


def test_it_stores_only_the_hash_of_a_new_key(
    session_factory: sessionmaker[Session], acme: int
) -> None:
    created = create_key(session_factory, "Acme", "shop")
    assert created.key.startswith("sl_live_") and len(created.key) > 30
    assert created.view.prefix == created.key[:12]
    with session_factory() as session:
        row = session.scalars(select(ApiKey)).one()
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert row.key_hash == hash_key(created.key)
    assert not any(created.key in value for value in stored)
    assert (row.account_id, row.kind, row.name) == (acme, "account", "shop")


def test_it_authenticates_a_key_as_its_account(
    session_factory: sessionmaker[Session], acme: int
) -> None:
    created = create_key(session_factory, "Acme", "shop")
    caller = authenticate(session_factory, created.key)
    assert (caller.account_id, caller.kind, caller.key_id) == (acme, "account", created.view.id)


def test_it_authenticates_an_admin_key_with_no_account(
    session_factory: sessionmaker[Session],
) -> None:
    created = create_key(session_factory, None, "ops", admin=True)
    caller = authenticate(session_factory, created.key)
    assert (caller.account_id, caller.kind) == (None, "admin")


@pytest.mark.parametrize("raw", [None, "", "sl_live_unknown", "Bearer x", "sl_live_" + "a" * 500])
def test_it_refuses_a_missing_or_unknown_key(
    session_factory: sessionmaker[Session], acme: int, raw: str | None
) -> None:
    create_key(session_factory, "Acme", "shop")
    with pytest.raises(InvalidApiKey):
        authenticate(session_factory, raw)


def test_it_refuses_a_revoked_key(session_factory: sessionmaker[Session], acme: int) -> None:
    created = create_key(session_factory, "Acme", "shop")
    revoked = revoke_key(session_factory, str(created.view.id), now=NOW)
    assert revoked.revoked_at == NOW
    with pytest.raises(InvalidApiKey):
        authenticate(session_factory, created.key)
    # Revoking again keeps the first time.
    assert revoke_key(session_factory, str(created.view.id)).revoked_at == NOW


def test_it_writes_last_used_at_at_most_once_a_minute(
    session_factory: sessionmaker[Session], acme: int
) -> None:
    created = create_key(session_factory, "Acme", "shop")

    def last_used() -> datetime | None:
        return list_keys(session_factory, "Acme")[0].last_used_at

    assert last_used() is None
    authenticate(session_factory, created.key, now=NOW)
    assert last_used() == NOW
    authenticate(session_factory, created.key, now=NOW + timedelta(seconds=59))
    assert last_used() == NOW
    authenticate(session_factory, created.key, now=NOW + timedelta(seconds=61))
    assert last_used() == NOW + timedelta(seconds=61)


def test_it_lists_an_accounts_keys_only(
    session_factory: sessionmaker[Session], session: Session, acme: int
) -> None:
    make_account(session, "Other")
    session.commit()
    create_key(session_factory, "Acme", "shop")
    create_key(session_factory, "Other", "crm")
    create_key(session_factory, None, "ops", admin=True)
    assert [key.name for key in list_keys(session_factory, "Acme")] == ["shop"]


def test_it_refuses_bad_creations_and_unknown_ids(
    session_factory: sessionmaker[Session], acme: int
) -> None:
    with pytest.raises(InvalidInput):
        create_key(session_factory, "Acme", "   ")
    with pytest.raises(InvalidInput):
        create_key(session_factory, "Acme", "x", admin=True)
    with pytest.raises(NotFound):
        create_key(session_factory, "Nobody", "x")
    with pytest.raises(NotFound):
        revoke_key(session_factory, "999")
    with pytest.raises(NotFound):
        revoke_key(session_factory, "abc")
    with session_factory() as session:
        assert session.scalars(select(ApiKey)).all() == []


def test_the_cli_shows_a_key_once_then_only_its_prefix(
    database_url: str, tmp_path: Path, acme: int, session_factory: sessionmaker[Session]
) -> None:
    cli = CliRunner()
    env = {"SENDLINE_DATABASE_URL": database_url, "SENDLINE_DATA_DIR": str(tmp_path)}
    env["COLUMNS"] = "200"
    made = cli.invoke(app, ["keys", "create", "Acme", "--name", "shop"], env=env)
    assert made.exit_code == 0, made.output
    key = next(word for word in made.stdout.split() if word.startswith("sl_live_"))
    assert "shown once" in made.stderr
    assert authenticate(session_factory, key).account_id == acme

    listed = cli.invoke(app, ["keys", "list", "Acme"], env=env)
    assert listed.exit_code == 0 and key[:12] in listed.stdout and key not in listed.stdout

    key_id = str(list_keys(session_factory, "Acme")[0].id)
    revoked = cli.invoke(app, ["keys", "revoke", key_id], env=env)
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    with pytest.raises(InvalidApiKey):
        authenticate(session_factory, key)

    admin = cli.invoke(app, ["keys", "create", "--admin", "--name", "ops"], env=env)
    assert admin.exit_code == 0 and "admin" in admin.stdout
    both = cli.invoke(app, ["keys", "create", "Acme", "--admin", "--name", "x"], env=env)
    assert both.exit_code == 2
    unknown = cli.invoke(app, ["keys", "revoke", "999"], env=env)
    assert unknown.exit_code == 1 and "not_found" in unknown.stderr
