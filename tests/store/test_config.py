"""Settings: strict, fail fast, name the bad variable and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendline.config import KNOWN_VARIABLES, load_settings
from sendline.errors import ConfigError


def test_it_handles_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"HOME": "/root", "CI": "true"})
    assert settings.data_dir == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'sendline.db'}"
    assert (settings.provider, settings.host, settings.port) == ("sandbox", "127.0.0.1", 8000)
    assert settings.shorteners_file is None and settings.log_level == "INFO"
    assert settings.is_sqlite and settings.claim_lease == 60.0


def test_it_handles_every_setting(tmp_path: Path) -> None:
    extra = tmp_path / "shorteners.txt"
    extra.write_text("sho.rt\n")
    settings = load_settings(
        {
            "SENDLINE_DATA_DIR": str(tmp_path / "data"),
            "SENDLINE_DATABASE_URL": "postgresql://app:secret@db.internal:5432/sendline",
            "SENDLINE_SHORTENERS_FILE": str(extra),
            "SENDLINE_PROVIDER": "twilio",
            "SENDLINE_HOST": "0.0.0.0",
            "SENDLINE_PORT": "8443",
            "SENDLINE_LOG_LEVEL": "debug",
            "SENDLINE_SANDBOX_FAILURE_RATE": "0.02",
            "SENDLINE_SANDBOX_MPS": "0",
            "SENDLINE_SENDER_MPS": "1",
            "SENDLINE_ACCOUNT_MPS": "2.5",
            "SENDLINE_CLAIM_LEASE": "15",
            "SENDLINE_WEBHOOKS_ALLOW_HTTP": "true",
        }
    )
    assert settings.data_dir == tmp_path / "data"
    assert settings.database_url == "postgresql+psycopg://app:secret@db.internal:5432/sendline"
    assert settings.shorteners_file == extra
    assert (settings.provider, settings.host, settings.port) == ("twilio", "0.0.0.0", 8443)
    assert settings.log_level == "DEBUG" and not settings.is_sqlite
    assert (settings.sandbox_failure_rate, settings.sandbox_mps) == (0.02, None)  # 0: unlimited
    assert (settings.sender_mps, settings.account_mps) == (1.0, 2.5)
    assert settings.claim_lease == 15.0
    assert settings.webhooks_allow_http is True
    assert set(KNOWN_VARIABLES) >= {"SENDLINE_DATA_DIR", "SENDLINE_DATABASE_URL"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SENDLINE_PORT", "80a"),
        ("SENDLINE_PORT", "0"),
        ("SENDLINE_PORT", "70000"),
        ("SENDLINE_PROVIDER", "carrier-pigeon"),
        ("SENDLINE_DATABASE_URL", "mysql://localhost/db"),
        ("SENDLINE_DATABASE_URL", "localhost:5432"),
        ("SENDLINE_DATABASE_URL", "sqlite://"),
        ("SENDLINE_SHORTENERS_FILE", "/no/such/file.txt"),
        ("SENDLINE_LOG_LEVEL", "LOUD"),
        ("SENDLINE_HOST", "my host"),
        ("SENDLINE_DATA_DIR", "  "),
        ("SENDLINE_SANDBOX_FAILURE_RATE", "1.5"),
        ("SENDLINE_SENDER_MPS", "-1"),
        ("SENDLINE_SENDER_MPS", "nan"),
        ("SENDLINE_ACCOUNT_MPS", "inf"),
        ("SENDLINE_ACCOUNT_MPS", "ten"),
        ("SENDLINE_CLAIM_LEASE", "60s"),
        ("SENDLINE_CLAIM_LEASE", "0"),
        ("SENDLINE_CLAIM_LEASE", "1"),
        ("SENDLINE_CLAIM_LEASE", "-30"),
        ("SENDLINE_CLAIM_LEASE", "nan"),
        ("SENDLINE_CLAIM_LEASE", "inf"),
        ("SENDLINE_CLAIM_LEASE", "100000"),
        ("SENDLINE_WEBHOOKS_ALLOW_HTTP", "maybe"),
    ],
)
def test_it_refuses_a_bad_value_and_names_it(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert name in caught.value.message
    assert caught.value.code == "config_error"
    if value.strip():
        assert repr(value) in caught.value.message


def test_it_refuses_an_unknown_sendline_variable() -> None:
    with pytest.raises(ConfigError, match="SENDLINE_DATABSE_URL"):
        load_settings({"SENDLINE_DATABSE_URL": "sqlite:///x.db"})
