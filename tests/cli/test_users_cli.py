"""`sendline users create ACCOUNT EMAIL` on both databases: the password at a prompt
(asked twice) or on stdin, never as an argument; the user can then sign in."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from sendline.cli import app
from sendline.services.users import sign_in
from tests.engine.factories import make_account

cli = CliRunner()


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"SENDLINE_DATABASE_URL": database_url, "SENDLINE_DATA_DIR": str(tmp_path)}


def test_it_creates_a_user_who_can_sign_in(
    database_url: str, tmp_path: Path, session: Session, session_factory: sessionmaker[Session]
) -> None:
    make_account(session, "Acme")
    session.rollback()
    typed = "a long passphrase\na long passphrase\n"  # the prompt asks twice
    made = cli.invoke(
        app,
        ["users", "create", "Acme", "Grace@Acme.example"],
        input=typed,
        env=_env(database_url, tmp_path),
    )
    assert made.exit_code == 0, made.output
    assert "(grace@acme.example) signs in to account Acme" in made.stdout
    assert "a long passphrase" not in made.stdout
    signed = sign_in(session_factory, "grace@acme.example", "a long passphrase")
    assert signed.user.account_name == "Acme"


def test_it_handles_a_short_password_a_taken_email_and_no_account(
    database_url: str, tmp_path: Path, session: Session
) -> None:
    make_account(session, "Acme")
    session.rollback()
    env = _env(database_url, tmp_path)
    args = ["users", "create", "Acme", "ada@acme.example", "--password-stdin"]
    short = cli.invoke(app, args, input="short\n", env=env)
    assert short.exit_code == 1 and "10 to 200 characters" in short.stderr
    assert cli.invoke(app, args, input="long enough secret\n", env=env).exit_code == 0
    taken = cli.invoke(app, args, input="long enough secret\n", env=env)
    assert taken.exit_code == 1 and "[conflict]" in taken.stderr
    nobody = ["users", "create", "Nobody", "x@y.example", "--password-stdin"]
    missing = cli.invoke(app, nobody, input="long enough secret\n", env=env)
    assert missing.exit_code == 1 and "not_found" in missing.stderr
    assert "Traceback" not in missing.output
