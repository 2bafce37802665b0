"""Every command, walked from the app itself: a bad configuration or an id no row can
have gives one red line with a code (exit 1), or a usage error (exit 2), never a
traceback. A command added later is walked too, with no change here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from sendline.cli import app

runner = CliRunner()

HUGE_ID = "1234567890123456789012345"  # 25 digits: beyond any INTEGER column
# Parameters that take an id (or a name-or-id): each gets HUGE_ID in turn.
ID_PARAMS = frozenset({"account", "contact", "automation", "ids", "reply_id", "webhook"})
# Commands that read no settings: a bad configuration does not concern them.
NO_SETTINGS = frozenset(
    {("check", "phone"), ("check", "reply"), ("automations", "schema"), ("providers", "new-key")}
)
BAD_CONFIGS = (
    {"SENDLINE_SHORTENERS_FILE": "/nowhere/shorteners.txt"},
    {"SENDLINE_NO_SUCH_SETTING": "1"},
)


def _commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    root: Any = typer.main.get_command(app)

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(None):
                yield from walk(command.get_command(None, name), (*path, name))
        else:
            yield path, command

    yield from walk(root, ())


COMMANDS = dict(_commands())


def _args(command: Any, values: dict[str, str]) -> list[str]:
    """Every required parameter filled ("1" unless `values` names it), plus `values`."""
    positional: list[str] = []
    options: list[str] = []
    for param in command.params:
        value = values.get(param.name, "1" if param.required else None)
        if value is None:
            continue
        if param.param_type_name == "argument":
            positional.append(value)
        else:
            options += [param.opts[0], value]
    return [*positional, *options]


def _run(path: tuple[str, ...], args: list[str], env: dict[str, str]) -> Result:
    result = runner.invoke(app, [*path, *args], env=env)
    where = " ".join([*path, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        where,
        result.exception,
    )
    assert "Traceback" not in result.output, where
    return result


def _assert_one_line(result: Result, where: str) -> None:
    assert result.exit_code in (1, 2), (where, result.exit_code, result.output)
    if result.exit_code == 1:  # ours: one line with a code (exit 2 is Click's usage text)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error ["), (where, result.stderr)


def test_it_walks_every_command() -> None:
    assert len(COMMANDS) >= 30
    assert {("contacts", "show"), ("events", "send"), ("check", "message")} <= set(COMMANDS)


@pytest.mark.parametrize("config", BAD_CONFIGS, ids=["shorteners_file", "unknown_setting"])
def test_it_refuses_a_bad_configuration_in_one_line(
    database_url: str, config: dict[str, str]
) -> None:
    env = {"SENDLINE_DATABASE_URL": database_url, **config}
    for path, command in COMMANDS.items():
        result = _run(path, _args(command, {}), env)
        if path in NO_SETTINGS:
            continue
        _assert_one_line(result, " ".join(path))  # config_error, or "1" refused first
    checked = _run(("check", "message"), ["hi"], env)  # the path the issue names
    assert checked.exit_code == 1 and "[config_error]" in checked.stderr


def _id_cases() -> Iterator[tuple[tuple[str, ...], list[str]]]:
    for path, command in COMMANDS.items():
        names = {param.name for param in command.params}
        for target in sorted(names & ID_PARAMS):
            values = {target: HUGE_ID}
            if target != "account" and "account" in names:
                values["account"] = "Acme"
            yield path, _args(command, values)


def test_it_refuses_an_id_beyond_any_row_in_one_line(database_url: str) -> None:
    env = {"SENDLINE_DATABASE_URL": database_url}
    create = ["accounts", "create", "Acme", "--line", "marketing", "--tier", "plus"]
    assert runner.invoke(app, [*create, "--purchased-on", "2022-05-01"], env=env).exit_code == 0
    cases = list(_id_cases())
    assert len(cases) >= 25
    for path, args in cases:
        _assert_one_line(_run(path, args, env), " ".join([*path, *args]))
    # The lookups the issue names answer not_found, not a database or overflow error.
    for args in (
        ["contacts", "show", HUGE_ID],
        ["events", "send", "order_shipped", "--contact", HUGE_ID],
        ["messages", "release", HUGE_ID],
        ["automations", "show", HUGE_ID],
        ["accounts", "show", HUGE_ID],
        ["credits", "show", "--account", HUGE_ID],
        ["inbox", "review", HUGE_ID, "--opt-out"],
    ):
        result = _run((), args, env)
        assert result.exit_code == 1 and "[not_found]" in result.stderr, (args, result.stderr)
