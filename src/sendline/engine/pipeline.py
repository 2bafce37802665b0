"""The send pipeline: every check of R1-R15 in one ordered list, each with its reason.

For a `send_sms` step and one contact: plan and add-on (R1) -> consent (R4) -> default
phone present and valid (R5-R8) -> template renders -> no public shortener (R10) ->
opt-out clause appended when missing (R11) -> length within the account's max segments
(R9) -> frequency cap (R15) -> credits reserved (R3) -> quiet hours (R14: scheduled for
the next window, not held). A message that fails a check is stored `held` with its
reason and a sentence for people: nothing is silently dropped, and a held message can
be released once its cause is fixed (`engine/held.py`, with these same checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from sendline.engine.facts import Recipient
from sendline.engine.frequency import recent_counts
from sendline.engine.zones import Zones, ringing_zones
from sendline.errors import InsufficientCredits
from sendline.rulebook import packaged_shorteners
from sendline.sms.check import MessageRules, check_message
from sendline.sms.links import ShortenerList
from sendline.sms.schedule import next_send_time
from sendline.sms.templates import Template, TemplateError
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.ids import allocate_ids
from sendline.store.models import Account
from sendline.store.rows import insert_rows
from sendline.store.sets import among

_MESSAGES = cast(Table, Message.__table__)

HOLD_REASONS = (
    "sms_not_in_plan",
    "sms_addon_required",
    "no_consent",
    "opted_out",
    "no_phone",
    "invalid_phone",
    "landline",
    "template_error",
    "empty",
    "public_shortener",
    "too_long",
    "frequency_cap",
    "insufficient_credits",
)

_PHONE_DETAIL = {
    "no_phone": "the contact's default phone field is empty (custom phone fields are never used)",
    "invalid_phone": "the default phone is not a valid number: outside the US it needs "
    "+country code (E.164); US numbers need the area code",
    "landline": "the default phone is a landline, which cannot receive SMS",
}


@dataclass(frozen=True, slots=True)
class Hold:
    reason: str
    detail: str


# A message that passed every check but the balance (R3), in a batch.
NO_CREDITS = Hold("insufficient_credits", "the account has no credits left for this message")


@dataclass(frozen=True, slots=True)
class Draft:
    """A message that passed the content checks: what would be sent, and its cost."""

    body: str
    encoding: str
    segments: int
    credits: int


@dataclass(frozen=True, slots=True)
class SmsRequest:
    template: str
    automation_id: int | None = None
    run_id: int | None = None
    step_id: str | None = None
    idempotency_key: str | None = None
    event: Mapping[str, Any] | None = None  # payload of a custom-event trigger
    transactional: bool = False  # skips quiet hours and the frequency cap (issue 12 #10)


class Pipeline:
    """The checks for one account, with what they need compiled once."""

    def __init__(self, account: Account, shorteners: ShortenerList | None = None) -> None:
        self.account = account
        self.rules = MessageRules(
            shorteners=shorteners or packaged_shorteners(),
            clause=account.optout_clause,
            max_segments=account.max_segments,
        )
        self._templates: dict[str, Template | TemplateError] = {}
        self._known_tags: frozenset[str] | None = None

    # -- pure checks ----------------------------------------------------------------

    def draft(
        self, contact: Recipient, template: str, event: Mapping[str, Any] | None = None
    ) -> Draft | Hold:
        """R1, R4, R5-R8, template, R10, R11, R9: everything that needs no counting."""
        refusal = self.account.sms_refusal()
        if refusal is not None:
            return Hold(refusal.code, refusal.message)
        if contact.sms_consent != "opted_in":
            reason = "opted_out" if contact.sms_consent == "opted_out" else "no_consent"
            return Hold(
                reason,
                "the contact has not opted in to SMS from this account"
                if reason == "no_consent"
                else "the contact opted out of SMS",
            )
        if contact.phone_status != "ok" or contact.phone_e164 is None:
            status = contact.phone_status if contact.phone_status != "ok" else "invalid_phone"
            return Hold(status, _PHONE_DETAIL.get(status, status))
        compiled = self._template(template)
        if isinstance(compiled, TemplateError):
            return Hold("template_error", str(compiled))
        body = compiled.render(_values(contact, event))
        result = check_message(body, self.rules, rendered=True)
        if result.violations:
            first = result.violations[0]
            return Hold(first.code, first.detail)
        rate = self.account.credit_cost(result.sent_segments, contact.phone_region)
        return Draft(result.sent_body, result.encoding.value, result.sent_segments, rate)

    def due_at(
        self, contact: Recipient, now: datetime, seen: dict[Zones, datetime] | None = None
    ) -> datetime:
        """R14: now if inside the contact's sending window, else the window's next start.

        `seen` caches the answer per set of zones for one `now`: a blast's numbers share
        a handful of zone sets, and the search costs more than the rest of the row."""
        zones = ringing_zones(contact.phone_e164, contact.time_zone)
        due = seen.get(zones) if seen is not None else None
        if due is None:
            due = next_send_time(now, zones, self.account.quiet_start, self.account.quiet_end)
            if seen is not None:
                seen[zones] = due
        return due

    def _template(self, source: str) -> Template | TemplateError:
        cached = self._templates.get(source)
        if cached is None:
            try:
                cached = Template.compile(source, self.known_tags)
            except TemplateError as exc:
                cached = exc
            self._templates[source] = cached
        return cached

    @property
    def known_tags(self) -> frozenset[str]:
        if self._known_tags is None:
            fields = self.account_fields()
            self._known_tags = frozenset({*fields, "EVENT.*"})
        return self._known_tags

    def account_fields(self) -> frozenset[str]:
        from sendline.store.models import CustomField  # noqa: PLC0415

        session = Session.object_session(self.account)
        if session is None:
            return frozenset()
        keys = session.scalars(
            select(CustomField.key).where(CustomField.account_id == self.account.id)
        )
        return frozenset(keys)

    # -- with the database ---------------------------------------------------------

    def queue(
        self, session: Session, contact: Recipient, request: SmsRequest, now: datetime
    ) -> Message:
        """Create the message for one contact: queued (credits reserved) or held."""
        if request.idempotency_key is not None:
            existing = session.scalar(
                select(Message).where(Message.idempotency_key == request.idempotency_key)
            )
            if existing is not None:
                return existing  # the step already ran: never a second message
        message = Message(
            account_id=self.account.id,
            contact_id=contact.id,
            automation_id=request.automation_id,
            run_id=request.run_id,
            step_id=request.step_id,
            kind="marketing",
            template=request.template,
            idempotency_key=request.idempotency_key,
            status="held",  # provisional: _settle decides before the row is written
            created_at=now,
            updated_at=now,
        )
        self._settle(session, message, contact, request.event, now)
        return message

    def _settle(
        self,
        session: Session,
        message: Message,
        contact: Recipient,
        event: Mapping[str, Any] | None,
        now: datetime,
    ) -> None:
        outcome = self.draft(contact, message.template or "", event)
        message.to_e164, message.region = contact.phone_e164, contact.phone_region
        if isinstance(outcome, Draft):
            message.body, message.encoding = outcome.body, outcome.encoding
            message.segments, message.credits = outcome.segments, outcome.credits
            # Counted before this message is in the session.
            outcome = self.capped(outcome, contact.id, recent_counts(session, [contact.id], now))
        session.add(message)
        if isinstance(outcome, Hold):
            hold(message, outcome, now)
            session.flush()
            return
        message.status, message.held_reason, message.detail = "queued", None, None
        session.flush()  # the message id is the reservation's reference
        try:
            reservation = Credits(session, self.account.id).reserve(
                message.credits, message_id=message.id
            )
        except InsufficientCredits as exc:
            hold(message, Hold("insufficient_credits", str(exc)), now)
            return
        message.reservation_id, message.credits_free = reservation.id, reservation.free
        message.due_at = self.due_at(contact, now)
        message.updated_at = now

    def queue_many(
        self,
        session: Session,
        items: Sequence[tuple[Recipient, SmsRequest]],
        now: datetime,
        before_insert: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> int:
        """`queue` for a batch, with set-based SQL: the blast and runner path.

        Same checks in the same order, same rows; one query for idempotency keys, one for
        the frequency counts, one multi-row insert, one credit lock for the batch.
        `before_insert` sees the finished rows last (the runner's worker claims those
        due now). Returns how many messages were created (steps that already ran create
        none).
        """
        keys = [r.idempotency_key for _, r in items if r.idempotency_key is not None]
        seen = set(
            session.scalars(
                select(Message.idempotency_key).where(among(session, Message.idempotency_key, keys))
            )
            if keys
            else ()
        )
        fresh = [
            (c, r) for c, r in items if r.idempotency_key not in seen or r.idempotency_key is None
        ]
        outcomes = [self.draft(c, r.template, r.event) for c, r in fresh]
        counts = recent_counts(
            session,
            [c.id for (c, _), o in zip(fresh, outcomes, strict=True) if isinstance(o, Draft)],
            now,
        )
        windows: dict[Zones, datetime] = {}
        rows = [
            self._row(contact, request, outcome, counts, now, windows)
            for (contact, request), outcome in zip(fresh, outcomes, strict=True)
        ]
        if not rows:
            return 0
        # Ids first: a batch's reservation names its message when it has one, and the
        # insert is a plain executemany.
        for row, message_id in zip(rows, allocate_ids(session, "messages", len(rows)), strict=True):
            row["id"] = message_id
        queued = [row for row in rows if row["status"] == "queued"]
        if queued:
            self._reserve_batch(session, queued, now)
        if before_insert is not None:
            before_insert(rows)
        insert_rows(session, _MESSAGES, rows)
        return len(rows)

    def _row(
        self,
        contact: Recipient,
        request: SmsRequest,
        outcome: Draft | Hold,
        counts: dict[int, int],
        now: datetime,
        windows: dict[Zones, datetime],
    ) -> dict[str, Any]:
        outcome = self.capped(outcome, contact.id, counts)
        # Every row carries every key: an executemany takes its columns from the first.
        row: dict[str, Any] = {
            "account_id": self.account.id,
            "contact_id": contact.id,
            "automation_id": request.automation_id,
            "run_id": request.run_id,
            "step_id": request.step_id,
            "kind": "marketing",
            "template": request.template,
            "idempotency_key": request.idempotency_key,
            "to_e164": contact.phone_e164,
            "region": contact.phone_region,
            "reservation_id": None,
            "credits_free": 0,
            "created_at": now,
            "updated_at": now,
        }
        if isinstance(outcome, Hold):
            row.update(status="held", held_reason=outcome.reason, detail=outcome.detail)
            row.update(body=None, encoding=None, segments=0, credits=0, due_at=None)
            return row
        row.update(status="queued", held_reason=None, detail=None)
        row.update(body=outcome.body, encoding=outcome.encoding, segments=outcome.segments)
        row.update(credits=outcome.credits, due_at=self.due_at(contact, now, windows))
        return row

    def capped(
        self, outcome: Draft | Hold, contact_id: int, counts: dict[int, int]
    ) -> Draft | Hold:
        """R15 for one of a batch: held if the contact is at the frequency cap, else
        counted in `counts` (recent messages by contact), so later items see it."""
        if not isinstance(outcome, Draft):
            return outcome
        if counts.get(contact_id, 0) >= self.account.frequency_cap:
            return _cap_hold(self.account.frequency_cap)
        counts[contact_id] = counts.get(contact_id, 0) + 1
        return outcome

    def _reserve_batch(self, session: Session, queued: list[dict[str, Any]], now: datetime) -> None:
        """Reserve the queued rows' credits, in order; those the balance cannot cover
        become held (R3) before they are written."""
        shares = Credits(session, self.account.id).reserve_many(
            [(row["id"], row["credits"]) for row in queued]
        )
        for row, share in zip(queued, shares, strict=True):
            if share is not None:
                row["reservation_id"], row["credits_free"] = share.reservation_id, share.free
                continue
            row.update(status="held", held_reason=NO_CREDITS.reason, due_at=None)
            row["detail"] = NO_CREDITS.detail
            row["updated_at"] = now


def _cap_hold(cap: int) -> Hold:
    return Hold(
        "frequency_cap",
        f"the contact already has {cap} messages in the last 24 hours (the account's "
        "frequency cap)",
    )


def hold(message: Message, why: Hold, now: datetime) -> None:
    """Store `message` as held for `why`: out of the queue, its reason kept for people."""
    message.status, message.held_reason, message.detail = "held", why.reason, why.detail
    message.due_at = None
    message.updated_at = now


def _values(contact: Recipient, event: Mapping[str, Any] | None) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        "FIRSTNAME": contact.first_name,
        "LASTNAME": contact.last_name,
        "EMAIL": contact.email,
        "PHONE": contact.phone,
    }
    for key, value in (contact.fields or {}).items():
        values[key.upper()] = None if value is None else str(value)
    for key, value in (event or {}).items():
        values[f"EVENT.{str(key).upper()}"] = None if value is None else str(value)
    return values
