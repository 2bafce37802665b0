"""Settings: the account's sending settings, as `PATCH /api/v1/account` changes them
(quiet hours, frequency cap, opt-out clause, its language and policy, HELP text, max
segments, sender). The plan and credit rates are the operator's: not on this form."""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sendline.errors import InvalidInput, SendlineError
from sendline.services.accounts import AccountView, account_settings, parse_changes, update_account
from sendline.services.users import WebUser
from sendline.store.accounts import format_window
from sendline.store.models import OPTOUT_CLAUSE_POLICIES
from sendline.web.context import PREFIX, Form, Web

# The form's fields: the API's names and their length limits (api/v1/account.py).
LIMITS = {
    "quiet_start": 10,
    "quiet_end": 10,
    "frequency_cap": 10,
    "max_segments": 10,
    "optout_clause": 160,
    "optout_language": 16,
    "optout_clause_policy": 20,
    "help_text": 320,
    "sender_number": 20,
}
# Whole numbers the API bounds more tightly than its column (Field(ge=..., le=...)).
BOUNDS = {"frequency_cap": (1, 100), "max_segments": (1, 10)}
POLICIES = [
    ("every_message", "In every message"),
    ("every_30_days", "At most once every 30 days per contact"),
]
assert {key for key, _ in POLICIES} == set(OPTOUT_CLAUSE_POLICIES)


def _hhmm(minutes: int) -> str:
    return format_window(minutes, minutes).split("-")[0]


def current(view: AccountView) -> dict[str, str]:
    """The form's values for the account as it is."""
    return {
        "quiet_start": _hhmm(view.quiet_start),
        "quiet_end": _hhmm(view.quiet_end),
        "frequency_cap": str(view.frequency_cap),
        "max_segments": str(view.max_segments),
        "optout_clause": view.optout_clause,
        "optout_language": view.optout_language,
        "optout_clause_policy": view.optout_clause_policy,
        "help_text": view.help_text,
        "sender_number": view.sender_number or "",
    }


def _plain(name: str, value: str) -> None:
    """What the API's schema refuses before a value reaches the account's checks."""
    if len(value) > LIMITS[name]:
        raise InvalidInput(f"at most {LIMITS[name]} characters")
    if any(ord(c) < 32 and c not in "\t\r\n" or ord(c) == 127 for c in value):
        raise InvalidInput("must not hold control characters")
    if name in BOUNDS and value.strip().isascii() and value.strip().lstrip("-").isdigit():
        low, high = BOUNDS[name]
        if len(value.strip()) > 4 or not low <= int(value.strip()) <= high:
            raise InvalidInput(f"must be a whole number from {low} to {high}")


def read_changes(form: Form, view: AccountView) -> dict[str, Any]:
    """Every field checked on its own, so each error sits beside its field; the
    account's columns for the ones that changed."""
    changes: dict[str, Any] = {}
    was = current(view)
    for name in LIMITS:
        value = form.get(name).strip()
        if value == was[name]:
            continue
        try:
            if not value:
                raise InvalidInput("required")
            _plain(name, value)
            changes.update(parse_changes({name: value}, by_key=True))
        except InvalidInput as exc:
            # The account's checks name the field ("quiet_start: ..."), as the API and
            # the CLI need; here the message sits beside the field's own label.
            form.errors[name] = exc.message.removeprefix(f"{name}: ")
    start = changes.get("quiet_start", view.quiet_start)
    end = changes.get("quiet_end", view.quiet_end)
    if form.ok and not start < end:
        form.errors["quiet_end"] = "the sending window must end after it starts, within one day"
    return changes


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]

    def show(
        request: Request, user: WebUser, view: AccountView, form: Form, status: int = 200
    ) -> HTMLResponse:
        return web.render(
            request,
            "settings.html",
            user,
            status_code=status,
            active="settings",
            tab="sending",
            account=view,
            form=form,
            policies=POLICIES,
            saved=request.query_params.get("saved") == "1",
        )

    @pages.get(PREFIX + "/settings", response_class=HTMLResponse)
    def settings(request: Request, user: User) -> HTMLResponse:
        view = account_settings(web.sessions, user.account_id)
        return show(request, user, view, Form(values=current(view)))

    @pages.post(PREFIX + "/settings", response_model=None)
    def save(
        request: Request, user: User, form: Annotated[Form, Depends(web.form)]
    ) -> HTMLResponse | RedirectResponse:
        view = account_settings(web.sessions, user.account_id)
        changes = read_changes(form, view)
        if form.ok and changes:
            try:
                update_account(web.sessions, user.account_id, changes)
            except SendlineError as exc:
                form.fail(exc)
        if not form.ok:
            return show(request, user, view, form, 400)
        return RedirectResponse(PREFIX + "/settings?saved=1", status_code=303)

    return pages
