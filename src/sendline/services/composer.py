"""The composer: a draft message checked for an account as the user types it.

One source of truth: the counting, the links, the clause and the tags are the rule
core's (`sms/check.py check_message`), with the account's rules as the send pipeline
builds them (`engine.pipeline.Pipeline`: its clause and segment limit), and the tags the
account's own fields. A preview for a contact renders the draft for that contact the way
the pipeline will, and says whether the pipeline would send or hold it today.

Called on every keystroke (debounced): one short read transaction, a handful of queries.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.pipeline import Draft, Pipeline, _values
from sendline.errors import InvalidInput, NotFound
from sendline.services import resolve_account
from sendline.sms.check import MAX_SEGMENTS_LIMIT, Finding, MessageCheck, check_message
from sendline.sms.encoding import split_graphemes
from sendline.sms.links import ShortenerList
from sendline.sms.lookalikes import gsm_suggestion
from sendline.sms.templates import STANDARD_TAGS, Template, TemplateError
from sendline.store.ids import is_id
from sendline.store.models import Account, Contact, CustomField

# A draft longer than any message may be (10 UCS-2 segments are 670 characters) is
# refused before counting: a pasted novel must not cost a worker seconds per keystroke.
MAX_DRAFT = 5_000
_STANDARD_LABELS = {
    "FIRSTNAME": "First name",
    "LASTNAME": "Last name",
    "EMAIL": "Email",
    "PHONE": "Phone",
}


@dataclass(frozen=True)
class TagOption:
    tag: str  # as written in a message: %FIRSTNAME%
    label: str


@dataclass(frozen=True)
class Ucs2Char:
    """A character that forces UCS-2, and the GSM-7 text that reads the same (if any)."""

    char: str
    name: str
    replacement: str | None


@dataclass(frozen=True)
class Problem:
    """A finding of the rule core, for the field it is about."""

    code: str
    message: str
    field: str = "body"
    link: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class ContactPreview:
    contact_id: int
    name: str
    text: str  # personalized, opt-out clause included: what the phone shows
    encoding: str
    segments: int
    credits: int
    held_reason: str | None = None  # why the pipeline would hold it for this contact today
    held_detail: str | None = None


@dataclass(frozen=True)
class DraftCheck:
    body: str
    characters: int
    encoding: str
    segments: int
    final_text: str  # as sent: the opt-out clause appended when missing
    final_characters: int
    final_segments: int
    clause_appended: bool
    max_segments: int
    credits_per_recipient: int  # at the account's default rate
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    ucs2: tuple[Ucs2Char, ...]
    highlighted: tuple[tuple[str, bool], ...]  # runs of the body, True where UCS-2
    tags: tuple[TagOption, ...]
    preview: ContactPreview | None = None
    # Other countries' credits per segment (R3), when the account has any.
    other_rates: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def shortener_errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.errors if p.code == "public_shortener")


@dataclass(frozen=True)
class ContactChoice:
    id: int
    name: str


def check_draft(
    sessions: sessionmaker[Session],
    account_id: int,
    body: str,
    shorteners: ShortenerList,
    *,
    contact_id: int | None = None,
    event_tags: bool = False,
) -> DraftCheck:
    """Count and check `body` for the account; with `contact_id`, its preview.

    `event_tags`: the draft is an automation step an event starts, so `%EVENT.x%` tags
    are allowed (as the automation's own check allows them)."""
    body = _clean(body)
    with sessions.begin() as session:
        account = resolve_account(session, account_id)
        pipeline = Pipeline(account, shorteners)
        fields = _fields(session, account.id)
        known = frozenset({*fields, *(("EVENT.*",) if event_tags else ())})
        rules = dataclasses.replace(pipeline.rules, known_tags=known)
        result = check_message(body, rules)
        preview = None
        if contact_id is not None:
            contact = _contact(session, account.id, contact_id)
            preview = _preview(pipeline, account, contact, body, known)
        return DraftCheck(
            body=body,
            characters=result.characters,
            encoding=result.encoding.value,
            segments=result.segments,
            final_text=result.sent_body,
            final_characters=result.sent_characters,
            final_segments=result.sent_segments,
            clause_appended=not result.opt_out_clause,
            max_segments=rules.max_segments,
            credits_per_recipient=account.credit_cost(result.sent_segments, None),
            errors=tuple(_problem(f) for f in result.violations),
            warnings=tuple(_problem(f) for f in result.warnings if f.code != "ucs2_forced"),
            ucs2=_ucs2(body, result),
            highlighted=_highlighted(body, frozenset(result.ucs2_characters)),
            tags=_tag_options(fields),
            preview=preview,
            other_rates=tuple(
                (region, int(rate))
                for region, rate in sorted(account.credit_rates.items())
                if region != "default"
            ),
        )


def contact_choices(
    sessions: sessionmaker[Session], account_id: int, *, limit: int = 100
) -> list[ContactChoice]:
    """The account's newest contacts, to pick one for a preview."""
    with sessions.begin() as session:
        query = (
            select(Contact.id, Contact.first_name, Contact.last_name, Contact.email)
            .where(Contact.account_id == account_id)
            .order_by(Contact.id.desc())
            .limit(limit)
        )
        return [ContactChoice(row[0], _name(*row)) for row in session.execute(query)]


def available_tags(sessions: sessionmaker[Session], account_id: int) -> tuple[TagOption, ...]:
    """The tags a message of this account may use: the standard ones and its fields."""
    with sessions.begin() as session:
        return _tag_options(_fields(session, account_id))


def parse_contact_id(raw: str) -> int | None:
    """A contact id from a form ('' for none); anything else is refused by name."""
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or not is_id(int(raw)):
        raise InvalidInput("choose a contact from the list", field="contact_id")
    return int(raw)


def _clean(body: str) -> str:
    if len(body) > MAX_DRAFT:
        raise InvalidInput(
            f"the message is {len(body):,} characters; a message holds at most "
            f"{MAX_SEGMENTS_LIMIT} segments (1,530 characters)",
            code="too_long",
            field="body",
        )
    # Browsers send CRLF for a newline; a phone gets LF. NUL and lone surrogates are
    # not text anyone can send.
    body = body.replace("\r\n", "\n").replace("\x00", "")
    return body.encode("utf-8", "replace").decode("utf-8")


def _fields(session: Session, account_id: int) -> dict[str, str]:
    query = select(CustomField.key, CustomField.label).where(CustomField.account_id == account_id)
    return {key: label for key, label in session.execute(query.order_by(CustomField.key))}


def _tag_options(fields: dict[str, str]) -> tuple[TagOption, ...]:
    standard = [TagOption(f"%{t}%", _STANDARD_LABELS.get(t, t)) for t in sorted(STANDARD_TAGS)]
    custom = [TagOption(f"%{key}%", label or key) for key, label in fields.items()]
    return (*standard, *custom)


def _problem(finding: Finding) -> Problem:
    return Problem(
        finding.code,
        finding.detail,
        link=finding.data.get("link"),
        host=finding.data.get("host"),
    )


def _ucs2(body: str, result: MessageCheck) -> tuple[Ucs2Char, ...]:
    if not result.ucs2_characters:
        return ()
    suggestion = gsm_suggestion(body)
    replacements = dict(suggestion.replacements) if suggestion is not None else {}
    return tuple(
        Ucs2Char(char, _char_name(char), replacements.get(char)) for char in result.ucs2_characters
    )


def _char_name(char: str) -> str:
    names = [unicodedata.name(c, f"U+{ord(c):04X}") for c in char]
    return " + ".join(names).lower()


def _highlighted(body: str, ucs2: frozenset[str]) -> tuple[tuple[str, bool], ...]:
    if not ucs2:
        return ((body, False),) if body else ()
    runs: list[tuple[str, bool]] = []
    for grapheme in split_graphemes(body):
        special = grapheme in ucs2
        if runs and runs[-1][1] == special:
            runs[-1] = (runs[-1][0] + grapheme, special)
        else:
            runs.append((grapheme, special))
    return tuple(runs)


def _contact(session: Session, account_id: int, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id) if is_id(contact_id) else None
    if contact is None or contact.account_id != account_id:
        raise NotFound(f"no contact {contact_id} in this account", field="contact_id")
    return contact


def _preview(
    pipeline: Pipeline, account: Account, contact: Contact, body: str, known: frozenset[str]
) -> ContactPreview:
    """The draft as `contact` would get it, and the pipeline's verdict for them today.

    The text is rendered even when the pipeline would hold the message (no consent,
    say): the person writing still wants to read what the contact would see."""
    verdict = pipeline.draft(contact, body)
    name = _name(contact.id, contact.first_name, contact.last_name, contact.email)
    if isinstance(verdict, Draft):
        return ContactPreview(
            contact.id, name, verdict.body, verdict.encoding, verdict.segments, verdict.credits
        )
    try:
        rendered = Template.compile(body, known).render(_values(contact, None))
    except TemplateError:
        rendered = body  # the unknown tag is already an error beside the field
    result = check_message(rendered, pipeline.rules, rendered=True)
    return ContactPreview(
        contact_id=contact.id,
        name=name,
        text=result.sent_body,
        encoding=result.encoding.value,
        segments=result.sent_segments,
        credits=account.credit_cost(result.sent_segments, contact.phone_region),
        held_reason=verdict.reason,
        held_detail=verdict.detail,
    )


def _name(contact_id: Any, first: str | None, last: str | None, email: str | None) -> str:
    full = " ".join(part for part in (first, last) if part)
    return f"{full or email or 'Contact'} (#{contact_id})"
