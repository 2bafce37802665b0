"""/api/v1/automations: what `sendline automations ...` does, over HTTP.

A definition is sent as the request body itself: the JSON form of the YAML/JSON files
the CLI loads (`GET /automations/schema` is its JSON Schema). It is checked by the
engine's own validator, the CLI's. A definition refused is a 422 problem with code
`invalid_automation`: `field` names the first field at fault as a path in the body
(`steps.1.body`, 0-based indexes) and `errors` lists every problem found (up to 20),
each with its field; `POST /automations/validate` answers the same without saving.
Automations are found by id in the key's account only: another account's is 404.
"""

# No `from __future__ import annotations`: the routes are defined inside `router()`, and
# FastAPI must evaluate their `Depends(auth...)` annotations there, where `auth` exists.
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.problems import PROBLEM_JSON, TITLES, TYPE_BASE
from sendline.api.v1.auth import Authenticator
from sendline.api.v1.automation_models import (
    AutomationDetailOut,
    AutomationOut,
    InvalidAutomationProblem,
    PreflightOut,
    SavedAutomationOut,
    SegmentIn,
    StartOut,
    Status,
    ValidationOut,
    VersionOut,
    automation_out,
    detail_out,
    messages_out,
    preflight_out,
    saved_out,
    version_out,
)
from sendline.api.v1.pages import Cursor, Limit, Page, before_id, page_of
from sendline.api.v1.params import ObjectId
from sendline.services.automation_checks import DefinitionInvalid
from sendline.services.automation_edits import (
    preflight_by_id,
    save_definition,
    start_by_id,
    validate_definition,
)
from sendline.services.automation_pages import (
    automation_full,
    automation_row,
    page_automations,
    page_versions,
)
from sendline.services.automations import Lifecycle, automation_schema, change_status
from sendline.sms.links import ShortenerList
from sendline.store.ids import MAX_ID

DEFINITION = (
    "An automation definition: name, trigger, steps (and reentry, transactional), as in "
    "the YAML/JSON files `sendline automations create` loads. Its JSON Schema: "
    "GET /api/v1/automations/schema."
)
EXAMPLE = {
    "name": "Order shipped",
    "trigger": {"type": "event", "name": "order_shipped"},
    "reentry": "always",
    "steps": [
        {
            "type": "if_else",
            "condition": {"tag": "vip"},
            "then": [{"type": "send_sms", "body": "Order %EVENT.ORDER_ID% ships free, VIP!"}],
            "else": [{"type": "send_sms", "body": "Order %EVENT.ORDER_ID% has shipped."}],
        }
    ],
}
Definition = Annotated[
    dict[str, Any],
    Body(
        description=DEFINITION,
        max_length=10,
        openapi_examples={"branches": {"summary": "Two texts by tag", "value": EXAMPLE}},
    ),
]
Segment = Annotated[SegmentIn | None, Body()]
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {
        "model": InvalidAutomationProblem,
        "description": "The definition is refused: each problem with its field.",
        "content": {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/InvalidAutomationProblem"}}
        },
    }
}


def refused(exc: DefinitionInvalid) -> JSONResponse:
    """The 422 problem of a refused definition, every problem listed with its field."""
    body = InvalidAutomationProblem(
        type=TYPE_BASE + exc.code,
        title=TITLES[422],
        status=422,
        detail=exc.message,
        code=exc.code,
        field=exc.field,
        errors=messages_out(exc.errors),
    )
    return JSONResponse(body.model_dump(), status_code=422, media_type=PROBLEM_JSON)


