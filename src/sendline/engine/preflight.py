"""Pre-flight: what an automation would do to the contacts it reaches, before it does it.

For every contact the automation would reach now (its bulk segment, the list's members,
the tag's holders, or every contact for other triggers), the first `send_sms` step goes
through the send pipeline's own checks in their one order (`Pipeline.check_batch`: plan,
consent, phone, template, shortener, clause, length, frequency cap, credits, quiet hours)
as the runner would queue them, with a `DryRun` reserver that counts the credits against
the balance. Nothing is written: it answers
"how many would be sent, how many held and why, what it costs per country, how many wait
for quiet hours to end, and which numbers to fix" while there is still time to fix them.
Later SMS steps get the content checks only (who reaches them depends on waits/branches).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, false, func, select
from sqlalchemy.orm import Session

from sendline.engine.automations import Automations
from sendline.engine.conditions import both, segment_query
from sendline.engine.definitions import (
    AutomationDefinition,
    BulkTrigger,
    Condition,
    ListCondition,
    ListSubscribedTrigger,
    SendSmsStep,
    TagAddedTrigger,
    TagCondition,
    WaitStep,
)
from sendline.engine.pipeline import HOLD_REASONS, Draft, DryRun, Hold, Pipeline, SmsRequest
from sendline.sms.links import ShortenerList
from sendline.store.credits import Credits
from sendline.store.engine_models import AutomationRun
from sendline.store.models import Contact

SAMPLE_SIZE = 10
_CHUNK = 1000


@dataclass
class CountryLine:
    region: str
    messages: int = 0
    segments: int = 0
    credits: int = 0


@dataclass(frozen=True)
class HeldSample:
    contact_id: int
    phone: str | None  # as stored (R6): what the user must fix
    reason: str
    detail: str


@dataclass
class StepForecast:
    """One send_sms step's content checks over the whole audience."""

    step_id: str
    sendable: int = 0
    held: dict[str, int] = field(default_factory=dict)
    segments: int = 0
    credits: int = 0


