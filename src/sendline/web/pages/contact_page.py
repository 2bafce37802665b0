"""A contact's page: its fields (fix a typo'd phone), tags and lists, consent status
with the whole audit trail (R4) and a form to record an opt-in or opt-out, and its
messages, newest first. Changes go through `services.contacts`, as the API's do, so
tag and list triggers start automations exactly as from the API or the CLI.
"""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sendline.errors import NotFound, SendlineError
from sendline.services import contacts as service
from sendline.services.contact_queries import consent_page, list_counts, tag_counts
from sendline.services.contacts import ContactChange
from sendline.services.messages import MessageFilter, message_page
from sendline.services.users import WebUser
from sendline.sms.phone import check_phone
from sendline.store.contact_values import MAX_NAME, MAX_PHONE, normalize_email
from sendline.store.ids import parse_id
from sendline.store.models import CONSENT_METHODS
from sendline.web.context import PREFIX, Form, Web

HISTORY = 100  # consent events shown, newest first
TIMELINE = 25  # messages shown; the log filtered by contact has them all
SUGGESTIONS = 200
MAX_DISCLOSURE = 5000
MAX_SOURCE = 200
MAX_AGENT = 2000
NAMES = {"first_name": "First name", "last_name": "Last name"}
# The service's error codes that name no field, and the field each is about.
FIELDS = {
    "bad_email": "email",
    "bad_name": "first_name",
    "no_identity": "phone",
    "disclosure_required": "disclosure",
    "bad_ip": "ip",
    "bad_consent_method": "method",
}
# The pipeline's explanation of `invalid_phone`, said to the person typing.
BAD_PHONE = (
    "this is not a valid phone number: outside the US it needs +country code "
    "(+44 20 7946 0958); US numbers need the area code"
)
NOTICES = {
    "created": "Contact created.",
    "saved": "Changes saved.",
    "tagged": "Tags added.",
    "untagged": "Tag removed.",
    "subscribed": "Subscribed to the list.",
    "unsubscribed": "Taken off the list.",
    "consent": "Consent recorded.",
}
KINDS = [("opt_in", "Opt-in (agreed to texts)"), ("opt_out", "Opt-out (stop texting)")]


def object_id(text: str, what: str) -> int:
    """The id a URL names; anything that cannot be a row id is simply not found."""
    found = parse_id(text)
    if found is None:
        raise NotFound(f"no {what} {text[:20]!r} in this account")
    return found


def before_of(text: str | None) -> int | None:
    """A keyset page's start (`?before=`); a value that is no id starts at the top."""
    return parse_id(text) if text else None


def fail(form: Form, exc: SendlineError, default_field: str = "_form") -> None:
    """A service's error beside the field it is about (named, or known by its code)."""
    form.fail(exc, FIELDS.get(exc.code, default_field))


def identity(form: Form, *, current_phone: str | None = None) -> dict[str, str | None]:
    """The contact's phone, email and names from `form`, checked as a person types them:
    each bad one gets its error beside its field. A typo'd phone is refused here (the
    API and imports store it flagged, R6); one unchanged since it was stored is kept."""
    values = {key: form.get(key).strip() or None for key in ("phone", "email", *NAMES)}
    phone = values["phone"]
    if phone is not None and phone != current_phone:
        if len(phone) > MAX_PHONE:
            form.errors["phone"] = f"a phone number is at most {MAX_PHONE} characters"
        elif check_phone(phone).status.value == "invalid_phone":
            form.errors["phone"] = _bad_phone(phone)
    if values["email"] is not None:
        try:
            normalize_email(values["email"])
        except SendlineError:
            form.errors["email"] = "this is not an email address (name@example.com)"
    for key, label in NAMES.items():
        if len(values[key] or "") > MAX_NAME:
            form.errors[key] = f"{label} is at most {MAX_NAME} characters"
    if phone is None and values["email"] is None:
        form.errors["phone"] = "a contact needs a phone number or an email"
    return values


