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
    # The input field at fault, when one is (`phone`, `steps.2.body`): the API's problem
    # details name it, the web forms put the message beside it.
    field: str | None = None

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if field is not None:
            self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SendlineError):
    code = "not_found"


class InvalidInput(SendlineError):
    code = "invalid_input"


class ConfigError(SendlineError):
    code = "config_error"


class Conflict(SendlineError):
    """The change would break a uniqueness rule (a name, email or phone already taken)."""

    code = "conflict"


class SmsNotInPlan(SendlineError):
    """R1: the account's tier cannot use SMS at all (Lite, Starter)."""

    code = "sms_not_in_plan"


class AddonRequired(SendlineError):
    """R1/R2: a current-cohort account on an SMS tier has not bought the SMS add-on."""

    code = "sms_addon_required"


class InsufficientCredits(SendlineError):
    """R3: the available balance cannot pay for the operation."""

    code = "insufficient_credits"


class InvalidReservationState(SendlineError):
    """A reservation was charged, released or refunded out of order."""

    code = "invalid_reservation_state"


class PendingMigrations(SendlineError):
    """The database schema is behind the code; `sendline db upgrade` fixes it."""

    code = "pending_migrations"


class DatabaseUnavailable(SendlineError):
    """The database could not be reached or opened."""

    code = "database_unavailable"


class WorkerAlreadyRunning(SendlineError):
    """A worker already runs on this SQLite database: SQLite is one node, one worker."""

    code = "worker_already_running"
