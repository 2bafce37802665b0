"""The automations of one account: definitions saved as versions, and their lifecycle.

An automation is a name, a status (draft -> active <-> paused -> archived) and a chain
of immutable versions. Editing an automation that is live (or has ever run) stores a new
version: new runs start on it, running contacts finish on the version they started on.

Everything a user can get wrong in a definition is refused when it is saved, not when a
contact reaches the step: an unknown personalization tag, a public link shortener
(R10), a body too long even before personalization (R9), a condition on a field that
does not exist, branches that run into each other and loops without a wait
(`engine/step_graph.py`). R1 is enforced when the automation is switched on: an account that may
not send SMS cannot activate an automation that would send one.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sendline.engine.conditions import leaves, unknown_fields
from sendline.engine.definitions import (
    AutomationDefinition,
    BulkTrigger,
    Condition,
    DateTrigger,
    EventTrigger,
    FieldChangedTrigger,
    FieldCondition,
    GoalStep,
    IfElseStep,
    InvalidAutomation,
    ListSubscribedTrigger,
    ReplyTrigger,
    TagAddedTrigger,
    UpdateFieldStep,
    definition_from_data,
    parse_definition,
)
from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.shortener_files import packaged_shorteners
from sendline.sms.check import MessageRules, check_message
from sendline.sms.links import ShortenerList
from sendline.sms.templates import Template, TemplateError
from sendline.store.engine_models import Automation, AutomationRun, AutomationVersion
from sendline.store.ids import is_id, parse_id
from sendline.store.models import Account, CustomField

_WORDS = re.compile(r"[^\W_]+")
UPDATABLE_STANDARD_FIELDS = frozenset({"FIRSTNAME", "LASTNAME", "EMAIL"})
# Triggers whose payload is available to templates as %EVENT.KEY%.
PAYLOAD_TRIGGERS = ("event", "reply")


@dataclass(frozen=True, slots=True)
class Saved:
    """An automation as saved: its current version, and warnings worth showing."""

    automation: Automation
    version: AutomationVersion
    definition: AutomationDefinition
    warnings: tuple[str, ...]


def load_definition(data: Mapping[str, Any]) -> AutomationDefinition:
    """The typed definition of a stored version (parsed once per distinct definition)."""
    return _parse_cached(json.dumps(data, sort_keys=True))


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> AutomationDefinition:
    return definition_from_data(json.loads(text))


def fold_keyword(text: str) -> str:
    """A reply keyword as matched: case, accents and punctuation ignored, words kept."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_WORDS.findall(plain.upper()))


def trigger_key(definition: AutomationDefinition) -> str | None:
    """What triggers look automations up by, beside the account and trigger type."""
    trigger = definition.trigger
    if isinstance(trigger, ListSubscribedTrigger):
        return trigger.list
    if isinstance(trigger, TagAddedTrigger):
        return trigger.tag
    if isinstance(trigger, FieldChangedTrigger | DateTrigger):
        return trigger.field.strip().upper()
    if isinstance(trigger, EventTrigger):
        return trigger.name.strip()
    if isinstance(trigger, ReplyTrigger):
        return fold_keyword(trigger.keyword) if trigger.keyword else None
    return None


