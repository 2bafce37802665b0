"""Errors as RFC 9457 problem details (`application/problem+json`).

One place maps a `SendlineError` to an HTTP status, by its class (`STATUSES`, most
specific first). The body carries the error's stable `code` (what clients match on),
and `field` when one input field is at fault. Bad input is always 4xx: a domain error
no row names falls back to 422, never 500. 5xx is left for the server's own state
(a database that is down or behind, a missing operator secret).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException

from sendline.errors import (
    AddonRequired,
    ConfigError,
    Conflict,
    DatabaseUnavailable,
    InsufficientCredits,
    InvalidInput,
    InvalidReservationState,
    NotFound,
    PendingMigrations,
    SendlineError,
    SmsNotInPlan,
    WorkerAlreadyRunning,
)
from sendline.services.api_keys import InvalidApiKey
from sendline.store.secret_box import SecretUnreadable

PROBLEM_JSON = "application/problem+json"
API_PREFIX = "/api/"
# A URN, not a URL: no page is served for each code yet, so none is promised.
TYPE_BASE = "urn:sendline:problem:"


class AccountKeyRequired(SendlineError):
    """An admin key (no account) on a route that works on one account's data."""

    code = "account_key_required"


# The status of each domain error. InsufficientCredits is 402 Payment Required: the
# request is valid and would succeed once credits are bought (409 would suggest a retry
# after the state changes by itself, which it does not).
STATUSES: Sequence[tuple[type[SendlineError], int]] = (
    (InvalidApiKey, 401),
    (AccountKeyRequired, 403),
    (SmsNotInPlan, 403),
    (AddonRequired, 403),
    (InsufficientCredits, 402),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidReservationState, 409),
    (WorkerAlreadyRunning, 409),
    (InvalidInput, 422),
    (PendingMigrations, 503),
    (DatabaseUnavailable, 503),
    # The operator's configuration (SENDLINE_SECRET_KEY...), not the request: the
    # service is unavailable until it is fixed.
    (ConfigError, 503),
    (SecretUnreadable, 503),
)
TITLES = {
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    code: str  # stable: what clients match on
    field: str | None = None  # the input field at fault, when one is


def _documented(status: int) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": TITLES[status],
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# The errors any /api/v1 route may answer, in the OpenAPI schema: clients (and
# Schemathesis) see every status and body they can get. 422 replaces FastAPI's own
# validation error model, which this API never sends.
API_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: _documented(status) for status in (401, 403, 404, 409, 413, 422, 429, 503)
}


def status_of(error: SendlineError) -> int:
    for kind, status in STATUSES:
        if isinstance(error, kind):
            return status
    return 422  # every SendlineError is one a user can cause: never a 500


def problem(
    status: int, code: str, detail: str, *, field: str | None = None, **headers: str
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_of(location: Sequence[Any]) -> str | None:
    """`("body", "contact", "email")` -> `contact.email`; None for the body as a whole."""
    parts = [str(part) for part in location[1:]] if location else []
    return ".".join(parts) or None


def problem_for(error: SendlineError) -> JSONResponse:
    """The problem details of a domain error."""
    status = status_of(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return problem(status, error.code, error.message, field=error.field, **headers)


async def _domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SendlineError)
    return problem_for(exc)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not request.url.path.startswith(API_PREFIX):  # the carriers' webhooks keep theirs
        return await request_validation_exception_handler(request, exc)
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        # pydantic's location is a character offset ("8"), which names no field.
        detail = f"the body is not valid JSON: {first.get('ctx', {}).get('error', 'invalid')}"
        return problem(422, "invalid_json", detail, field="body")
    detail = "; ".join(
        f"{_field_of(error.get('loc', ())) or 'body'}: {error.get('msg', 'invalid')}"
        for error in errors
    )
    field = _field_of(first.get("loc", ()))
    return problem(422, "invalid_input", detail or "invalid request", field=field)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith(API_PREFIX):
        return await http_exception_handler(request, exc)
    if exc.status_code == 400:
        # Starlette's "error parsing the body" (bytes that are not UTF-8, a broken
        # multipart form): bad input, answered like every other, 422.
        return problem(422, "invalid_body", f"the body could not be read: {exc.detail}")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, str(exc.detail), **dict(exc.headers or {}))


async def _unstorable_value(_request: Request, exc: Exception) -> Response:
    """The database refused a value as data (PostgreSQL: a NUL character in text or
    JSON, a number out of its column's range). The request's value, not the server:
    422. The service's transaction rolled back, so nothing was written."""
    assert isinstance(exc, DataError)
    reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
    return problem(422, "invalid_input", f"a value could not be stored: {reason}")


async def _database_busy(_request: Request, exc: Exception) -> Response:
    """The database could not be reached, or its lock not taken in time (SQLite's one
    writer busy with a long import): the server cannot serve now, 503, retry later."""
    assert isinstance(exc, OperationalError)
    return problem(
        503,
        "database_unavailable",
        "the database is busy or unreachable; retry in a moment",
        **{"Retry-After": "5"},
    )


def install(app: FastAPI) -> None:
    """Register the handlers: domain errors everywhere, problem details under /api/."""
    app.add_exception_handler(SendlineError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(OperationalError, _database_busy)
