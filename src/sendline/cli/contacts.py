"""`sendline contacts import|export|show|list|consent-history`; the commands that change
contacts are in `contact_changes`. Each parses, calls `services.contacts`, prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from sendline.cli import contact_changes
from sendline.cli.common import console, err_console
from sendline.cli.db import AccountOption, guarded, open_store
from sendline.importing.importer import ImportOptions, ImportReport
from sendline.services import contacts as service
from sendline.services.contacts import Sessions

app = typer.Typer(
    help="Contacts: import, export, create, change, tags, lists, consent.", no_args_is_help=True
)
contact_changes.register(app)


class RateColumn(ProgressColumn):
    """Rows per second, measured over the whole run so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed or not task.completed:
            return Text("- rows/s", style="progress.data.speed")
        return Text(f"{task.completed / elapsed:,.0f} rows/s", style="progress.data.speed")


class _ProgressBar:
    """A Rich progress bar (rows, rows/s) shown once rows start to flow, on stderr."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def update(self, done: int, expected: int) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TimeElapsedColumn(),
                console=err_console,
            )
            self._progress.start()
            self._task = self._progress.add_task("import", total=expected)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=expected)

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@app.command("import")
@guarded
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV file with a header row.")],
    account: AccountOption = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="Column mapping 'Column=target' (email, first_name, last_name, phone, "
            "consent, tags, lists, a custom FIELD_KEY[:number|date|phone], or - to skip).",
        ),
    ] = None,
    disclosure: Annotated[
        str | None,
        typer.Option(help="The exact consent text the contacts agreed to (with a consent column)."),
    ] = None,
    consent_source: Annotated[
        str | None, typer.Option(help="Source recorded with the consent events.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Where to write rejected rows (default: FILE.rejects.csv beside it)."),
    ] = None,
    encoding: Annotated[
        str, typer.Option(help="The file's encoding (e.g. cp1252, latin-1).")
    ] = "utf-8-sig",
    delimiter: Annotated[str, typer.Option(help="Field separator, e.g. ';'.")] = ",",
    workers: Annotated[
        int | None, typer.Option(min=0, max=8, help="Phone-checking processes.")
    ] = None,
) -> None:
    """Import (upsert by email or phone) contacts from a CSV file, all or nothing."""
    report_path = report or file.with_name(f"{file.stem}.rejects.csv")
    options = ImportOptions(
        mapping=mapping or [],
        encoding=encoding,
        delimiter=delimiter,
        disclosure=disclosure,
        consent_source=consent_source,
        report_path=report_path,
        workers=workers,
    )
    with open_store() as sessions, _ProgressBar() as bar:
        result = service.import_contacts(sessions, account, file, options, bar.update)
    _summary(result.account, result.report)


def _summary(account: str, result: ImportReport) -> None:
    console.print(
        f"{result.path.name} -> {account}: {result.rows:,} rows in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s): {result.created:,} created, "
        f"{result.updated:,} updated, {result.unchanged:,} unchanged, "
        f"{result.rejected:,} rejected, {result.flagged:,} flagged, "
        f"{result.consent_events:,} consent events, "
        f"{result.runs_started:,} automation runs started"
    )
    if result.flagged:
        flags = ", ".join(f"{code} {count:,}" for code, count in result.flags.most_common())
        console.print(
            f"flagged rows (stored as submitted; their messages will be held until the "
            f"phone is fixed): {flags}; see {result.report_path}"
        )
    if result.rejected:
        reasons = ", ".join(f"{code} {count:,}" for code, count in result.reasons.most_common())
        console.print(f"rejected rows: {reasons}; see {result.report_path}")
        for reject in result.sample[:5]:
            console.print(f"  line {reject.line}: {reject.reason}", markup=False)
    if not (result.rejected or result.flagged) and result.report_path is not None:
        # nothing to report: no stale report from an earlier run
        result.report_path.unlink(missing_ok=True)


@app.command("export")
@guarded
def export_command(
    account: AccountOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Export contacts as CSV, in the columns `contacts import` reads."""
    with open_store() as sessions:
        if output is None:
            service.export_contacts(sessions, account, sys.stdout)
            return
        with output.open("w", encoding="utf-8", newline="") as handle:
            name, count = service.export_contacts(sessions, account, handle)
        console.print(f"exported {count:,} contacts of {name} to {output}")


