"""Provider secrets at rest: Fernet, with keys from `SENDLINE_SECRET_KEY`.

An auth token in the database is as good as the account it unlocks: a stolen backup
must not send texts. Secrets are sealed as one JSON object per provider with Fernet
(AES-128-CBC + HMAC-SHA256, from the `cryptography` package). Several keys may be set,
newest first: the first seals, any of them opens, so a key is rotated by adding the new
one in front, re-sealing (`sendline providers rotate-secrets`), then dropping the old.
Without a key nothing secret can be stored: that is refused, never written in clear.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sendline.errors import ConfigError, SendlineError


class SecretUnreadable(SendlineError):
    """A sealed secret none of the configured keys opens (a key was dropped too soon)."""

    code = "secret_unreadable"


def check_key(key: str) -> None:
    """Raise ValueError unless `key` is a Fernet key (urlsafe base64 of 32 bytes)."""
    try:
        Fernet(key.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ValueError(
            "a secret key is 32 url-safe base64-encoded bytes; make one with "
            "`sendline providers new-key`"
        ) from None


class SecretBox:
    """Seals and opens provider secrets with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(keys)
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys]) if keys else None

    def seal(self, secrets: Mapping[str, str]) -> str:
        if self._fernet is None:
            raise ConfigError(
                "storing a provider secret needs SENDLINE_SECRET_KEY (secrets are never "
                "stored in clear); see the README's Configuration section"
            )
        return self._fernet.encrypt(json.dumps(dict(secrets)).encode()).decode("ascii")

    def open(self, sealed: str) -> dict[str, str]:
        if self._fernet is None:
            raise ConfigError("reading a provider secret needs SENDLINE_SECRET_KEY")
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except InvalidToken:
            raise SecretUnreadable(
                "a provider secret cannot be opened with any SENDLINE_SECRET_KEY key "
                "(was the key that sealed it removed?)"
            ) from None
        return {str(k): str(v) for k, v in data.items()}

    def reseal(self, sealed: str) -> str:
        """The same secrets sealed with the newest key (key rotation)."""
        if self._fernet is None:
            raise ConfigError("rotating provider secrets needs SENDLINE_SECRET_KEY")
        try:
            return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretUnreadable("a provider secret cannot be opened with any key") from None
