"""The pre-flight report for people (`sendline automations preflight`): the verdict
first, then what is held and why with the fix for each reason, costs by country, and a
sample of the numbers to fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sendline.engine.preflight import PreflightReport
from sendline.engine.verdicts import HOLD_FIXES

# What to do about each hold reason, shown beside its count.


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def render_report(report: PreflightReport) -> Group:
    """The pre-flight report for people: the verdict first, then the detail."""
    title = (
        f"Pre-flight · {report.name} (id {report.automation_id}, version {report.version}, "
        f"{report.status}) · trigger {report.trigger}"
    )
    parts: list[Any] = [Panel(_summary(report), title=title, title_align="left")]
    if report.held:
        parts.append(_held_table(report))
    if report.by_country:
        parts.append(_country_table(report))
    if report.sample_held:
        parts.append(_sample_table(report))
    if len(report.steps) > 1:
        parts.append(_steps_table(report))
    parts += [Text(f"note: {note}", style="dim") for note in report.notes]
    return Group(*parts)


def _summary(report: PreflightReport) -> Group:
    reached = report.audience
    left_out = f" ({report.already_enrolled} already enrolled, left out)"
    lines = [Text(f"{reached} contacts reached{left_out if report.already_enrolled else ''}")]
    send = Text(f"✓ {report.to_send} would be sent", style="bold green")
    held = Text(f"✗ {report.held_total} would be held", style="bold red" if report.held else "dim")
    lines += [_bar(report), send, held]
    after = report.credits_available - report.credits_needed
    lines.append(
        Text(
            f"credits: {report.credits_needed} needed ({report.segments} segments), "
            f"{report.credits_available} available, {after} left after"
        )
    )
    if report.quiet_hours_deferred:
        lines.append(
            Text(
                f"quiet hours: {report.quiet_hours_deferred} wait for the recipient's sending "
                f"window (the last at {_when(report.latest_deferral)})",
                style="yellow",
            )
        )
    lines.append(Text(f"simulated step {report.step_id or '-'} at {_when(report.send_at)}"))
    return Group(*lines)


def _bar(report: PreflightReport, width: int = 40) -> Text:
    total = report.to_send + report.held_total
    if not total:
        return Text("nobody to text", style="dim")
    sent = round(width * report.to_send / total)
    bar = Text("█" * sent, style="green")
    bar.append("█" * (width - sent), style="red")
    bar.append(f" {100 * report.to_send / total:.0f}% sendable")
    return bar


def _held_table(report: PreflightReport) -> Table:
    table = Table("reason", "contacts", "what to do", title="Held, by reason", title_justify="left")
    for reason, count in report.held.items():
        table.add_row(Text(reason, style="red"), str(count), HOLD_FIXES.get(reason, ""))
    return table


def _country_table(report: PreflightReport) -> Table:
    table = Table(
        "country", "messages", "segments", "credits", title="By country", title_justify="left"
    )
    for line in report.by_country:
        table.add_row(line.region, str(line.messages), str(line.segments), str(line.credits))
    table.add_row(
        Text("total", style="bold"),
        str(report.to_send),
        str(report.segments),
        str(report.credits_needed),
    )
    return table


def _sample_table(report: PreflightReport) -> Table:
    table = Table(
        "contact",
        "phone (as stored)",
        "reason",
        "detail",
        title=f"Sample of held numbers ({len(report.sample_held)} of {report.held_total})",
        title_justify="left",
    )
    for sample in report.sample_held:
        table.add_row(str(sample.contact_id), sample.phone or "-", sample.reason, sample.detail)
    return table


def _steps_table(report: PreflightReport) -> Table:
    table = Table(
        "step",
        "sendable",
        "held (content checks)",
        "credits",
        title="Every SMS step",
        title_justify="left",
    )
    for step in report.steps:
        held = ", ".join(f"{reason} {count}" for reason, count in step.held.items()) or "-"
        table.add_row(step.step_id, str(step.sendable), held, str(step.credits))
    return table
