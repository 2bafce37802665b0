"""`sendline automations create|update|list|show|activate|pause|archive|start|preflight|schema`
and `sendline events send`: each parses its options, calls a service
(`services/automations.py`) and prints what it returns.

The pre-flight report is the one to read before a bulk start: who would be texted, who
would be held and why (with what to do about it), what it costs per country, how many
wait for quiet hours, and the numbers to fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sendline.cli.common import console, err_console
from sendline.cli.db import AccountOption, guarded, open_store, operator_shorteners
from sendline.cli.preflight_report import render_report
from sendline.engine.definitions import InvalidAutomation
from sendline.errors import InvalidInput
from sendline.services import automations as service
from sendline.services.automations import AutomationDetail, Lifecycle, SavedAutomation

app = typer.Typer(help="Automations: save, switch on, start, pre-flight.", no_args_is_help=True)
events_app = typer.Typer(help="Custom events that trigger automations.", no_args_is_help=True)

AutomationArg = Annotated[str, typer.Argument(help="Automation name or id.")]
SegmentOption = Annotated[
    str | None,
    typer.Option(help='Only these contacts, as a condition in JSON: {"tag": "vip"}.'),
]


def _segment(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--segment is not JSON: {exc.msg}", code="invalid_segment") from None


def _read(file: Path) -> str:
    return sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")


def _saved(verb: str, saved: SavedAutomation) -> None:
    console.print(
        f"{verb} automation {saved.name!r} (id {saved.id}), version {saved.version}, {saved.status}"
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
    with open_store() as sessions:
        try:
            saved = service.create_automation(
                sessions, account, text, shorteners=operator_shorteners()
            )
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
    with open_store() as sessions:
        try:
            saved = service.update_automation(
                sessions, account, automation, text, shorteners=operator_shorteners()
            )
        except InvalidAutomation as exc:
            raise _invalid(exc) from None
    _saved("updated", saved)


@app.command("list")
@guarded
def list_command(account: AccountOption = None) -> None:
    """List the account's automations with their runs."""
    with open_store() as sessions:
        found = service.list_automations(sessions, account)
    if not found:
        console.print("no automations yet: save one with `sendline automations create`")
        return
    table = Table("id", "name", "status", "trigger", "version", "active runs", "done", "failed")
    for item in found:
        table.add_row(
            str(item.id),
            item.name,
            _status(item.status),
            item.trigger,
            str(item.version),
            str(item.active_runs),
            str(item.done_runs),
            Text(str(item.failed_runs), style="red" if item.failed_runs else ""),
        )
    console.print(table)


@app.command("show")
@guarded
def show(automation: AutomationArg, account: AccountOption = None) -> None:
    """Show an automation: trigger, the step graph with its branches, runs, failures."""
    with open_store() as sessions:
        detail = service.show_automation(sessions, account, automation)
    facts = Table(show_header=False, box=None)
    runs = ", ".join(f"{k} {v}" for k, v in sorted(detail.runs.items())) or "none yet"
    for label, value in (
        ("id", str(detail.id)),
        ("name", detail.name),
        ("status", _status(detail.status)),
        ("trigger", detail.trigger),
        ("re-entry", detail.reentry),
        (
            "transactional",
            "yes: no quiet hours, no frequency cap" if detail.transactional else "no",
        ),
        ("version", str(detail.version)),
        ("runs", runs),
    ):
        facts.add_row(label, value)
    console.print(facts)
    console.print(_steps(detail))
    for problem in detail.problems:
        console.print(
            Text(f"! {problem} (saved before this was refused: update it)", style="yellow")
        )
    _failures(detail)


def _steps(detail: AutomationDetail) -> Table:
    steps = Table("id", "step", "settings", "next")
    for line in detail.steps:
        indent = "  " * line.depth
        label = f"{indent}{line.branch}: " if line.branch else indent
        steps.add_row(f"{label}{line.id}", line.type, json.dumps(line.settings), line.leads_to)
    return steps


def _failures(detail: AutomationDetail) -> None:
    failed = detail.runs.get("failed", 0)
    if not failed:
        return
    console.print(Text(f"{failed} failed runs; the latest:", style="red"))
    for failure in detail.failures:
        when = failure.failed_at.strftime("%Y-%m-%d %H:%M:%S")
        console.print(
            f"  run {failure.run_id}, contact {failure.contact_id}, {when} UTC: {failure.reason}"
        )


@app.command("schema")
@guarded
def schema() -> None:
    """Print the JSON Schema of an automation definition (docs/automations.md explains it)."""
    sys.stdout.write(json.dumps(service.automation_schema(), indent=2) + "\n")


def _status(status: str) -> Text:
    styles = {"active": "green", "paused": "yellow", "archived": "dim"}
    return Text(status, style=styles.get(status, ""))


def _lifecycle(action: Lifecycle, automation: str, account: str | None) -> None:
    with open_store() as sessions:
        changed = service.change_status(sessions, account, automation, action)
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
    with open_store() as sessions:
        done = service.start_blast(sessions, account, automation, segment=condition)
    console.print(
        f"started {done.started} contacts on automation {done.name!r} (id {done.automation_id})"
    )


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
    with open_store() as sessions:
        report = service.preflight_automation(
            sessions, account, automation, segment=condition, shorteners=operator_shorteners()
        )
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
    with open_store() as sessions:
        outcome = service.send_event(sessions, account, contact, name, payload)
    noun = "run" if outcome.started == 1 else "runs"
    console.print(
        f"event {name!r} for contact {outcome.contact_id}: {outcome.started} automation "
        f"{noun} started"
    )
    for reason in outcome.reasons:
        console.print(Text(f"  {reason}", style="yellow"))


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
