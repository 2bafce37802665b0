"""`sendline serve` and `sendline worker`: the long-running processes."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Annotated

import typer

from sendline.cli.common import console
from sendline.cli.db import guarded
from sendline.config import Settings, load_settings
from sendline.engine.worker import (
    Worker,
    WorkerOptions,
    default_worker_id,
    tune_garbage_collector,
)
from sendline.providers.factory import build_provider
from sendline.rulebook import shorteners
from sendline.store.db import open_engine, redact, session_factory

app = typer.Typer(help="Run the service or a worker.")


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def worker_options(
    settings: Settings, worker_id: str | None = None, batch_size: int = 200
) -> WorkerOptions:
    """The worker as the settings configure it, embedded or standalone alike."""
    return WorkerOptions(
        worker_id=worker_id or default_worker_id(),
        batch_size=batch_size,
        shorteners=shorteners(settings.shorteners_file),
        sender_mps=settings.sender_mps,
        account_mps=settings.account_mps,
    )


@app.command("serve")
@guarded
def serve(
    worker: Annotated[
        bool, typer.Option(help="Run a worker inside the service (the embedded default).")
    ] = True,
) -> None:
    """Start the HTTP service (health and readiness) with an embedded worker."""
    import uvicorn  # noqa: PLC0415 - only the service needs the server

    from sendline.api.app import create_app  # noqa: PLC0415

    settings = load_settings()
    _logging(settings)
    engine = open_engine(settings.database_url)  # refuses pending migrations
    provider = build_provider(settings, session_factory(engine)) if worker else None
    options = worker_options(settings) if worker else None  # reads the shortener file
    console.print(
        f"Sendline on http://{settings.host}:{settings.port} "
        f"(database {redact(settings.database_url)}, provider {settings.provider}, "
        f"worker {'embedded' if worker else 'off'})"
    )
    if worker:
        tune_garbage_collector()
    uvicorn.run(
        create_app(engine, provider, options),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


@app.command("worker")
@guarded
def worker_command(
    worker_id: Annotated[str | None, typer.Option(help="Name in claims and logs.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=5000)] = 200,
) -> None:
    """Run a worker: automation runs, due messages, receipts. Stops cleanly on SIGTERM."""
    settings = load_settings()
    _logging(settings)
    engine = open_engine(settings.database_url)
    factory = session_factory(engine)
    options = worker_options(settings, worker_id, batch_size)
    running = Worker(factory, build_provider(settings, factory), options)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        running.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(f"worker {options.worker_id} on {redact(settings.database_url)}")
    tune_garbage_collector()
    running.run()
    engine.dispose()
