"""CSV import, the database side: upsert one batch of classified rows.

Per batch: one query finds existing contacts by email and by E.164; each row becomes an
insert, an update, nothing (unchanged) or a reject; inserts, updates, consent events,
tags and list memberships are then written in bulk (binary COPY on PostgreSQL,
executemany on SQLite) on the session's connection, inside its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.engine import triggers
from sendline.importing.existing import RAW, IdSet, Old, merged, phone_key_of
from sendline.importing.rows import Candidate, Reject
from sendline.store import activity
from sendline.store.batch_writes import CopyColumn, DriverWriter
from sendline.store.consent import _latest_first, refresh_statuses
from sendline.store.contacts import Contacts
from sendline.store.models import ConsentEvent

# R6/R8: a phone no one can text is stored as submitted and flagged; the contact keeps
# its email and consent, and the pipeline holds its messages with this status as reason.
FLAGGED = frozenset({"invalid_phone", "landline"})
_FLAG_REASONS = {
    "invalid_phone": "stored; the phone is not a valid number, its messages will be held",
    "landline": "stored; the phone is a landline, its messages will be held",
}
_STATUS = {True: "opted_in", False: "opted_out"}
_PHONE = ("phone", "phone_e164", "phone_status", "phone_region", "time_zone")
_EDITABLE = ("email", "first_name", "last_name", *_PHONE, "fields")
_UPDATE = f"UPDATE contacts SET {', '.join(f'{c} = %s' for c in _EDITABLE)}, updated_at = %s "
_UPDATE += "WHERE id = %s"
# (column, PostgreSQL type) for binary COPY; text for the varchar columns too.
_INSERT: tuple[CopyColumn, ...] = (
    ("id", "int4"),
    ("account_id", "int4"),
    *((name, "text") for name in _EDITABLE[:-1]),
    ("fields", "jsonb"),
    ("sms_consent", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
_EVENT: tuple[CopyColumn, ...] = (
    ("account_id", "int4"),
    ("contact_id", "int4"),
    ("kind", "text"),
    ("method", "text"),
    ("source", "text"),
    ("disclosure", "text"),
    ("occurred_at", "timestamptz"),
    ("recorded_at", "timestamptz"),
)
_TAG: tuple[CopyColumn, ...] = (("contact_id", "int4"), ("tag", "text"))
_MEMBER: tuple[CopyColumn, ...] = (
    ("list_id", "int4"),
    ("contact_id", "int4"),
    ("subscribed_at", "timestamptz"),
)


_COLUMNS = f"id, {', '.join(_EDITABLE)}, sms_consent"


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    consent_events: int = 0
    runs_started: int = 0  # automations the batch's new tags and lists enrolled into
    rejects: list[Reject] = field(default_factory=list)
    flagged: list[Reject] = field(default_factory=list)  # stored, with a phone held


@dataclass
class _Extras:
    """What an existing contact already has besides its columns."""

    tags: set[str] = field(default_factory=set)
    list_ids: set[int] = field(default_factory=set)
    keyword_opt_out: bool = False


@dataclass
class _Plan:
    inserts: list[Candidate] = field(default_factory=list)
    updates: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Candidate, int]] = field(default_factory=list)
    refresh: list[int] = field(default_factory=list)  # existing contacts given an event
    tags: set[tuple[int, str]] = field(default_factory=set)
    members: set[tuple[int, int]] = field(default_factory=set)


class BatchWriter:
    def __init__(
        self,
        session: Session,
        account_id: int,
        *,
        has_consent: bool,
        disclosure: str | None,
        source: str,
    ) -> None:
        self._session = session
        self._writer = DriverWriter(session)
        self._account_id = account_id
        self._disclosure = disclosure if has_consent else None
        self._source = source[:200]
        self._written = IdSet()
        self._lists: dict[str, int] = {}

    def close(self) -> None:
        self._writer.close()

    def write(self, candidates: list[Candidate]) -> BatchResult:
        result = BatchResult()
        now = datetime.now(UTC)
        plan = self._plan(candidates, result, now)
        self._execute(plan, result, now)
        return result

    # -- deciding ----------------------------------------------------------------

    def _plan(self, candidates: list[Candidate], result: BatchResult, now: datetime) -> _Plan:
        by_email, by_phone = self._existing(
            [c.email for c in candidates if c.email],
            [c.e164 for c in candidates if c.e164],
            [c.phone for c in candidates if c.phone and not (c.email or c.e164)],
        )
        extras = self._extras({**by_email, **by_phone}.values(), candidates)
        seen: dict[str, int] = {}
        plan = _Plan()
        for c in candidates:
            phone_key = phone_key_of(c)
            earlier = (c.email and seen.get(c.email)) or (phone_key and seen.get(phone_key))
            if earlier:
                reason = f"same email or phone as line {earlier}"
                result.rejects.append(_reject(c, "duplicate_in_file", reason))
                continue
            usable, old = self._match(c, phone_key, by_email, by_phone, result)
            if not usable:
                continue
            if c.email:
                seen[c.email] = c.line
            if phone_key:
                seen[phone_key] = c.line
            if c.status in FLAGGED:
                result.flagged.append(_reject(c, c.status, _FLAG_REASONS[c.status]))
            if old is None:
                plan.inserts.append(c)
                result.created += 1
            else:
                self._written.add(old.id)
                self._plan_update(c, old, extras.get(old.id), plan, result, now)
        return plan

    def _match(
        self,
        c: Candidate,
        phone_key: str | None,
        by_email: dict[str, Old],
        by_phone: dict[str, Old],
        result: BatchResult,
    ) -> tuple[bool, Old | None]:
        """(usable, the existing contact the row updates or None for a new one)."""
        old_email = by_email.get(c.email) if c.email else None
        old_phone = by_phone.get(phone_key) if phone_key else None
        if old_email is not None and old_phone is not None and old_email.id != old_phone.id:
            reason = f"email is contact {old_email.id}'s, phone is contact {old_phone.id}'s"
            result.rejects.append(_reject(c, "conflict", reason))
            return False, None
        old = old_email if old_email is not None else old_phone
        if old is not None and old.id in self._written:
            reason = "same email or phone as an earlier row"
            result.rejects.append(_reject(c, "duplicate_in_file", reason))
            return False, None
        return True, old

    def _plan_update(
        self,
        c: Candidate,
        old: Old,
        extras: _Extras | None,
        plan: _Plan,
        result: BatchResult,
        now: datetime,
    ) -> None:
        values = merged(c, old)
        consent = self._consent_change(c, old.sms_consent, extras)
        if consent is None:
            reason = "the contact opted out by text message; an import cannot opt them back in"
            result.rejects.append(_reject(c, "opted_out_by_contact", reason))
            return
        added = self._add_tags(c, old.id, extras or _Extras(), plan)
        if values is not None:
            fields = self._writer.json(values[-1])
            plan.updates.append((*values[:-1], fields, self._writer.timestamp(now), old.id))
        if consent:
            plan.events.append((c, old.id))
            plan.refresh.append(old.id)
        if values is not None or consent or added:
            result.updated += 1
        else:
            result.unchanged += 1

    def _consent_change(self, c: Candidate, status: str, extras: _Extras | None) -> bool | None:
        """Whether the row changes the consent status; None when it may not."""
        if self._disclosure is None or c.consent is None or _STATUS[c.consent] == status:
            return False
        if c.consent and extras is not None and extras.keyword_opt_out:
            return None
        return True

    def _add_tags(self, c: Candidate, contact_id: int, extras: _Extras, plan: _Plan) -> bool:
        """Plan the tags and list memberships the contact lacks; True if there are any."""
        if not c.tags and not c.lists:
            return False
        tags = {(contact_id, t) for t in c.tags or () if t not in extras.tags}
        lists = {self._list_id(n) for n in c.lists or ()} - extras.list_ids
        plan.tags |= tags
        plan.members |= {(list_id, contact_id) for list_id in lists}
        return bool(tags or lists)

    # -- reading what exists -----------------------------------------------------

    def _existing(
        self, emails: list[str], phones: list[str], raws: list[str]
    ) -> tuple[dict[str, Old], dict[str, Old]]:
        """Existing contacts (locked) by email and by phone key (`phone_key_of`)."""
        by_email: dict[str, Old] = {}
        by_phone: dict[str, Old] = {}
        load = self._writer.load_json
        keyed = [("email", emails), ("phone_e164", phones)]
        rows = self._writer.select_keyed_many(
            _COLUMNS, "contacts", "account_id = %s", [self._account_id], keyed, lock=True
        )
        if raws:  # rare (phone-only rows no one can text): a second, partial-index query
            where = "account_id = %s AND phone_e164 IS NULL"
            found = self._writer.select_keyed_many(
                _COLUMNS, "contacts", where, [self._account_id], [("phone", raws)], lock=True
            )
            rows += [(2, *row[1:]) for row in found]
        for row in rows:
            old = Old._make([*row[1:-2], load(row[-2]), row[-1]])
            if row[0] == 0 and old.email is not None:
                by_email[old.email] = old
            elif row[0] == 1 and old.phone_e164 is not None:
                by_phone[old.phone_e164] = old
            elif row[0] == 2 and old.phone is not None:
                by_phone[RAW + old.phone] = old
        return by_email, by_phone

    def _extras(self, rows: Any, candidates: list[Candidate]) -> dict[int, _Extras]:
        """Tags, lists and keyword opt-outs of existing contacts, when the file needs them."""
        olds: list[Old] = list(rows)
        wants_tags = any(c.tags or c.lists for c in candidates)
        if not olds or not (wants_tags or self._disclosure is not None):
            return {}
        extras = {old.id: _Extras() for old in olds}
        ids = sorted(extras)
        if wants_tags:
            select = self._writer.select_keyed
            for cid, tag in select(
                "contact_id, tag", "contact_tags", "1 = 1", [], "contact_id", ids
            ):
                extras[cid].tags.add(tag)
            members = select("contact_id, list_id", "list_members", "1 = 1", [], "contact_id", ids)
            for cid, list_id in members:
                extras[cid].list_ids.add(list_id)
        if self._disclosure is not None:
            for old in olds:
                if old.sms_consent == "opted_out":
                    extras[old.id].keyword_opt_out = self._latest_method(old.id) == "keyword"
        return extras

    def _latest_method(self, contact_id: int) -> str | None:
        query = select(ConsentEvent.method).where(
            ConsentEvent.account_id == self._account_id, ConsentEvent.contact_id == contact_id
        )
        return self._session.scalar(query.order_by(*_latest_first()).limit(1))

    def _list_id(self, name: str) -> int:
        found = self._lists.get(name)
        if found is None:
            found = self._lists[name] = Contacts(self._session, self._account_id).list_id(name)
        return found

    # -- writing -----------------------------------------------------------------

    def _execute(self, plan: _Plan, result: BatchResult, now: datetime) -> None:
        writer = self._writer
        stamp = writer.timestamp(now)
        ids: list[int] = []
        if plan.inserts:
            ids = writer.next_ids("contacts", len(plan.inserts))
            rows = [
                self._new_row(c, new_id, stamp) for c, new_id in zip(plan.inserts, ids, strict=True)
            ]
            writer.insert("contacts", _INSERT, rows)
            for c, new_id in zip(plan.inserts, ids, strict=True):
                self._written.add(new_id)
                if self._disclosure is not None and c.consent is not None:
                    plan.events.append((c, new_id))
                self._add_tags(c, new_id, _Extras(), plan)
        if plan.updates:
            writer.execute_many(_UPDATE, plan.updates)
        if plan.events:
            writer.insert("consent_events", _EVENT, self._events(plan.events, stamp))
            result.consent_events += len(plan.events)
            # Each event is the contact's latest (occurred now): its status is the event's.
            changed = [(cid, _STATUS[bool(c.consent)]) for c, cid in plan.events]
            activity.consent_changed(
                self._session, self._account_id, changed, "import", self._source, now
            )
        # New contacts were inserted with the status their one event gives; existing ones
        # are recomputed from all their events, exactly as Consent.record does.
        refresh_statuses(self._session, self._account_id, plan.refresh)
        if plan.tags:
            writer.insert("contact_tags", _TAG, sorted(plan.tags))
        if plan.members:
            members = [(lid, cid, stamp) for lid, cid in sorted(plan.members)]
            writer.insert("list_members", _MEMBER, members)
        if plan.tags or plan.members:
            result.runs_started += self._fire_triggers(plan, set(ids), now)

    def _fire_triggers(self, plan: _Plan, new_ids: set[int], now: datetime) -> int:
        """What `Actions.add_tag` and `subscribe` do per contact, once for the batch: the
        tag and list triggers enroll (one query, one insert each), and the updated
        contacts' sleeping runs wake (their goals may now hold). Only what the batch
        really added counts, so a re-run of the file starts nothing."""
        names = {list_id: name for name, list_id in self._lists.items()}
        members = sorted((cid, names[lid]) for lid, cid in plan.members)
        session, account = self._session, self._account_id
        runs = triggers.on_added_many(session, account, "tag_added", sorted(plan.tags), now=now)
        runs += triggers.on_added_many(session, account, "list_subscribed", members, now=now)
        woken = {cid for cid, _ in plan.tags} | {cid for _, cid in plan.members}
        triggers.wake_many(session, sorted(woken - new_ids), now=now)
        return runs

    def _new_row(self, c: Candidate, new_id: int, stamp: Any) -> tuple[Any, ...]:
        status = "none"
        if self._disclosure is not None and c.consent is not None:
            status = _STATUS[c.consent]
        fields = self._writer.json_cell(c.fields or {})
        return (
            new_id,
            self._account_id,
            c.email,
            c.first_name,
            c.last_name,
            c.phone,
            c.e164,
            c.status,
            c.region,
            c.time_zone,
            fields,
            status,
            stamp,
            stamp,
        )

    def _events(self, events: list[tuple[Candidate, int]], stamp: Any) -> list[tuple[Any, ...]]:
        account, source, disclosure = self._account_id, self._source, self._disclosure
        return [
            (account, cid, "opt_in" if c.consent else "opt_out", "import", source, disclosure)
            + (stamp, stamp)
            for c, cid in events
        ]


def _reject(c: Candidate, code: str, reason: str) -> Reject:
    return Reject(c.line, code, reason, c.cells)
