"""Domain errors with stable codes.

Every error a user can cause is a `SendlineError` carrying a machine-readable `code`
(stable: API clients and scripts match on it) and a human message. The shells (CLI,
API, web) map codes to exit statuses, HTTP statuses or form messages; nothing below
them prints or formats errors.
"""

from __future__ import annotations


class SendlineError(Exception):
    """Base of every error Sendline reports to a user."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SendlineError):
    code = "not_found"


class InvalidInput(SendlineError):
    code = "invalid_input"


class ConfigError(SendlineError):
    code = "config_error"
