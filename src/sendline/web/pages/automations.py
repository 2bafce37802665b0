"""Automations: the list with each one's state and step statistics, the builder (a new
automation, or a new version of one), one automation's statistics, pre-flight report and
lifecycle buttons, and its version history.

The builder is a form whose inputs are named by their place in the definition
(`steps.2.then.0.body`, see `web/automation_form.py`); its buttons post the whole form
back and get the builder re-rendered (htmx swaps it, without JavaScript it is the whole
page). The services are the API's: `automation_edits`, `automation_pages`,
`automations.change_status`.
"""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
import typing
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sendline.api.problems import status_of
from sendline.engine.condition_models import ConsentCondition, FieldOp, LastMessageCondition
from sendline.engine.definitions import GoalStep, WaitStep
from sendline.engine.step_ids import MAX_NESTING
from sendline.errors import NotFound, SendlineError
from sendline.services.automation_checks import DefinitionInvalid, FieldMessage, check_size
from sendline.services.automation_edits import (
    Checked,
    preflight_by_id,
    save_definition,
    validate_definition,
)
from sendline.services.automation_pages import automation_full, page_automations, page_versions
from sendline.services.automations import Lifecycle, change_status
from sendline.services.users import WebUser
from sendline.store.engine_models import AUTOMATION_STATUSES
from sendline.store.ids import MAX_ID
from sendline.web import automation_form as forms
from sendline.web.automation_steps import apply
from sendline.web.context import PREFIX, Form, Web

PAGE_SIZE = 20
MAX_VERSIONS = 500
LIFECYCLE = ("activate", "pause", "archive")
BASE = PREFIX + "/automations"


LABELS: dict[str, str] = {
    "send_sms": "Send a text",
    "wait": "Wait",
    "if_else": "If / else",
    "add_tag": "Add a tag",
    "remove_tag": "Remove a tag",
    "update_field": "Set a field",
    "subscribe": "Subscribe to a list",
    "unsubscribe": "Unsubscribe from a list",
    "goal": "Goal",
    "exit": "Exit",
    "list_subscribed": "Joins a list",
    "tag_added": "Gets a tag",
    "field_changed": "A field changes",
    "event": "A custom event",
    "reply": "Replies",
    "date": "A date (birthday, renewal)",
    "bulk": "Bulk start (a blast)",
}


def label(kind: str) -> str:
    return LABELS.get(kind, kind.replace("_", " "))


def _choices(annotation: Any) -> tuple[str, ...]:
    """The values of a Literal annotation (optionally `Literal[...] | None`)."""
    args = typing.get_args(annotation)
    if args and all(isinstance(a, str) for a in args):
        return tuple(args)
    return tuple(v for a in args for v in typing.get_args(a) if isinstance(v, str))


# What the builder offers, from the models that validate a definition (cannot drift).
BUILDER = {
    "step_types": forms.STEP_TYPES,
    "trigger_types": forms.TRIGGER_TYPES,
    "trigger_fields": forms.TRIGGER_FIELDS,
    "condition_kinds": forms.CONDITION_KINDS,
    "ops": typing.get_args(FieldOp),
    "consents": _choices(ConsentCondition.model_fields["consent"].annotation),
    "message_statuses": _choices(
        LastMessageCondition.model_fields["last_message_status"].annotation
    ),
    "otherwise": _choices(GoalStep.model_fields["otherwise"].annotation),
    "weekdays": _choices(WaitStep.model_fields["weekdays"].annotation),
    "max_nesting": MAX_NESTING,
    "label": label,
}


