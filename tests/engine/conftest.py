"""Fixtures shared by the engine tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sendline.engine.dispatcher import Dispatcher


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """A CLI runner whose commands use the test's database."""
    monkeypatch.setenv("SENDLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("SENDLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: table cells unwrapped
    return CliRunner()


@pytest.fixture
def sigterm_handler() -> Iterator[list[Dispatcher]]:
    """SIGTERM asks the dispatchers the test puts in the list to stop, as `sendline
    worker`'s handler does; the previous handler comes back afterwards."""
    targets: list[Dispatcher] = []

    def stop_all(*_: object) -> None:
        for dispatcher in targets:
            dispatcher.request_stop()

    previous = signal.signal(signal.SIGTERM, stop_all)
    yield targets
    signal.signal(signal.SIGTERM, previous)
