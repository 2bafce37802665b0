"""`sendline serve` and `sendline worker`: the long-running processes."""

from __future__ import annotations

import logging
import signal
from contextlib import nullcontext
from types import FrameType
from typing import Annotated

import typer

from sendline.bootstrap import Runtime, start
from sendline.cli.common import console
from sendline.cli.db import guarded
from sendline.config import Settings
from sendline.engine.worker import Worker, WorkerOptions, tune_garbage_collector
from sendline.store.db import redact

app = typer.Typer(help="Run the service or a worker.")


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command("serve")
@guarded
def serve(
    worker: Annotated[
        bool, typer.Option(help="Run a worker inside the service (the embedded default).")
    ] = True,
) -> None:
    """Start the HTTP service (health and readiness) with an embedded worker."""
    runtime = start()  # refuses pending migrations
    try:
        _logging(runtime.settings)
        options = runtime.worker_options() if worker else None  # reads the shortener file
        # The embedded worker counts as one: on SQLite, refused beside a running worker.
        with runtime.worker_slot() if worker else nullcontext():
            _serve(runtime, options)
    finally:
        runtime.close()


def _serve(runtime: Runtime, options: WorkerOptions | None) -> None:
    import uvicorn  # noqa: PLC0415 - only the service needs the server

    from sendline.api.app import create_app  # noqa: PLC0415

    settings = runtime.settings
    console.print(
        f"Sendline on http://{settings.host}:{settings.port} "
        f"(database {redact(settings.database_url)}, provider {settings.provider}, "
        f"worker {'embedded' if options else 'off'})"
    )
    if options is not None:
        tune_garbage_collector()
    uvicorn.run(
        create_app(runtime, options),
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
    runtime = start()
    try:
        _logging(runtime.settings)
        options = runtime.worker_options(worker_id, batch_size)
        with runtime.worker_slot():  # SQLite: one worker at a time
            running = Worker(runtime.sessions, runtime.providers(), options)

            def stop(_signum: int, _frame: FrameType | None) -> None:
                running.stop()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            where = redact(runtime.settings.database_url)
            console.print(f"worker {options.worker_id} on {where}")
            tune_garbage_collector()
            running.run()
    finally:
        runtime.close()
