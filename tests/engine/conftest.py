"""Fixtures shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    """A CLI runner whose commands use the test's database."""
    monkeypatch.setenv("SENDLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("SENDLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: table cells unwrapped
    return CliRunner()
