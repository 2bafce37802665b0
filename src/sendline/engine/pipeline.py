"""The send pipeline: every check of R1-R15 in one ordered list, each with its reason.

For a `send_sms` step and one contact: plan and add-on (R1) -> consent (R4) -> default
phone present and valid (R5-R8) -> template renders -> no public shortener (R10) ->
opt-out clause appended when missing (R11) -> length within the account's max segments
(R9) -> frequency cap (R15) -> credits reserved (R3) -> quiet hours (R14: scheduled for
the next window, not held). A message that fails a check is stored `held` with its
reason and a sentence for people: nothing is silently dropped, and a held message can
be released once its cause is fixed (`engine/held.py`, with these same checks).

`Pipeline.check_batch` is that order, once: the blast (`queue_many`), a release and
preflight (with a dry-run reserver) all call it. A transactional message (order,
shipping) skips the cap and quiet hours; the account's clause policy may leave the
clause out for a contact who had it within 30 days (R11).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from sendline.engine.frequency import recent_clauses, recent_counts
from sendline.engine.recipients import Recipient
from sendline.engine.verdicts import NO_CREDITS, Checked, Draft, DryRun, Hold, Reserve
from sendline.engine.zones import Zones, ringing_zones
from sendline.shortener_files import packaged_shorteners
from sendline.sms.check import MessageCheck, MessageRules, check_message
from sendline.sms.links import ShortenerList
from sendline.sms.schedule import next_send_time
from sendline.sms.templates import Template, TemplateError
from sendline.store import activity
from sendline.store.batch_filter import among
from sendline.store.batch_writes import allocate_ids, insert_rows
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.models import Account

_MESSAGES = cast(Table, Message.__table__)
# What a check decides lives in engine/verdicts.py; named here too, where callers look.
__all__ = [
    "HOLD_REASONS",
    "NO_CREDITS",
    "Checked",
    "Draft",
    "DryRun",
    "Hold",
    "Pipeline",
    "SmsRequest",
    "hold",
]

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
        self,
        contact: Recipient,
        template: str,
        event: Mapping[str, Any] | None = None,
        *,
        clause: bool = True,
    ) -> Draft | Hold:
        """R1, R4, R5-R8, template, R10, R11, R9: everything that needs no counting.

        `clause=False`: the contact had the clause within 30 days and the account's
        policy is "every 30 days" (R11): it is not appended, and R9 counts without it."""
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
        if not clause and not result.opt_out_clause:
            return self._bare(body, result, contact.phone_region)
        if result.violations:
            first = result.violations[0]
            return Hold(first.code, first.detail)
        rate = self.account.credit_cost(result.sent_segments, contact.phone_region)
        return Draft(result.sent_body, result.encoding.value, result.sent_segments, rate)

    def _bare(self, body: str, result: MessageCheck, region: str | None) -> Draft | Hold:
        """The body as rendered, without the clause: its own length is what counts."""
        found = [v for v in result.violations if v.code != "too_long"]
        if found:
            return Hold(found[0].code, found[0].detail)
        if result.segments > self.rules.max_segments:
            return Hold(
                "too_long",
                f"the message is {result.characters} {result.encoding.value} characters "
                f"({result.segments} segments); the account allows "
                f"{self.rules.max_segments}",
            )
        rate = self.account.credit_cost(result.segments, region)
        return Draft(body, result.encoding.value, result.segments, rate, clause=False)

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

    def check_batch(
        self,
        session: Session,
        items: Sequence[tuple[Recipient, SmsRequest]],
        refs: Sequence[int],
        now: datetime,
        reserve: Reserve,
    ) -> list[Checked]:
        """The send checks for a batch, in their one order: draft (R1-R11) -> frequency
        cap (R15) -> credits reserved (R3) -> due time (R14). The blast, a release and
        preflight all call this; they differ only in `reserve` (the credits store's
        `reserve_many`, or a `DryRun` that writes nothing) and in what they write.

        `refs` name the items to `reserve` (message ids). Set-based: one query for the
        clause policy (only under "every 30 days"), one for the frequency counts, one
        reservation for the batch. Transactional items skip the cap and quiet hours."""
        given = self._clauses_given(session, items, now)
        draft = self.draft
        if given:
            drafts = [draft(c, r.template, r.event, clause=c.id not in given) for c, r in items]
        else:  # the default policy: every message gets the clause
            drafts = [draft(c, r.template, r.event) for c, r in items]
        verdicts = self._capped_batch(session, items, drafts, now)
        wanted = [
            (ref, v.credits) for ref, v in zip(refs, verdicts, strict=True) if isinstance(v, Draft)
        ]
        shares = iter(reserve(wanted) if wanted else ())
        windows: dict[Zones, datetime] = {}
        checked: list[Checked] = []
        due_at, add = self.due_at, checked.append
        for (contact, request), drafted, verdict in zip(items, drafts, verdicts, strict=True):
            kept = drafted if isinstance(drafted, Draft) else None
            if isinstance(verdict, Hold):
                add(Checked(verdict, kept))
                continue
            share = next(shares)
            if share is None:
                add(Checked(NO_CREDITS, kept))
                continue
            due = now if request.transactional else due_at(contact, now, windows)
            add(Checked(verdict, verdict, share, due))
        return checked

    def _capped_batch(
        self,
        session: Session,
        items: Sequence[tuple[Recipient, SmsRequest]],
        drafts: list[Draft | Hold],
        now: datetime,
    ) -> list[Draft | Hold]:
        """R15 for a batch, the counts read in one query; transactional items are
        neither capped nor counted (the cap is for marketing)."""
        counted = [
            c.id
            for (c, r), d in zip(items, drafts, strict=True)
            if isinstance(d, Draft) and not r.transactional
        ]
        counts = recent_counts(session, counted, now)
        return [
            d if r.transactional else self.capped(d, c.id, counts)
            for (c, r), d in zip(items, drafts, strict=True)
        ]

    def _clauses_given(
        self, session: Session, items: Sequence[tuple[Recipient, SmsRequest]], now: datetime
    ) -> set[int]:
        """R11 under the "every 30 days" policy: contacts whose last 30 days hold a
        message with the clause (none under the default policy, with no query). Within
        one batch a contact's messages all get it: more often is safe, never less."""
        if self.account.optout_clause_policy != "every_30_days":
            return set()
        return recent_clauses(session, [contact.id for contact, _ in items], now)

    def queue_many(
        self,
        session: Session,
        items: Sequence[tuple[Recipient, SmsRequest]],
        now: datetime,
        before_insert: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> int:
        """Create the messages of a batch (queued with credits reserved, or held with
        their reason), with set-based SQL: the blast, runner and test path.

        One query for idempotency keys, `check_batch`'s queries and one credit lock, one
        multi-row insert. `before_insert` sees the finished rows last (the runner's
        worker claims those due now). Returns how many messages were created (steps that
        already ran create none).
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
        if not fresh:
            return 0
        # Ids first: a batch's reservation names its message when it has one, and the
        # insert is a plain executemany.
        ids = allocate_ids(session, "messages", len(fresh))
        reserve = Credits(session, self.account.id).reserve_many
        checked = self.check_batch(session, fresh, ids, now, reserve)
        rows = [
            self._row(message_id, contact, request, outcome, now)
            for message_id, (contact, request), outcome in zip(ids, fresh, checked, strict=True)
        ]
        if before_insert is not None:
            before_insert(rows)
        insert_rows(session, _MESSAGES, rows)
        activity.created(session, rows, now)
        return len(rows)

    def _row(
        self,
        message_id: int,
        contact: Recipient,
        request: SmsRequest,
        checked: Checked,
        now: datetime,
    ) -> dict[str, Any]:
        # Every row carries every key: an executemany takes its columns from the first.
        row = checked.columns()
        row.update(
            {
                "id": message_id,
                "account_id": self.account.id,
                "contact_id": contact.id,
                "automation_id": request.automation_id,
                "run_id": request.run_id,
                "step_id": request.step_id,
                "kind": "marketing",
                "template": request.template,
                "event": request.event,
                "transactional": request.transactional,
                "idempotency_key": request.idempotency_key,
                "to_e164": contact.phone_e164,
                "region": contact.phone_region,
                "created_at": now,
                "updated_at": now,
            }
        )
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