@app.command("show")
@guarded
def show(
    contact: Annotated[str, typer.Argument(help="Contact id, email or phone number.")],
    account: AccountOption = None,
) -> None:
    """Show a contact: phone as submitted and what it means, consent, tags, lists, fields."""
    with open_store() as sessions:
        person = service.show(sessions, account, contact)
    latest = person.latest_consent
    rows = [
        ("id", str(person.id)),
        ("email", person.email or "-"),
        ("name", person.name or "-"),
        ("phone (as submitted)", person.phone or "-"),
        ("phone E.164", person.phone_e164 or "-"),
        ("phone status", person.phone_status),
        ("region / time zone", f"{person.phone_region or '-'} / {person.time_zone or '-'}"),
        ("SMS consent", person.sms_consent),
        (
            "latest consent event",
            f"{latest.kind} via {latest.method} at {latest.occurred_at:%Y-%m-%d %H:%M} UTC"
            if latest
            else "-",
        ),
        ("tags", ", ".join(person.tags) or "-"),
        ("lists", ", ".join(person.lists) or "-"),
    ]
    rows += [(f"field {key}", str(value)) for key, value in sorted(person.fields.items())]
    table = Table(show_header=False, box=None)
    for label, value in rows:
        table.add_row(label, Text(value))
    console.print(table)


@app.command("list")
@guarded
def list_command(
    account: AccountOption = None,
    tag: Annotated[str | None, typer.Option(help="Only contacts with this tag.")] = None,
    list_name: Annotated[
        str | None, typer.Option("--list", help="Only contacts on this list.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-10000).")] = 50,
    after: Annotated[int, typer.Option(min=0, help="Start after this contact id.")] = 0,
) -> None:
    """List contacts in id order: id, email, name, phone as submitted, its status, consent."""
    with open_store() as sessions:
        found = service.list_contacts(
            sessions, account, tag=tag, list_name=list_name, limit=limit, after=after
        )
    table = Table("id", "email", "name", "phone", "phone status", "consent")
    for person in found:
        table.add_row(
            str(person.id),
            Text(person.email or "-"),
            Text(person.name or "-"),
            Text(person.phone or "-"),
            person.phone_status,
            person.sms_consent,
        )
    console.print(table)
    if len(found) == limit:
        console.print(f"more after id {found[-1].id}: --after {found[-1].id}")


@app.command("consent-history")
@guarded
def consent_history(
    contact: Annotated[str, typer.Argument(help="Contact id, email or phone number.")],
    account: AccountOption = None,
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="Write the audit trail as CSV to this file ('-': stdout)."),
    ] = None,
) -> None:
    """Print a contact's consent audit trail (every opt-in and opt-out, oldest first)."""
    with open_store() as sessions:
        if csv_file is not None:
            _write_csv(sessions, account, contact, csv_file)
            return
        history = service.consent_history(sessions, account, contact)
    person = history.contact
    console.print(f"contact {person.id} ({person.email or person.phone}): {person.sms_consent}")
    if not history.events:
        console.print("no consent events")
        return
    table = Table(
        "occurred (UTC)", "kind", "method", "source", "disclosure", "ip", "user agent", "by"
    )
    for event in history.events:
        table.add_row(
            event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            event.kind,
            event.method,
            Text(event.source),
            Text(event.disclosure or "-"),
            event.ip or "-",
            Text(event.user_agent or "-"),
            Text(event.recorded_by or "-"),
        )
    console.print(table)


def _write_csv(sessions: Sessions, account: str | None, contact: str, target: Path) -> None:
    if str(target) == "-":
        service.write_consent_csv(sessions, account, contact, sys.stdout)
        return
    handle: TextIO
    with target.open("w", encoding="utf-8", newline="") as handle:
        count = service.write_consent_csv(sessions, account, contact, handle)
    console.print(f"wrote {count} consent events to {target}")