def automation_id(ref: str) -> int:
    """An id from the URL; anything else is a page that does not exist."""
    if ref.isascii() and ref.isdigit() and len(ref) < 20 and 1 <= int(ref) <= MAX_ID:
        return int(ref)
    raise NotFound("there is no such automation")


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]
    Posted = Annotated[Form, Depends(web.form)]

    @pages.get(BASE, response_class=HTMLResponse)
    def index(
        request: Request, user: User, status: str = "", state: str = "", before: str = ""
    ) -> HTMLResponse:
        # `state` is the filter's name (its label says State); `status` from older links.
        wanted = state or status
        bad = wanted != "" and wanted not in AUTOMATION_STATUSES
        chosen = wanted if wanted in AUTOMATION_STATUSES else None
        below = int(before) if before.isascii() and before.isdigit() and len(before) < 19 else None
        rows = page_automations(
            web.sessions, user.account_id, limit=PAGE_SIZE + 1, before=below, status=chosen
        )
        shown = [
            automation_full(web.sessions, user.account_id, row.id, failures=0)
            for row in rows[:PAGE_SIZE]
        ]
        more = shown[-1].row.id if len(rows) > PAGE_SIZE else None
        return web.render(
            request,
            "automations.html",
            user,
            status_code=400 if bad else 200,
            active="automations",
            automations=shown,
            status=chosen or "",
            state_error="choose a state from the list" if bad else None,
            statuses=AUTOMATION_STATUSES,
            more=more,
        )

    @pages.get(BASE + "/new", response_class=HTMLResponse)
    def new(request: Request, user: User) -> HTMLResponse:
        return builder(request, user, Form(), forms.empty_draft(), None)

    @pages.post(BASE + "/new", response_class=HTMLResponse)
    def new_posted(request: Request, user: User, form: Posted) -> Response:
        return posted(request, user, form, None)

    @pages.get(BASE + "/{ref}", response_class=HTMLResponse)
    def detail(request: Request, user: User, ref: str, saved: str = "") -> HTMLResponse:
        return show(request, user, automation_id(ref), notice=_saved_notice(saved))

    @pages.get(BASE + "/{ref}/preflight", response_class=HTMLResponse)
    def preflight(request: Request, user: User, ref: str) -> HTMLResponse:
        found = automation_id(ref)
        try:
            report = preflight_by_id(
                web.sessions, user.account_id, found, shorteners=web.shorteners
            )
        except NotFound:
            raise
        except SendlineError as exc:
            return show(request, user, found, problem=exc.message, status_code=status_of(exc))
        return show(request, user, found, report=report)

    @pages.get(BASE + "/{ref}/versions", response_class=HTMLResponse)
    def versions(request: Request, user: User, ref: str) -> HTMLResponse:
        found = automation_id(ref)
        full = automation_full(web.sessions, user.account_id, found, failures=0)
        rows = page_versions(web.sessions, user.account_id, found, limit=MAX_VERSIONS)
        shown = [(row, as_yaml(row.definition)) for row in rows]
        return web.render(
            request,
            "automation_versions.html",
            user,
            active="automations",
            full=full,
            versions=shown,
        )

    @pages.get(BASE + "/{ref}/edit", response_class=HTMLResponse)
    def edit(request: Request, user: User, ref: str, version: str = "") -> HTMLResponse:
        found = automation_id(ref)
        full = automation_full(web.sessions, user.account_id, found, failures=0)
        definition = full.definition
        if version:
            rows = page_versions(web.sessions, user.account_id, found, limit=MAX_VERSIONS)
            match = [row for row in rows if str(row.number) == version]
            if not match:
                raise NotFound(f"automation {found} has no version {version[:20]!r}")
            definition = match[0].definition
        return builder(request, user, Form(), forms.from_definition(definition), found)

    @pages.post(BASE + "/{ref}/edit", response_class=HTMLResponse)
    def edit_posted(request: Request, user: User, ref: str, form: Posted) -> Response:
        found = automation_id(ref)
        automation_full(web.sessions, user.account_id, found, failures=0)  # 404 if not ours
        return posted(request, user, form, found)

    @pages.post(BASE + "/{ref}/{action}", response_class=HTMLResponse)
    def lifecycle(request: Request, user: User, ref: str, action: str) -> Response:
        found = automation_id(ref)
        if action not in LIFECYCLE:
            raise NotFound("there is no such action")
        try:
            change_status(web.sessions, user.account_id, found, typing.cast(Lifecycle, action))
        except NotFound:
            raise
        except SendlineError as exc:
            return show(request, user, found, problem=exc.message, status_code=status_of(exc))
        return RedirectResponse(f"{BASE}/{found}", status_code=303)

    # -- rendering -------------------------------------------------------------------

    def show(
        request: Request, user: WebUser, found: int, *, status_code: int = 200, **extra: Any
    ) -> HTMLResponse:
        full = automation_full(web.sessions, user.account_id, found)
        return web.render(
            request,
            "automation_detail.html",
            user,
            status_code=status_code,
            active="automations",
            full=full,
            definition_yaml=as_yaml(full.definition),
            **extra,
        )

    def builder(
        request: Request,
        user: WebUser,
        form: Form,
        draft: forms.Draft,
        editing: int | None,
        *,
        status_code: int = 200,
        checked: Checked | None = None,
        text: str | None = None,
    ) -> HTMLResponse:
        """The builder: the whole page, or for htmx only its form (`_builder.html`)."""
        action = f"{BASE}/{editing}/edit" if editing else f"{BASE}/new"
        if text is None:
            text = as_yaml(forms.to_definition(draft)[0])
        htmx = request.headers.get("HX-Request") == "true"
        return web.render(
            request,
            "_builder.html" if htmx else "automation_builder.html",
            user,
            status_code=status_code,
            active="automations",
            form=form,
            draft=draft,
            editing=editing,
            action=action,
            checked=checked,
            definition_text=text,
            b=BUILDER,
        )

    def posted(request: Request, user: WebUser, form: Form, editing: int | None) -> Response:
        """A builder button: change the draft and show it again, load pasted YAML,
        validate (errors beside their inputs) or save (then to the automation's page)."""
        op = form.get("op", "refresh")
        text = None
        if op == "load":
            draft, text = _loaded(form)
        else:
            draft = apply(forms.parse_form(form.values, form.lists), op, form.values)
        checked = None
        if op in ("validate", "save"):
            data, local = forms.to_definition(draft)
            form.errors.update(local)
            try:
                if not local and op == "validate":
                    checked = validate_definition(
                        web.sessions, user.account_id, data, automation_id=editing,
                        shorteners=web.shorteners,
                    )  # fmt: skip
                elif not local:
                    saved = save_definition(
                        web.sessions, user.account_id, data, automation_id=editing,
                        shorteners=web.shorteners,
                    )  # fmt: skip
                    return _to(request, f"{BASE}/{saved.automation_id}?saved={saved.version}")
            except NotFound:
                raise
            except DefinitionInvalid as exc:
                form.errors.update(forms.error_fields(exc.errors, forms.input_names(draft)))
            except SendlineError as exc:
                found = [FieldMessage(exc.field, exc.message)]
                form.errors.update(forms.error_fields(found, forms.input_names(draft)))
        status = 400 if form.errors else 200
        return builder(
            request, user, form, draft, editing, status_code=status, checked=checked, text=text
        )

    return pages


def _loaded(form: Form) -> tuple[forms.Draft, str]:
    """The draft of a definition pasted as YAML or JSON; an error beside the text box
    (the builder keeps what it held) when it is not one."""
    text = form.get("definition_text")
    try:
        data = yaml.safe_load(text)
        check_size(data, "definition_text")
    except yaml.YAMLError as exc:
        form.errors["definition_text"] = f"not valid YAML or JSON: {exc}"
    except RecursionError:  # a hostile paste nested thousands deep
        form.errors["definition_text"] = "the definition is nested too deep"
    except SendlineError as exc:
        form.errors["definition_text"] = exc.message
    else:
        if isinstance(data, dict):
            return forms.from_definition(data), text
        form.errors["definition_text"] = "a definition is a mapping with name, trigger, steps"
    return forms.parse_form(form.values, form.lists), text


def _saved_notice(saved: str) -> str | None:
    if saved.isascii() and saved.isdigit() and len(saved) < 10:
        return f"Saved: version {int(saved)}."
    return None


def _to(request: Request, url: str) -> Response:
    """After a save: htmx follows HX-Redirect, a plain form a 303 (PRG)."""
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