def router(
    sessions: sessionmaker[Session], auth: Authenticator, shorteners: ShortenerList
) -> APIRouter:
    """`shorteners`: R10's list as the worker sees it (the operator's file on top of
    the packaged one), so a release, a test send or a save checks links as a blast does."""
    routes = APIRouter(tags=["automations"])
    Account = Annotated[int, Depends(auth.account_id)]

    @routes.get("/automations/schema", response_model=dict[str, Any])
    def get_schema(account_id: Account) -> dict[str, Any]:
        """The JSON Schema of an automation definition (`sendline automations schema`)."""
        return automation_schema()

    @routes.post("/automations/validate", response_model=ValidationOut, responses=REFUSED)
    def validate(
        definition: Definition,
        account_id: Account,
        automation_id: Annotated[
            int | None,
            Query(ge=1, le=MAX_ID, description="Check it as a new version of this automation."),
        ] = None,
    ) -> ValidationOut | JSONResponse:
        """Check a definition exactly as a save would, against this account's fields and
        settings, and save nothing: 200 with the warnings, or the 422 a save would give."""
        try:
            checked = validate_definition(
                sessions,
                account_id,
                definition,
                automation_id=automation_id,
                shorteners=shorteners,
            )
        except DefinitionInvalid as exc:
            return refused(exc)
        return ValidationOut(
            valid=True,
            name=checked.name,
            trigger_type=checked.trigger_type,
            steps=checked.steps,
            sms_steps=checked.sms_steps,
            warnings=messages_out(checked.warnings),
        )

    @routes.post(
        "/automations", status_code=201, response_model=SavedAutomationOut, responses=REFUSED
    )
    def create(definition: Definition, account_id: Account) -> SavedAutomationOut | JSONResponse:
        """Save a new automation as a draft (`activate` switches it on). A name already
        taken in the account is 409."""
        return _save(account_id, definition, None)

    @routes.get("/automations", response_model=Page[AutomationOut])
    def list_automations(
        account_id: Account,
        status: Annotated[
            Status | None, Query(description="Only automations in this state.")
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[AutomationOut]:
        """The account's automations, newest first, with their runs by status."""
        rows = page_automations(
            sessions, account_id, limit=limit + 1, before=before_id(cursor), status=status
        )
        return page_of(rows, limit, automation_out, lambda row: row.id)

    @routes.get("/automations/{automation_id}", response_model=AutomationDetailOut)
    def get_automation(automation_id: ObjectId, account_id: Account) -> AutomationDetailOut:
        """One automation: settings, step graph with statistics per step, runs, the latest
        failures and why (`sendline automations show`)."""
        return detail_out(automation_full(sessions, account_id, automation_id))

    @routes.put(
        "/automations/{automation_id}", response_model=SavedAutomationOut, responses=REFUSED
    )
    def update(
        automation_id: ObjectId, definition: Definition, account_id: Account
    ) -> SavedAutomationOut | JSONResponse:
        """Change an automation from a whole new definition: a new version (a draft that
        never ran is edited in place); running contacts finish on the version they began."""
        return _save(account_id, definition, automation_id)

    def _save(
        account_id: int, definition: dict[str, Any], automation_id: int | None
    ) -> SavedAutomationOut | JSONResponse:
        try:
            saved = save_definition(
                sessions,
                account_id,
                definition,
                automation_id=automation_id,
                shorteners=shorteners,
            )
        except DefinitionInvalid as exc:
            return refused(exc)
        row = automation_row(sessions, account_id, saved.automation_id)
        return saved_out(row, saved.warnings)

    def _lifecycle(account_id: int, automation_id: int, action: Lifecycle) -> AutomationOut:
        change_status(sessions, account_id, automation_id, action)
        return automation_out(automation_row(sessions, account_id, automation_id))

    @routes.post("/automations/{automation_id}/activate", response_model=AutomationOut)
    def activate(automation_id: ObjectId, account_id: Account) -> AutomationOut:
        """Switch on: triggers enroll contacts from now on (403 when the plan cannot send
        SMS and a step sends one, R1; 409 when archived)."""
        return _lifecycle(account_id, automation_id, "activate")

    @routes.post("/automations/{automation_id}/pause", response_model=AutomationOut)
    def pause(automation_id: ObjectId, account_id: Account) -> AutomationOut:
        """Stop enrolling; running contacts wait where they are until re-activated (409
        unless active or paused)."""
        return _lifecycle(account_id, automation_id, "pause")

    @routes.post("/automations/{automation_id}/archive", response_model=AutomationOut)
    def archive(automation_id: ObjectId, account_id: Account) -> AutomationOut:
        """Retire the automation for good: its running contacts exit."""
        return _lifecycle(account_id, automation_id, "archive")

    @routes.get("/automations/{automation_id}/versions", response_model=Page[VersionOut])
    def versions(
        automation_id: ObjectId, account_id: Account, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[VersionOut]:
        """The automation's versions with their definitions, newest first."""
        rows = page_versions(
            sessions, account_id, automation_id, limit=limit + 1, before=before_id(cursor)
        )
        return page_of(rows, limit, version_out, lambda row: row.id)

    @routes.post("/automations/{automation_id}/preflight", response_model=PreflightOut)
    def preflight(
        automation_id: ObjectId, account_id: Account, body: Segment = None
    ) -> PreflightOut:
        """What the automation would do now, sending nothing: who would be texted, who
        held and why, the credits by country, quiet-hour deferrals, numbers to fix."""
        segment = body.segment if body is not None else None
        report = preflight_by_id(
            sessions, account_id, automation_id, segment=segment, shorteners=shorteners
        )
        return preflight_out(report)

    @routes.post("/automations/{automation_id}/start", status_code=202, response_model=StartOut)
    def start(automation_id: ObjectId, account_id: Account, body: Segment = None) -> StartOut:
        """Bulk start: enroll every contact of the segment now (the worker sends); says how
        many started and why the others did not. 409 unless the automation is active."""
        segment = body.segment if body is not None else None
        done = start_by_id(sessions, account_id, automation_id, segment=segment)
        return StartOut(
            automation_id=done.automation_id,
            name=done.name,
            audience=done.audience,
            started=done.started,
            not_started=max(0, done.audience - done.started),
            reasons=list(done.reasons),
        )

    return routes
