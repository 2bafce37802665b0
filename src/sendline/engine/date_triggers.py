"""Date triggers: contacts whose date field (a birthday, a renewal) comes round.

The worker scans every few minutes. A contact fires within 24 hours of its moment in its
own zone, so a scan that was down for a while catches up; the run's enrollment key
carries the day, so every date (and every anniversary) enrolls once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from sendline.engine.automations import load_definition
from sendline.engine.definitions import DateTrigger
from sendline.engine.triggers import insert_runs, run_row
from sendline.engine.zones import local_zone
from sendline.store.engine_models import Automation, AutomationVersion
from sendline.store.models import Contact


def scan_date_triggers(session: Session, *, now: datetime) -> int:
    """Enroll contacts whose date (or anniversary) is today, once the local time has come.

    Meant to run every few minutes; a contact fires within 24 hours of its moment, so a
    scan that was down for a while catches up, and the dated key keeps it to once.
    """
    rows = session.execute(
        select(Automation, AutomationVersion.definition)
        .join(AutomationVersion, AutomationVersion.id == Automation.current_version_id)
        .where(Automation.status == "active", Automation.trigger_type == "date")
    )
    created = 0
    for automation, data in rows.all():
        definition = load_definition(data)
        assert isinstance(definition.trigger, DateTrigger)
        runs = [
            run_row(automation, definition, contact_id, now=now, depth=0, day=day)
            for contact_id, day in _due_dates(session, automation, definition.trigger, now)
        ]
        created += insert_runs(session, runs)
    return created


def _due_dates(
    session: Session, automation: Automation, trigger: DateTrigger, now: datetime
) -> list[tuple[int, date]]:
    # Any zone's local date is within a day of UTC's; the SQL prefilter keeps only
    # contacts whose date could be due, the exact check happens in the contact's zone.
    utc_day = now.astimezone(UTC).date()
    days = [utc_day + timedelta(days=d - trigger.offset_days) for d in (-2, -1, 0, 1)]
    value = Contact.fields[trigger.field.strip().upper()].as_string()
    if trigger.every_year:
        month_days = {d.strftime("%m-%d") for d in days} | (
            {"02-29"} if any(d.month == 2 and d.day == 28 for d in days) else set()
        )
        matches = and_(value.like("____-__-__"), func.substr(value, 6, 5).in_(sorted(month_days)))
    else:
        matches = value.in_([d.isoformat() for d in days])
    candidates = session.execute(
        select(Contact.id, value, Contact.time_zone).where(
            Contact.account_id == automation.account_id, matches
        )
    )
    due = []
    for contact_id, raw, zone_name in candidates:
        day = _occurrence(raw, trigger, now, local_zone(zone_name))
        if day is not None:
            due.append((int(contact_id), day))
    return due


def _occurrence(raw: Any, trigger: DateTrigger, now: datetime, zone: ZoneInfo) -> date | None:
    """The local day the trigger fires for this date value, if `now` is in its 24 hours."""
    try:
        value = date.fromisoformat(str(raw))
    except ValueError:
        return None
    local = now.astimezone(zone)
    hour, minute = (int(p) for p in trigger.at.split(":"))
    day = local.date() if local.time() >= time(hour, minute) else local.date() - timedelta(1)
    event_day = day - timedelta(days=trigger.offset_days)
    if trigger.every_year:
        return day if _anniversary(value, event_day.year) == event_day else None
    return day if value == event_day else None


def _anniversary(value: date, year: int) -> date:
    try:
        return value.replace(year=year)
    except ValueError:  # 29 February in a common year: celebrated on the 28th
        return date(year, 2, 28)
