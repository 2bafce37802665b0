"""`sendline serve`'s app under uvicorn, in a thread, on a free loopback port: for tests
that need real HTTP (carriers' callbacks, concurrent API requests)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.engine.worker import WorkerOptions


class LiveApp:
    """`sendline serve`'s app under uvicorn, in a thread, on a free loopback port."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server: uvicorn.Server | None = None
        self.app: FastAPI | None = None
        self._thread: threading.Thread | None = None

    def start(self, runtime: Runtime, worker_options: WorkerOptions | None = None) -> None:
        """Serve `runtime`'s app; with `worker_options`, with its embedded worker (as
        `sendline serve` runs on SQLite)."""
        app = create_app(runtime, worker_options)
        self.app = app
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._socket.close()
