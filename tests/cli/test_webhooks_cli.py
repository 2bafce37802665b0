"""`sendline webhooks list|deliveries` on both databases: what the API registered and
delivered, never the signing secret."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from sendline.cli import app
from sendline.config import Settings
from sendline.services.webhooks import create_webhook
from sendline.store.webhook_models import WebhookDelivery
from tests.engine.factories import make_account

cli = CliRunner()
KEY = Fernet.generate_key().decode()


def test_it_lists_endpoints_and_their_deliveries(
    database_url: str, tmp_path: Path, session: Session, session_factory: sessionmaker[Session]
) -> None:
    make_account(session, "Acme")
    session.commit()
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_keys=(KEY,))
    url = "https://hooks.example.com/in"
    created = create_webhook(session_factory, settings, "Acme", url, ["message.held"])
    with session_factory.begin() as writing:
        writing.add(
            WebhookDelivery(
                endpoint_id=created.view.id,
                event_id=42,
                event_kind="message.held",
                attempt=3,
                status_code=503,
                duration_ms=12,
                delivered=False,
                at=datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
            )
        )
    env = {"SENDLINE_DATABASE_URL": database_url, "SENDLINE_DATA_DIR": str(tmp_path)}
    env["COLUMNS"] = "200"
    listed = cli.invoke(app, ["webhooks", "list", "Acme"], env=env)
    assert listed.exit_code == 0, listed.output
    assert url in listed.stdout and "enabled" in listed.stdout
    assert created.secret not in listed.stdout
    log = cli.invoke(app, ["webhooks", "deliveries", str(created.view.id)], env=env)
    assert log.exit_code == 0, log.output
    assert "2026-12-07 12:00:00" in log.stdout and "503" in log.stdout
    missing = cli.invoke(app, ["webhooks", "deliveries", "999999"], env=env)
    assert missing.exit_code == 1 and "not_found" in missing.stderr
