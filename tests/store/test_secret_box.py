"""store/secret_box.py and masking.py: provider secrets sealed at rest, shown masked."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from sendline.config import load_settings
from sendline.errors import ConfigError
from sendline.masking import mask_phone, mask_secret
from sendline.store.secret_box import SecretBox, SecretUnreadable

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_it_handles_a_secret_sealed_then_opened() -> None:
    box = SecretBox([NEW])
    sealed = box.seal({"auth_token": "s3cr3t-token"})
    assert "s3cr3t" not in sealed
    assert box.open(sealed) == {"auth_token": "s3cr3t-token"}


def test_it_handles_key_rotation_newest_key_first() -> None:
    sealed_old = SecretBox([OLD]).seal({"auth_token": "t"})
    rotating = SecretBox([NEW, OLD])
    assert rotating.open(sealed_old) == {"auth_token": "t"}
    resealed = rotating.reseal(sealed_old)
    assert SecretBox([NEW]).open(resealed) == {"auth_token": "t"}
    with pytest.raises(SecretUnreadable):
        SecretBox([NEW]).open(sealed_old)


def test_it_refuses_to_store_a_secret_without_a_key() -> None:
    with pytest.raises(ConfigError, match="SENDLINE_SECRET_KEY"):
        SecretBox([]).seal({"auth_token": "t"})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("not-a-key", "SENDLINE_SECRET_KEY"),
        (f"{NEW},short", "SENDLINE_SECRET_KEY"),
    ],
)
def test_it_refuses_a_malformed_secret_key(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings({"SENDLINE_SECRET_KEY": raw})


def test_it_reads_the_keys_newest_first() -> None:
    settings = load_settings({"SENDLINE_SECRET_KEY": f"{NEW}, {OLD}"})
    assert settings.secret_keys == (NEW, OLD)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SENDLINE_PUBLIC_URL", "sms.example.com"),
        ("SENDLINE_PUBLIC_URL", "ftp://sms.example.com"),
        ("SENDLINE_PUBLIC_URL", "https://sms.example.com/?x=1"),
        ("SENDLINE_TWILIO_API_URL", "localhost:9000"),
        ("SENDLINE_PROVIDER_CONCURRENCY", "0"),
        ("SENDLINE_PROVIDER_CONCURRENCY", "many"),
        ("SENDLINE_UNCONFIRMED_AFTER", "1"),
    ],
)
def test_it_refuses_a_bad_provider_setting(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: raw})


def test_it_handles_public_urls_without_their_trailing_slash() -> None:
    settings = load_settings({"SENDLINE_PUBLIC_URL": "https://sms.example.com/"})
    assert settings.public_url == "https://sms.example.com"


@pytest.mark.parametrize(
    ("value", "shown"),
    [("AC0123456789abcdef0123456789abcd89", "AC01…89"), ("short", "…"), (None, "-")],
)
def test_it_handles_masked_secrets(value: str | None, shown: str) -> None:
    assert mask_secret(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"), [("+14155550101", "+1415•••0101"), ("+3361", "•••61"), ("", "-")]
)
def test_it_handles_masked_phones(value: str, shown: str) -> None:
    assert mask_phone(value) == shown