class Automations:
    """Create, change, switch on and off, and find the automations of one account."""

    def __init__(
        self, session: Session, account_id: int, *, shorteners: ShortenerList | None = None
    ) -> None:
        self._session = session
        self.account_id = account_id
        self._shorteners = shorteners or packaged_shorteners()

    # -- reading -----------------------------------------------------------------

    def get(self, automation_id: int) -> Automation:
        automation = self._session.get(Automation, automation_id) if is_id(automation_id) else None
        if automation is None or automation.account_id != self.account_id:
            raise NotFound(f"no automation {automation_id} in this account")
        return automation

    def find(self, name: str) -> Automation | None:
        query = select(Automation).where(
            Automation.account_id == self.account_id, Automation.name == name.strip()
        )
        return self._session.scalars(query).first()

    def resolve(self, ref: str | int) -> Automation:
        """By id when `ref` is an int (the API's); by name, or id when a text is no name."""
        if isinstance(ref, int):
            return self.get(ref)
        automation, number = self.find(ref.strip()), parse_id(ref.strip())
        if automation is None and number is not None:
            return self.get(number)
        if automation is None:
            raise NotFound(f"no automation named {ref.strip()!r} in this account")
        return automation

    def list(self, status: str | None = None) -> list[Automation]:
        query = select(Automation).where(Automation.account_id == self.account_id)
        if status is not None:
            query = query.where(Automation.status == status)
        return list(self._session.scalars(query.order_by(Automation.id)))

    def version(self, automation: Automation, number: int | None = None) -> AutomationVersion:
        """The current version, or the one with this number."""
        query = select(AutomationVersion).where(AutomationVersion.automation_id == automation.id)
        if number is None:
            query = query.where(AutomationVersion.id == automation.current_version_id)
        else:
            query = query.where(AutomationVersion.number == number)
        version = self._session.scalars(query).first()
        if version is None:
            raise NotFound(f"automation {automation.name!r} has no version {number or ''}")
        return version

    def definition(self, automation: Automation) -> AutomationDefinition:
        return load_definition(self.version(automation).definition)

    def run_counts(self, automation_id: int) -> dict[str, int]:
        """Runs of the automation by status (all versions)."""
        rows = self._session.execute(
            select(AutomationRun.status, func.count())
            .where(AutomationRun.automation_id == automation_id)
            .group_by(AutomationRun.status)
        )
        return {str(status): int(count) for status, count in rows}

    # -- saving ------------------------------------------------------------------

    def create(self, source: str | Mapping[str, Any] | AutomationDefinition) -> Saved:
        """A new draft automation (version 1) from a YAML/JSON text or a mapping."""
        definition = _definition(source)
        warnings = self.validate(definition)
        self._check_name_free(definition.name, None)
        now = datetime.now(UTC)
        automation = Automation(
            account_id=self.account_id,
            name=definition.name,
            status="draft",
            trigger_type=definition.trigger.type,
            trigger_key=trigger_key(definition),
            created_at=now,
            updated_at=now,
        )
        self._session.add(automation)
        self._session.flush()
        version = self._new_version(automation, definition, 1, now)
        return Saved(automation, version, definition, warnings)

    def update(
        self, ref: str | int, source: str | Mapping[str, Any] | AutomationDefinition
    ) -> Saved:
        """Change the definition: a new version unless it is a draft that never ran."""
        automation = self.resolve(ref)
        if automation.status == "archived":
            raise Conflict(f"automation {automation.name!r} is archived", code="archived")
        definition = _definition(source)
        warnings = self.validate(definition)
        self._check_name_free(definition.name, automation.id)
        now = datetime.now(UTC)
        current = self.version(automation)
        if automation.status == "draft" and not self.run_counts(automation.id):
            current.definition = _stored(definition)  # nobody ran it: edit in place
            version = current
        else:
            version = self._new_version(automation, definition, current.number + 1, now)
        automation.name = definition.name
        automation.trigger_type = definition.trigger.type
        automation.trigger_key = trigger_key(definition)
        automation.updated_at = now
        self._session.flush()
        return Saved(automation, version, definition, warnings)

    def validate(self, definition: AutomationDefinition) -> tuple[str, ...]:
        """Raise InvalidAutomation naming every step in error; return the warnings."""
        account = self.account()
        fields = self._field_keys()
        known = frozenset(fields | ({"EVENT.*"} if _has_payload(definition) else set()))
        rules = MessageRules(
            shorteners=self._shorteners,
            clause=account.optout_clause,
            max_segments=account.max_segments,
            known_tags=known,
        )
        errors: list[str] = []
        warnings: list[str] = []
        for step_id, body in definition.sms_bodies():
            step_errors, step_warnings = _check_body(body, rules)
            errors += [f"step {step_id}: {e}" for e in step_errors]
            warnings += [f"step {step_id}: {w}" for w in step_warnings]
        errors += _condition_errors(definition, fields)
        errors += definition.graph.problems()  # branches that run into each other, loops
        if errors:
            raise InvalidAutomation.listing(errors)
        refusal = account.sms_refusal()
        if refusal is not None and definition.sms_bodies():
            warnings.append(f"cannot be activated on this account: {refusal.message}")
        return tuple(warnings)

    def check_segment(self, segment: Condition | None) -> None:
        """Refuse a segment that names fields this account does not have."""
        if segment is None:
            return
        problems = condition_problems(segment, self._field_keys())
        if problems:
            raise InvalidInput(f"segment: {'; '.join(problems)}", code="invalid_segment")

    # -- lifecycle ---------------------------------------------------------------

    def activate(self, ref: str | int) -> Automation:
        """Switch on (R1: refused when the account may not send an SMS step it holds)."""
        automation = self.resolve(ref)
        if automation.status == "archived":
            raise Conflict(f"automation {automation.name!r} is archived", code="archived")
        if self.definition(automation).sms_bodies():
            refusal = self.account().sms_refusal()
            if refusal is not None:
                raise refusal
        return self._set_status(automation, "active")

    def pause(self, ref: str | int) -> Automation:
        """Stop enrolling and hold running contacts where they stand until re-activated."""
        automation = self.resolve(ref)
        if automation.status not in ("active", "paused"):
            raise Conflict(
                f"automation {automation.name!r} is {automation.status}; only an active "
                "automation can be paused",
                code="not_active",
            )
        return self._set_status(automation, "paused")

    def archive(self, ref: str | int) -> Automation:
        """Retire the automation for good: its running contacts exit."""
        automation = self.resolve(ref)
        now = datetime.now(UTC)
        self._session.execute(
            update(AutomationRun)
            .where(AutomationRun.automation_id == automation.id, AutomationRun.status == "active")
            .values(status="exited", error="automation archived", due_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return self._set_status(automation, "archived")

    # -- internals ---------------------------------------------------------------

    def account(self) -> Account:
        account = self._session.get(Account, self.account_id)
        if account is None:
            raise NotFound(f"no account with id {self.account_id}")
        return account

    def _field_keys(self) -> set[str]:
        query = select(CustomField.key).where(CustomField.account_id == self.account_id)
        return set(self._session.scalars(query))

    def _set_status(self, automation: Automation, status: str) -> Automation:
        automation.status = status
        automation.updated_at = datetime.now(UTC)
        self._session.flush()
        return automation

    def _check_name_free(self, name: str, own_id: int | None) -> None:
        other = self.find(name)
        if other is not None and other.id != own_id:
            raise Conflict(f"an automation named {name!r} already exists (id {other.id})")

    def _new_version(
        self, automation: Automation, definition: AutomationDefinition, number: int, now: datetime
    ) -> AutomationVersion:
        version = AutomationVersion(
            automation_id=automation.id,
            number=number,
            definition=_stored(definition),
            created_at=now,
        )
        self._session.add(version)
        self._session.flush()
        automation.current_version_id = version.id
        self._session.flush()
        return version


def _definition(source: str | Mapping[str, Any] | AutomationDefinition) -> AutomationDefinition:
    if isinstance(source, AutomationDefinition):
        return source
    if isinstance(source, str):
        return parse_definition(source)
    return definition_from_data(dict(source))


def _stored(definition: AutomationDefinition) -> dict[str, Any]:
    data: dict[str, Any] = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def _has_payload(definition: AutomationDefinition) -> bool:
    return definition.trigger.type in PAYLOAD_TRIGGERS


def _check_body(body: str, rules: MessageRules) -> tuple[list[str], list[str]]:
    """Errors and warnings for one send_sms body, as saved (before personalization)."""
    result = check_message(body, rules)
    errors = [v.detail for v in result.violations if v.code != "too_long"]
    warnings = [w.detail for w in result.warnings if w.code == "ucs2_forced"]
    too_long = next((v for v in result.violations if v.code == "too_long"), None)
    if too_long is not None:
        # Tags are counted as written; the body is refused only when it is too long with
        # every tag at its shortest (empty or its fallback). Otherwise it depends on the
        # contact, and the send pipeline holds the ones that overflow.
        shortest = _shortest(body, rules.known_tags)
        if shortest is None or check_message(shortest, rules, rendered=True).sent_segments > (
            rules.max_segments
        ):
            errors.append(too_long.detail)
        else:
            warnings.append(f"may be too long once personalized: {too_long.detail}")
    return errors, warnings


def _shortest(body: str, known_tags: frozenset[str]) -> str | None:
    try:
        return Template.compile(body, known_tags).render({})
    except TemplateError:
        return None


def _condition_errors(definition: AutomationDefinition, fields: set[str]) -> list[str]:
    trigger = definition.trigger
    errors = []
    if isinstance(trigger, DateTrigger) and trigger.field.strip().upper() not in fields:
        errors.append(f"trigger: date field {trigger.field!r} is not a custom field")
    conditions: list[tuple[str, Condition]] = []
    if isinstance(trigger, BulkTrigger) and trigger.segment is not None:
        conditions.append(("trigger segment", trigger.segment))
    for step in definition.all_steps():
        if isinstance(step, IfElseStep | GoalStep):
            conditions.append((f"step {step.id}", step.condition))
        elif isinstance(step, UpdateFieldStep) and step.field.strip().upper() not in (
            fields | UPDATABLE_STANDARD_FIELDS
        ):
            errors.append(f"step {step.id}: cannot update unknown field {step.field!r}")
    for where, condition in conditions:
        errors += [f"{where}: {problem}" for problem in condition_problems(condition, fields)]
    return errors


def condition_problems(condition: Condition, fields: set[str]) -> list[str]:
    """What is wrong with a condition (segment, branch, goal) for this account."""
    problems = [f"unknown field {name!r}" for name in unknown_fields(condition, fields)]
    for leaf in leaves(condition):
        if not isinstance(leaf, FieldCondition) or leaf.op in ("empty", "not_empty"):
            continue
        if leaf.value is None:
            problems.append(f"{leaf.field} {leaf.op} needs a value")
        elif leaf.op == "contains" and not isinstance(leaf.value, str):
            problems.append(f"{leaf.field} contains needs a text value")
    return problems