def _bad_phone(phone: str) -> str:
    """Why a typed phone is refused: a letter (an O for a 0) is the likely typo, which
    the country-code advice would only mislead about. A vanity number that is valid
    (1-800-FLOWERS) never gets here."""
    letters = "".join(dict.fromkeys(c for c in phone if c.isalpha()))
    if not letters:
        return BAD_PHONE
    shown = ", ".join(letters[:5]) + (", …" if len(letters) > 5 else "")
    return f"this phone number contains letters: {shown}; type it in digits (0, not O)"


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]
    Posted = Annotated[Form, Depends(web.form)]
    base = PREFIX + "/contacts/{contact_id}"

    @pages.get(base, response_class=HTMLResponse)
    def contact(request: Request, contact_id: str, user: User) -> HTMLResponse:
        return _page(web, request, user, object_id(contact_id, "contact"), {})

    @pages.post(base + "/edit", response_class=HTMLResponse, response_model=None)
    def edit(
        request: Request, contact_id: str, user: User, form: Posted
    ) -> HTMLResponse | RedirectResponse:
        found = service.show(web.sessions, user.account_id, object_id(contact_id, "contact"))
        values = identity(form, current_phone=found.phone)
        if form.ok:
            try:
                service.update(
                    web.sessions,
                    user.account_id,
                    found.id,
                    phone=values["phone"],
                    email=values["email"],
                    first_name=values["first_name"],
                    last_name=values["last_name"],
                )
            except SendlineError as exc:
                fail(form, exc)
            else:
                return _done(found.id, "saved")
        return _page(web, request, user, found.id, {"edit": form}, status_code=400)

    def act(
        request: Request, contact_id: str, user: WebUser, form: Form, section: str, notice: str
    ) -> Callable[[Callable[[int], ContactChange]], HTMLResponse | RedirectResponse]:
        """Run one tag or list change on the contact (another account's is a 404 page);
        a refused one is shown beside the section's field."""

        def run(change: Callable[[int], ContactChange]) -> HTMLResponse | RedirectResponse:
            cid = service.show(web.sessions, user.account_id, object_id(contact_id, "contact")).id
            try:
                done = change(cid)
            except SendlineError as exc:
                fail(form, exc, section)
                return _page(web, request, user, cid, {section: form}, status_code=400)
            return _done(cid, notice, done.runs_started)

        return run

    @pages.post(base + "/tags", response_class=HTMLResponse, response_model=None)
    def add_tags(
        request: Request, contact_id: str, user: User, form: Posted
    ) -> HTMLResponse | RedirectResponse:
        tags = [tag.strip() for tag in form.get("tags").split(",") if tag.strip()] or [""]
        run = act(request, contact_id, user, form, "tags", "tagged")
        return run(lambda cid: service.tag(web.sessions, user.account_id, cid, tags))

    @pages.post(base + "/tags/remove", response_class=HTMLResponse, response_model=None)
    def remove_tag(
        request: Request, contact_id: str, user: User, form: Posted
    ) -> HTMLResponse | RedirectResponse:
        tag = form.get("tag")
        run = act(request, contact_id, user, form, "tags", "untagged")
        return run(lambda cid: service.untag(web.sessions, user.account_id, cid, [tag]))

    @pages.post(base + "/lists", response_class=HTMLResponse, response_model=None)
    def subscribe(
        request: Request, contact_id: str, user: User, form: Posted
    ) -> HTMLResponse | RedirectResponse:
        name = form.get("list").strip()
        run = act(request, contact_id, user, form, "list", "subscribed")
        return run(lambda cid: service.subscribe(web.sessions, user.account_id, cid, name))

    @pages.post(base + "/lists/remove", response_class=HTMLResponse, response_model=None)
    def unsubscribe(
        request: Request, contact_id: str, user: User, form: Posted
    ) -> HTMLResponse | RedirectResponse:
        name = form.get("list")
        run = act(request, contact_id, user, form, "list", "unsubscribed")
        return run(lambda cid: service.unsubscribe(web.sessions, user.account_id, cid, name))

    @pages.post(base + "/consent", response_class=HTMLResponse, response_model=None)
    def consent(
        request: Request, contact_id: str, user: User, form: Posted
    ) -> HTMLResponse | RedirectResponse:
        cid = service.show(web.sessions, user.account_id, object_id(contact_id, "contact")).id
        kind, when = _consent_input(form)
        if form.ok:
            try:
                service.record_consent(
                    web.sessions,
                    user.account_id,
                    cid,
                    kind=kind,
                    method=form.get("method"),
                    disclosure=form.get("disclosure").strip() or None,
                    recorded_by=user.email[:100],
                    source=form.get("source").strip() or "dashboard",
                    ip=form.get("ip").strip() or None,
                    user_agent=form.get("user_agent").strip() or None,
                    occurred_at=when,
                )
            except SendlineError as exc:
                fail(form, exc)
            else:
                return _done(cid, "consent")
        return _page(web, request, user, cid, {"consent": form}, status_code=400)

    return pages