@dataclass
class PreflightReport:
    automation_id: int
    name: str
    status: str
    version: int
    trigger: str
    step_id: str | None  # the first send_sms step, the one simulated in full
    send_at: datetime  # when that step would run (now + the duration waits before it)
    audience: int = 0
    already_enrolled: int = 0
    to_send: int = 0
    held: dict[str, int] = field(default_factory=dict)
    by_country: list[CountryLine] = field(default_factory=list)
    segments: int = 0
    credits_needed: int = 0
    credits_available: int = 0
    quiet_hours_deferred: int = 0
    latest_deferral: datetime | None = None
    sample_held: list[HeldSample] = field(default_factory=list)
    steps: list[StepForecast] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def held_total(self) -> int:
        return sum(self.held.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["held_total"] = self.held_total
        data["send_at"] = self.send_at.isoformat()
        data["latest_deferral"] = self.latest_deferral.isoformat() if self.latest_deferral else None
        return data


def preflight(
    session: Session,
    account_id: int,
    automation_ref: str | int,
    *,
    segment: Condition | None = None,
    now: datetime,
    shorteners: ShortenerList | None = None,
) -> PreflightReport:
    """Simulate the automation over its audience; reads only."""
    automations = Automations(session, account_id, shorteners=shorteners)
    automations.check_segment(segment)
    automation = automations.resolve(automation_ref)
    version = automations.version(automation)
    definition = automations.definition(automation)
    # The first text on the main path is simulated in full (everyone reaches it); texts
    # inside branches get the content checks (who takes a branch depends on the contact).
    main = [s for s in definition.steps if isinstance(s, SendSmsStep)]
    sms = main + [s for s in definition.all_steps() if isinstance(s, SendSmsStep) and s not in main]
    offset, notes = _delay_before_first_sms(definition)
    if sms and not main:
        notes.append(
            "every text is inside a branch: the full forecast assumes every contact takes "
            f"the branch of {sms[0].id}"
        )
    report = PreflightReport(
        automation_id=automation.id,
        name=automation.name,
        status=automation.status,
        version=version.number,
        trigger=definition.trigger.type,
        step_id=sms[0].id if sms else None,
        send_at=now + offset,
        notes=notes,
        steps=[StepForecast(s.id or "") for s in sms],
    )
    report.credits_available = Credits(session, account_id).balance().available
    audience = _audience(session, account_id, automation.id, definition, segment)
    report.already_enrolled = _count(session, audience[1])
    pipeline = Pipeline(automations.account(), shorteners)
    urgent = definition.transactional  # issue 12 #10: no quiet hours, no cap
    simulation = _Simulation(session, pipeline, report, sms, now, urgent)
    for chunk in _chunks(session, audience[0]):
        simulation.add(chunk)
    simulation.finish()
    if not sms:
        report.notes.append("the automation has no send_sms step: nothing would be sent")
    if urgent:
        report.notes.append("transactional: no quiet hours, no frequency cap (consent still)")
    return report


class _Simulation:
    """The running totals while the audience is walked a chunk at a time."""

    def __init__(
        self,
        session: Session,
        pipeline: Pipeline,
        report: PreflightReport,
        steps: list[SendSmsStep],
        now: datetime,
        urgent: bool = False,
    ) -> None:
        self.session, self.pipeline, self.report, self.steps = session, pipeline, report, steps
        self.now = now
        # Counted against the balance as the runner would reserve, without writing.
        self.dry = DryRun(report.credits_available)
        self.seen = 0  # contacts walked so far: each one's reference for the dry run
        self.urgent = urgent  # a transactional automation: no quiet hours, no cap
        self.held: Counter[str] = Counter()
        self.countries: dict[str, CountryLine] = {}
        self.samples: dict[str, list[HeldSample]] = defaultdict(list)
        # The caller's own contacts stay in its session; the ones loaded here are let go.
        self.callers = {id(obj) for obj in session.identity_map.values()}

    def add(self, contacts: list[Contact]) -> None:
        self.report.audience += len(contacts)
        if self.steps:
            self._first_step(contacts)
        for contact in contacts:
            for step, forecast in zip(self.steps, self.report.steps, strict=True):
                _forecast(forecast, self.pipeline.draft(contact, step.body))
            if id(contact) not in self.callers:
                self.session.expunge(contact)  # memory stays flat over 100,000 contacts

    def _first_step(self, contacts: list[Contact]) -> None:
        """The first SMS step through the pipeline's own checks, as the runner would
        queue it at `send_at`, with a dry-run reserver: counted, nothing written."""
        report, request = self.report, SmsRequest(self.steps[0].body, transactional=self.urgent)
        refs = range(self.seen, self.seen + len(contacts))
        self.seen += len(contacts)
        items = [(contact, request) for contact in contacts]
        checked = self.pipeline.check_batch(self.session, items, refs, report.send_at, self.dry)
        for ref, contact, outcome in zip(refs, contacts, checked, strict=True):
            verdict = outcome.verdict
            if isinstance(verdict, Hold):
                self._hold(contact, verdict.reason, self.dry.short.get(ref, verdict.detail))
                continue
            report.to_send += 1
            report.segments += verdict.segments
            report.credits_needed += verdict.credits
            region = contact.phone_region or "unknown"
            line = self.countries.setdefault(region, CountryLine(region))
            line.messages += 1
            line.segments += verdict.segments
            line.credits += verdict.credits
            due = outcome.due_at or report.send_at
            if due > report.send_at:
                report.quiet_hours_deferred += 1
                report.latest_deferral = max(due, report.latest_deferral or due)

    def _hold(self, contact: Contact, reason: str, detail: str) -> None:
        self.held[reason] += 1
        if len(self.samples[reason]) < SAMPLE_SIZE:
            self.samples[reason].append(HeldSample(contact.id, contact.phone, reason, detail))

    def finish(self) -> None:
        order = {reason: i for i, reason in enumerate(HOLD_REASONS)}
        ranked = sorted(self.held, key=lambda r: order.get(r, len(order)))
        self.report.held = {reason: self.held[reason] for reason in ranked}
        self.report.by_country = sorted(
            self.countries.values(), key=lambda line: (-line.credits, line.region)
        )
        self.report.sample_held = _round_robin([self.samples[r] for r in ranked], SAMPLE_SIZE)
        for forecast in self.report.steps:
            forecast.held = dict(sorted(forecast.held.items(), key=lambda i: order.get(i[0], 99)))


def _forecast(forecast: StepForecast, outcome: Any) -> None:
    if isinstance(outcome, Draft):
        forecast.sendable += 1
        forecast.segments += outcome.segments
        forecast.credits += outcome.credits
    else:
        forecast.held[outcome.reason] = forecast.held.get(outcome.reason, 0) + 1


def _round_robin(groups: list[list[HeldSample]], size: int) -> list[HeldSample]:
    """Up to `size` samples, taking one of each reason in turn: every reason shows."""
    picked: list[HeldSample] = []
    for index in range(size):
        for group in groups:
            if index < len(group) and len(picked) < size:
                picked.append(group[index])
    return picked


def _audience(
    session: Session,
    account_id: int,
    automation_id: int,
    definition: AutomationDefinition,
    segment: Condition | None,
) -> tuple[Any, Any]:
    """(contacts it would reach, contacts left out because re-entry "once" saw them)."""
    trigger = definition.trigger
    base: Condition | None = None
    if isinstance(trigger, BulkTrigger):
        base = trigger.segment
    elif isinstance(trigger, ListSubscribedTrigger):
        base = ListCondition(list=trigger.list)
    elif isinstance(trigger, TagAddedTrigger):
        base = TagCondition(tag=trigger.tag)
    everyone = segment_query(session, account_id, both(base, segment))
    if definition.reentry != "once" or trigger.type == "date":
        return everyone, everyone.where(false())
    enrolled = exists().where(
        AutomationRun.automation_id == automation_id, AutomationRun.contact_id == Contact.id
    )
    return everyone.where(~enrolled), everyone.where(enrolled)


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _chunks(session: Session, query: Any) -> Iterator[list[Contact]]:
    last = 0
    while True:
        ids = list(
            session.scalars(query.where(Contact.id > last).order_by(Contact.id).limit(_CHUNK))
        )
        if not ids:
            return
        yield list(session.scalars(select(Contact).where(Contact.id.in_(ids)).order_by(Contact.id)))
        last = ids[-1]


def _delay_before_first_sms(definition: AutomationDefinition) -> tuple[timedelta, list[str]]:
    delay, notes = timedelta(0), []
    for step in definition.steps:
        if isinstance(step, SendSmsStep):
            break
        if isinstance(step, WaitStep) and step.duration is not None:
            delay += step.delay()
        elif isinstance(step, WaitStep):
            notes.append(
                f"step {step.id} waits until {step.until_time} in each contact's zone: quiet "
                "hours are estimated for the earlier time"
            )
        elif step.type in ("if_else", "goal", "exit"):
            notes.append(
                f"step {step.id} ({step.type}) comes before the first SMS: the forecast "
                "assumes every contact reaches it"
            )
    return delay, notes
