"""Schemathesis against the served OpenAPI schema, on both databases: every /api/v1
operation gets generated requests (bounded examples) with a valid key, and none may
answer 5xx or anything its schema does not declare (status, content type, body).

The key's account has a contact, so ids sometimes name real objects; requests that
change state run against a throw-away database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.config import Settings
from tests.api.conftest import Tenant

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _as_httpx_files(files: Any) -> list[tuple[str, Any]]:
    """Schemathesis builds `files` for requests, where a generated part may be a number;
    httpx takes only bytes, text or files, so such a part goes as its text."""
    items = files.items() if isinstance(files, dict) else files
    fixed: list[tuple[str, Any]] = []
    for name, part in items:
        if isinstance(part, tuple):
            filename, content, *rest = part
            fixed.append((name, (filename, _bytes_of(content), *rest)))
        else:
            fixed.append((name, _bytes_of(part)))
    return fixed


def _bytes_of(content: Any) -> Any:
    return content if isinstance(content, bytes | str) or hasattr(content, "read") else str(content)


def _served_schema() -> Any:
    """The schema as `sendline serve` serves it. Making it needs no database: the app
    is built on an engine it never connects to."""
    settings = Settings(data_dir=Path("unused"), database_url="sqlite:////nonexistent/x.db")
    engine = create_engine(settings.database_url)
    app = create_app(Runtime(settings, engine, sessionmaker(engine)))
    return schemathesis.openapi.from_dict(app.openapi()).include(path_regex=r"^/api/v1/")


schema = _served_schema()


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_it_never_answers_5xx_or_off_schema(
    case: Any, keyed_client: TestClient, acme: Tenant
) -> None:
    kwargs = case.as_transport_kwargs(headers=acme.headers)
    kwargs.pop("base_url", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), bytes | str):  # raw bytes go as `content`
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("files") is not None:
        kwargs["files"] = _as_httpx_files(kwargs["files"])
    request = keyed_client.build_request(**kwargs)
    request.read()  # a multipart upload streams: read it now, the checks read it again
    response = keyed_client.send(request)
    case.validate_response(response, checks=CHECKS)