def _consent_input(form: Form) -> tuple[str, datetime | None]:
    """The consent form's kind and time, each field's limits checked beside it."""
    kind = form.get("kind")
    if kind not in dict(KINDS):
        form.errors["kind"] = "choose opt-in or opt-out"
    if form.get("method") not in CONSENT_METHODS:
        form.errors["method"] = "choose how the contact gave it from the list"
    limits = {"disclosure": MAX_DISCLOSURE, "source": MAX_SOURCE, "user_agent": MAX_AGENT}
    for key, limit in limits.items():
        if len(form.get(key).strip()) > limit:
            form.errors[key] = f"at most {limit} characters"
    return kind, _when(form)


def _when(form: Form) -> datetime | None:
    """When the contact agreed (a datetime-local, read as UTC); blank is now."""
    text = form.get("occurred_at").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        form.errors["occurred_at"] = "a date and time, like 2026-05-01T14:30"
        return None
    if not 2000 <= moment.year <= 2100:
        form.errors["occurred_at"] = "a date between the years 2000 and 2100"
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _done(contact_id: int, notice: str, runs: int = 0) -> RedirectResponse:
    target = f"{PREFIX}/contacts/{contact_id}?notice={notice}"
    return RedirectResponse(target + (f"&runs={runs}" if runs else ""), status_code=303)


def _page(
    web: Web,
    request: Request,
    user: WebUser,
    contact_id: int,
    forms: dict[str, Form],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """The contact page; `forms` holds a refused form to show again, with its errors."""
    found = service.show(web.sessions, user.account_id, contact_id)
    account = user.account_id
    events = consent_page(web.sessions, account, found.id, before=None, limit=HISTORY)
    where = MessageFilter(contact_id=found.id)
    messages = message_page(web.sessions, account, where, limit=TIMELINE + 1)
    names = {key: getattr(found, key) or "" for key in ("phone", "email", *NAMES)}
    consent = {"kind": "opt_in", "method": "form", "source": "dashboard"}
    runs = parse_id(request.query_params.get("runs", "")) or 0
    return web.render(
        request,
        "contact.html",
        user,
        status_code=status_code,
        active="contacts",
        contact=found,
        heading=found.name or found.email or found.phone or f"Contact {found.id}",
        events=events[:HISTORY],
        more_events=len(events) > HISTORY,
        messages=messages[:TIMELINE],
        more_messages=len(messages) > TIMELINE,
        edit=forms.get("edit") or Form(values=names),
        tags_form=forms.get("tags") or Form(),
        list_form=forms.get("list") or Form(),
        consent_form=forms.get("consent") or Form(values=consent),
        notice=NOTICES.get(request.query_params.get("notice", "")),
        runs=runs,
        kinds=KINDS,
        methods=CONSENT_METHODS,
        tag_names=[t.tag for t in tag_counts(web.sessions, account, after=None, limit=SUGGESTIONS)],
        list_names=[
            x.name for x in list_counts(web.sessions, account, before=None, limit=SUGGESTIONS)
        ],
    )
