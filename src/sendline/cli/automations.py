"""`sendline automations create|update|list|show|activate|pause|archive|start|preflight`
and `sendline events send`.

The pre-flight report is the one to read before a bulk start: who would be texted, who
would be held and why (with what to do about it), what it costs per country, how many
wait for quiet hours, and the numbers to fix.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sendline.cli.common import console, err_console
from sendline.cli.db import (
    AccountOption,
    guarded,
    open_store,
    operator_shorteners,
    resolve_account,
)
from sendline.cli.preflight_report import render_report
from sendline.engine.actions import Actions
from sendline.engine.automations import Automations, Saved
from sendline.engine.conditions import segment_from_data
from sendline.engine.definitions import Condition, InvalidAutomation
from sendline.engine.preflight import preflight
from sendline.engine.triggers import start_bulk
from sendline.errors import InvalidInput
from sendline.store.contacts import Contacts
from sendline.store.engine_models import Automation

app = typer.Typer(help="Automations: save, switch on, start, pre-flight.", no_args_is_help=True)
events_app = typer.Typer(help="Custom events that trigger automations.", no_args_is_help=True)

AutomationArg = Annotated[str, typer.Argument(help="Automation name or id.")]
SegmentOption = Annotated[
    str | None,
    typer.Option(help='Only these contacts, as a condition in JSON: {"tag": "vip"}.'),
]


def _now() -> datetime:
    return datetime.now(UTC)


def _automations(session: Any, account_id: int) -> Automations:
    return Automations(session, account_id, shorteners=operator_shorteners())


def _segment(text: str | None) -> Condition | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--segment is not JSON: {exc.msg}", code="invalid_segment") from None
    return segment_from_data(data)


def _read(file: Path) -> str:
    return sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")


def _saved(verb: str, saved: Saved) -> None:
    automation = saved.automation
    console.print(
        f"{verb} automation {automation.name!r} (id {automation.id}), version "
        f"{saved.version.number}, {automation.status}"
    )
    for warning in saved.warnings:
        console.print(Text(f"! {warning}", style="yellow"))


def _invalid(exc: InvalidAutomation) -> typer.Exit:
    err_console.print(Text(f"error [{exc.code}]: the automation was not saved", style="bold red"))
    for problem in exc.problems:
        err_console.print(Text(f"  ✗ {problem}", style="red"))
    return typer.Exit(1)


@app.command("create")
@guarded
def create(
    file: Annotated[Path, typer.Argument(help="Definition in YAML or JSON ('-' for stdin).")],
    account: AccountOption = None,
) -> None:
    """Save a new automation (a draft: `activate` switches it on)."""
    text = _read(file)
    with open_store() as sessions, sessions.begin() as session:
        owner = resolve_account(session, account)
        try:
            saved = _automations(session, owner.id).create(text)
        except InvalidAutomation as exc:
            raise _invalid(exc) from None
        _saved("created", saved)


@app.command("update")
@guarded
def update_command(
    automation: AutomationArg,
    file: Annotated[Path, typer.Argument(help="The new definition ('-' for stdin).")],
    account: AccountOption = None,
) -> None:
    """Change an automation: a new version; running contacts finish on theirs."""
    text = _read(file)
    with open_store() as sessions, sessions.begin() as session:
        owner = resolve_account(session, account)
        try:
            saved = _automations(session, owner.id).update(automation, text)
        except InvalidAutomation as exc:
            raise _invalid(exc) from None
        _saved("updated", saved)


@app.command("list")
@guarded
def list_command(account: AccountOption = None) -> None:
    """List the account's automations with their runs."""
    with open_store() as sessions, sessions.begin() as session:
        automations = _automations(session, resolve_account(session, account).id)
        found = automations.list()
        if not found:
            console.print("no automations yet: save one with `sendline automations create`")
            return
        table = Table("id", "name", "status", "trigger", "version", "active runs", "done")
        for item in found:
            runs = automations.run_counts(item.id)
            done = runs.get("completed", 0) + runs.get("exited", 0)
            table.add_row(
                str(item.id),
                item.name,
                _status(item.status),
                _trigger(item),
                str(automations.version(item).number),
                str(runs.get("active", 0)),
                str(done),
            )
        console.print(table)


