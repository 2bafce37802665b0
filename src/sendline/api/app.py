"""The HTTP service: health, readiness, carriers' webhooks, and the embedded worker.

`sendline serve` runs this app under uvicorn. On the embedded default (SQLite, sandbox)
the same process also runs the one worker, so `make run` is one command; against
PostgreSQL, `--no-worker` leaves the work to `sendline worker` processes.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from sendline import __version__, web
from sendline.api import access_log, problems
from sendline.api.gateway_webhooks import gateway_router
from sendline.api.idempotency import IdempotencyMiddleware
from sendline.api.limits import BodyLimitMiddleware, KeyRates, RateLimitMiddleware
from sendline.api.twilio_webhooks import twilio_webhooks
from sendline.api.v1 import v1_router
from sendline.bootstrap import Runtime
from sendline.engine.worker import Worker, WorkerOptions
from sendline.errors import SendlineError
from sendline.store.db import pending_migrations
from sendline.web.context import PREFIX as WEB_PREFIX

# Room for the multipart form around an uploaded file (its headers and other fields).
MULTIPART_SLACK = 1024 * 1024


def create_app(runtime: Runtime, worker_options: WorkerOptions | None = None) -> FastAPI:
    """The app on `runtime`'s database; with worker options, an embedded worker (on the
    runtime's providers) runs for the app's lifetime."""
    engine = runtime.engine
    embedded = worker_options is not None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker, thread = None, None
        if worker_options is not None:
            worker = Worker(runtime.sessions, runtime.providers(), worker_options)
            thread = threading.Thread(target=worker.run, name="sendline-worker", daemon=True)
            thread.start()
        try:
            yield
        finally:
            if worker is not None and thread is not None:
                worker.stop()
                thread.join(timeout=30)

    app = FastAPI(title="Sendline", version=__version__, lifespan=lifespan)
    app.include_router(twilio_webhooks(runtime))
    app.include_router(gateway_router(runtime.sessions, runtime.settings))
    shorteners = runtime.shorteners()  # read once: the API and the pages check links alike
    app.include_router(v1_router(runtime.sessions, runtime.settings, shorteners))
    problems.install(app)
    web.install(app, runtime.sessions, runtime.settings, shorteners)
    _add_middleware(app, runtime)
    access_log.install()

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", response_model=None)
    def ready() -> dict[str, Any] | JSONResponse:
        """Readiness: the database answers and its schema is current."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            pending = pending_migrations(engine)
        except (SQLAlchemyError, SendlineError) as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        if pending:
            reason = f"{len(pending)} migrations pending; run `sendline db upgrade`"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return {
            "status": "ready",
            "database": engine.dialect.name,
            "worker": embedded,
        }

    return app


def _add_middleware(app: FastAPI, runtime: Runtime) -> None:
    """Outermost last: the rate limit, then the body limit, run before any database
    work; idempotency wraps the routes themselves."""
    settings = runtime.settings
    app.add_middleware(IdempotencyMiddleware, sessions=runtime.sessions)
    # Uploads take more than the API's 1 MiB for JSON: a CSV of contacts. The import
    # route answers the file's own limit (413 naming `file`); this bounds the rest.
    upload = (settings.max_upload_mb << 20) + MULTIPART_SLACK
    uploads = {"/api/v1/imports": upload, WEB_PREFIX + "/contacts/import": upload}
    app.add_middleware(BodyLimitMiddleware, by_prefix=uploads, guarded=("/api/", WEB_PREFIX + "/"))
    app.add_middleware(RateLimitMiddleware, rates=KeyRates(settings.api_rate, settings.api_burst))
    if settings.cors_origins:  # off unless the operator names the origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