@app.command("show")
@guarded
def show(automation: AutomationArg, account: AccountOption = None) -> None:
    """Show an automation: trigger, steps and runs."""
    with open_store() as sessions, sessions.begin() as session:
        automations = _automations(session, resolve_account(session, account).id)
        found = automations.resolve(automation)
        definition = automations.definition(found)
        runs = automations.run_counts(found.id)
        facts = Table(show_header=False, box=None)
        for label, value in (
            ("id", str(found.id)),
            ("name", found.name),
            ("status", _status(found.status)),
            ("trigger", _trigger(found)),
            ("re-entry", definition.reentry),
            ("version", str(automations.version(found).number)),
            ("runs", ", ".join(f"{k} {v}" for k, v in sorted(runs.items())) or "none yet"),
        ):
            facts.add_row(label, value)
        steps = Table("#", "id", "step", "settings")
        for number, step in enumerate(definition.steps, start=1):
            settings = step.model_dump(
                mode="json", by_alias=True, exclude_none=True, exclude={"id", "type"}
            )
            steps.add_row(str(number), step.id or "", step.type, json.dumps(settings))
        console.print(facts)
        console.print(steps)


def _status(status: str) -> Text:
    styles = {"active": "green", "paused": "yellow", "archived": "dim"}
    return Text(status, style=styles.get(status, ""))


def _trigger(automation: Automation) -> str:
    key = f" {automation.trigger_key}" if automation.trigger_key else ""
    return f"{automation.trigger_type}{key}"


def _lifecycle(name: str, automation: str, account: str | None) -> None:
    with open_store() as sessions, sessions.begin() as session:
        automations = _automations(session, resolve_account(session, account).id)
        changed: Automation = getattr(automations, name)(automation)
        console.print(f"automation {changed.name!r} (id {changed.id}) is {changed.status}")


@app.command("activate")
@guarded
def activate(automation: AutomationArg, account: AccountOption = None) -> None:
    """Switch on: triggers enroll contacts (refused when the plan has no SMS, R1)."""
    _lifecycle("activate", automation, account)


@app.command("pause")
@guarded
def pause(automation: AutomationArg, account: AccountOption = None) -> None:
    """Stop enrolling; running contacts wait where they are until re-activated."""
    _lifecycle("pause", automation, account)


@app.command("archive")
@guarded
def archive(automation: AutomationArg, account: AccountOption = None) -> None:
    """Retire the automation for good; its running contacts exit."""
    _lifecycle("archive", automation, account)


@app.command("start")
@guarded
def start(
    automation: AutomationArg, segment: SegmentOption = None, account: AccountOption = None
) -> None:
    """Enroll every contact of the segment now (a bulk start); the worker sends."""
    condition = _segment(segment)
    with open_store() as sessions, sessions.begin() as session:
        owner = resolve_account(session, account)
        found = _automations(session, owner.id).resolve(automation)
        started = start_bulk(session, owner.id, found.id, now=_now(), segment=condition)
        console.print(f"started {started} contacts on automation {found.name!r} (id {found.id})")


@app.command("preflight")
@guarded
def preflight_command(
    automation: AutomationArg,
    segment: SegmentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    account: AccountOption = None,
) -> None:
    """What the automation would do now: sent vs held (why), costs by country, numbers to fix."""
    condition = _segment(segment)
    with open_store() as sessions, sessions.begin() as session:
        owner = resolve_account(session, account)
        report = preflight(
            session,
            owner.id,
            automation,
            segment=condition,
            now=_now(),
            shorteners=operator_shorteners(),
        )
        session.rollback()  # reads only, and says so
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
    else:
        console.print(render_report(report))


@events_app.command("send")
@guarded
def send_event(
    name: Annotated[str, typer.Argument(help="Event name, e.g. order_shipped.")],
    contact: Annotated[str, typer.Option("--contact", help="Contact id, email or phone.")],
    data: Annotated[
        str | None, typer.Option(help='Payload as a JSON object: {"order_id": "A-17"}.')
    ] = None,
    account: AccountOption = None,
) -> None:
    """Record a custom event for a contact; automations listening for it start."""
    payload = _payload(data)
    with open_store() as sessions, sessions.begin() as session:
        owner = resolve_account(session, account)
        found = Contacts(session, owner.id).resolve(contact)
        started = Actions(session, owner.id, now=_now()).record_event(found.id, name, payload)
        noun = "run" if started == 1 else "runs"
        console.print(f"event {name!r} for contact {found.id}: {started} automation {noun} started")


def _payload(data: str | None) -> dict[str, Any]:
    if data is None:
        return {}
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--data is not JSON: {exc.msg}") from None
    if not isinstance(payload, dict):
        raise InvalidInput('--data must be a JSON object, e.g. {"order_id": "A-17"}')
    return payload
