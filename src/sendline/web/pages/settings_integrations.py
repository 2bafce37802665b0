"""Settings for what connects to Sendline: providers (carriers, their secrets write-only),
API keys and outbound webhooks (a key or a signing secret is shown once, when made)."""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sendline.api.problems import status_of
from sendline.errors import ConfigError, InvalidInput, NotFound, SendlineError
from sendline.providers.configs import MAX_CONFIG, MAX_LABEL
from sendline.services import api_keys, providers, webhooks
from sendline.services.providers import HttpFields, TwilioFields
from sendline.services.users import WebUser
from sendline.store.event_models import EVENT_KINDS
from sendline.store.ids import parse_id
from sendline.web.context import PREFIX, Form, Web

SETTINGS = PREFIX + "/settings"
MAX_SHORT = 64
MAX_POSITION = 1000
NO_STORE = {"Cache-Control": "no-store"}  # a page showing a secret is never cached
CONFIRMS = [("", "The carrier's default"), ("yes", "Yes"), ("no", "No")]
# Without SENDLINE_SECRET_KEY the secret box speaks of provider secrets: a webhook's
# page says what it means for a webhook instead.
NO_KEY_FOR_WEBHOOKS = (
    "webhooks need SENDLINE_SECRET_KEY: their signing secrets are stored sealed with it. "
    "Set it (sendline providers new-key makes one) and restart Sendline."
)


def _id(ref: str, what: str) -> int:
    number = parse_id(ref)
    if number is None:
        raise NotFound(f"no {what} {ref[:40]!r} in this account")
    return number


def _short(form: Form, name: str, limit: int = MAX_SHORT) -> str | None:
    """A typed value, None when empty; too long or with control characters: refused."""
    value = form.get(name).strip()
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters", field=name)
    if any(ord(c) < 32 and c not in "\t\r\n" or ord(c) == 127 for c in value):
        raise InvalidInput("must not hold control characters", field=name)
    return value or None


def _position(form: Form) -> int | None:
    text = _short(form, "position", 10)
    if text is None:
        return None
    number = parse_id(text)
    if number is None or number > MAX_POSITION:
        raise InvalidInput(
            "the position must be a whole number (1 is tried first)", field="position"
        )
    return number


def _secrets(form: Form) -> dict[str, str]:
    """`NAME=value` lines, as `providers add ... --secret NAME=value`."""
    found: dict[str, str] = {}
    for line in form.get("secrets").splitlines():
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip() or len(line) > 4096 or len(found) >= 32:
            raise InvalidInput("give one NAME=value per line (at most 32)", field="secrets")
        found[name.strip()] = value.strip()
    return found


def provider_fields(form: Form) -> tuple[TwilioFields | HttpFields, dict[str, Any]]:
    """The provider's fields and `add_provider`'s options, as typed."""
    options = {
        "label": _short(form, "label", MAX_LABEL),
        "position": _position(form),
        "carrier_confirms_optout": {"yes": True, "no": False}.get(form.get("confirms")),
    }
    sender = _short(form, "from_number", 32)
    if form.get("kind") == "http":
        config = form.get("config")
        if len(config) > MAX_CONFIG:
            raise InvalidInput(f"at most {MAX_CONFIG} characters", field="config")
        return HttpFields(config, _secrets(form), sender), options
    if form.get("kind") != "twilio":
        raise InvalidInput("choose Twilio or an HTTP gateway", field="kind")
    token = form.get("auth_token").strip()
    if len(token) > MAX_SHORT:
        raise InvalidInput("the auth token is 32 hex digits", field="auth_token")
    sid = _short(form, "account_sid") or ""
    return TwilioFields(sid, token, sender, _short(form, "messaging_service_sid")), options


RESUBMITTED = "this key was already created; reloading does not show it again"


def _issued(form: Form) -> datetime | None:
    """When the create-key form was shown (its hidden `issued` field), None if absent or
    not a time: a page made before this field, or an edited form (no check then)."""
    try:
        issued = datetime.fromisoformat(form.get("issued")[:40])
    except ValueError:
        return None
    return issued if issued.tzinfo else issued.replace(tzinfo=UTC)


def resubmitted(keys: list[api_keys.ApiKeyView], name: str, issued: datetime | None) -> bool:
    """A key of this name made since the form was shown: the browser is sending the same
    form again (a reload of the page showing the key), not a new request. Nothing is
    stored for this, so it holds across processes and however late the reload comes."""
    if issued is None:
        return False
    for key in keys:
        made = key.created_at if key.created_at.tzinfo else key.created_at.replace(tzinfo=UTC)
        if key.name == name and made >= issued:
            return True
    return False


def router(web: Web) -> APIRouter:
    pages = APIRouter()
    User = Annotated[WebUser, Depends(web.user)]

    # -- providers ---------------------------------------------------------------------

    def provider_page(
        request: Request, user: WebUser, form: Form | None = None, status: int = 200
    ) -> HTMLResponse:
        listed = providers.list_providers(web.sessions, user.account_id)
        return web.render(
            request,
            "settings_providers.html",
            user,
            status_code=status,
            active="settings",
            tab="providers",
            listed=listed.providers,
            form=form or Form(values={"kind": "twilio"}),
            has_key=bool(web.settings.secret_keys),
            public_url=web.settings.public_url,
            confirms=CONFIRMS,
            done=request.query_params.get("done", ""),
        )

    @pages.get(SETTINGS + "/providers", response_class=HTMLResponse)
    def provider_list(request: Request, user: User) -> HTMLResponse:
        return provider_page(request, user)

    @pages.post(SETTINGS + "/providers", response_model=None)
    def provider_add(
        request: Request, user: User, form: Annotated[Form, Depends(web.form)]
    ) -> HTMLResponse | RedirectResponse:
        try:
            fields, options = provider_fields(form)
            providers.add_provider(web.sessions, web.settings, user.account_id, fields, **options)
        except SendlineError as exc:
            form.fail(exc)
            return provider_page(request, user, form, 400)
        return RedirectResponse(SETTINGS + "/providers?done=added", status_code=303)

    @pages.post(SETTINGS + "/providers/{ref}/{action}", response_model=None)
    def provider_change(
        request: Request,
        user: User,
        ref: str,
        action: str,
        form: Annotated[Form, Depends(web.form)],
    ) -> HTMLResponse | RedirectResponse:
        ref = str(_id(ref, "provider"))
        try:
            if action == "remove":
                providers.remove_provider(web.sessions, user.account_id, ref)
            elif action == "move":
                where = _position(form)
                if where is None:
                    raise InvalidInput("give the new position", field="position")
                providers.move_provider(web.sessions, user.account_id, ref, where)
            else:
                raise NotFound("there is no such page")
        except NotFound:
            raise
        except SendlineError as exc:
            shown = Form(values={"kind": "twilio"})
            shown.errors["_form"] = exc.message
            return provider_page(
                request, user, shown, 400 if status_of(exc) == 422 else status_of(exc)
            )
        return RedirectResponse(SETTINGS + f"/providers?done={action}", status_code=303)

    # -- API keys ----------------------------------------------------------------------

    def key_page(
        request: Request, user: WebUser, form: Form | None = None, **context: Any
    ) -> HTMLResponse:
        keys = api_keys.key_page(web.sessions, user.account_id, limit=100, before_id=None)
        status = 400 if form is not None and not form.ok else 200
        return web.render(
            request,
            "settings_keys.html",
            user,
            status_code=status,
            active="settings",
            tab="keys",
            keys=keys,
            issued=datetime.now(UTC).isoformat(),
            form=form,
            revoked=request.query_params.get("revoked") == "1",
            **context,
        )

    @pages.get(SETTINGS + "/keys", response_class=HTMLResponse)
    def key_list(request: Request, user: User) -> HTMLResponse:
        return key_page(request, user)

    @pages.post(SETTINGS + "/keys", response_class=HTMLResponse)
    def key_create(
        request: Request, user: User, form: Annotated[Form, Depends(web.form)]
    ) -> HTMLResponse:
        try:
            name = _short(form, "name", api_keys.MAX_NAME) or ""
            keys = api_keys.key_page(web.sessions, user.account_id, limit=100, before_id=None)
            if resubmitted(keys, name, _issued(form)):
                raise InvalidInput(RESUBMITTED)
            created = api_keys.create_key(web.sessions, user.account_id, name)
        except SendlineError as exc:
            form.fail(exc, "name")
            return key_page(request, user, form)
        page = key_page(request, user, created=created)
        page.headers.update(NO_STORE)
        return page

    @pages.post(SETTINGS + "/keys/{ref}/revoke")
    def key_revoke(user: User, ref: str) -> RedirectResponse:
        api_keys.revoke_account_key(web.sessions, user.account_id, _id(ref, "API key"))
        return RedirectResponse(SETTINGS + "/keys?revoked=1", status_code=303)

    # -- webhooks ----------------------------------------------------------------------

    def hook_page(
        request: Request, user: WebUser, form: Form | None = None, **context: Any
    ) -> HTMLResponse:
        listed = webhooks.list_webhooks(web.sessions, user.account_id, limit=100)
        status = 400 if form is not None and not form.ok else 200
        return web.render(
            request,
            "settings_webhooks.html",
            user,
            status_code=status,
            active="settings",
            tab="webhooks",
            hooks=listed,
            form=form or Form(lists={"events": list(EVENT_KINDS)}),
            kinds=EVENT_KINDS,
            has_key=bool(web.settings.secret_keys),
            done=request.query_params.get("done", ""),
            **context,
        )

    @pages.get(SETTINGS + "/webhooks", response_class=HTMLResponse)
    def hook_list(request: Request, user: User) -> HTMLResponse:
        return hook_page(request, user)

    @pages.post(SETTINGS + "/webhooks", response_class=HTMLResponse)
    def hook_create(
        request: Request, user: User, form: Annotated[Form, Depends(web.form)]
    ) -> HTMLResponse:
        try:
            if not web.settings.secret_keys:  # the form is disabled; a stale page posts
                raise ConfigError(NO_KEY_FOR_WEBHOOKS)
            url = _short(form, "url", 2048) or ""
            created = webhooks.create_webhook(
                web.sessions, web.settings, user.account_id, url, form.getlist("events")
            )
        except ConfigError:
            form.errors["_form"] = NO_KEY_FOR_WEBHOOKS
            return hook_page(request, user, form)
        except SendlineError as exc:
            form.fail(exc)
            return hook_page(request, user, form)
        page = hook_page(request, user, created=created)
        page.headers.update(NO_STORE)
        return page

    def hook_detail(request: Request, user: WebUser, ref: str, **context: Any) -> HTMLResponse:
        hook = webhooks.get_webhook(web.sessions, user.account_id, _id(ref, "webhook"))
        deliveries = webhooks.list_deliveries(web.sessions, user.account_id, hook.id, limit=100)
        return web.render(
            request,
            "settings_webhook.html",
            user,
            active="settings",
            hook=hook,
            deliveries=deliveries,
            **context,
        )

    @pages.get(SETTINGS + "/webhooks/{ref}", response_class=HTMLResponse)
    def hook_show(request: Request, user: User, ref: str) -> HTMLResponse:
        return hook_detail(request, user, ref)

    @pages.post(SETTINGS + "/webhooks/{ref}/{action}", response_model=None)
    def hook_change(
        request: Request, user: User, ref: str, action: str
    ) -> HTMLResponse | RedirectResponse:
        number = _id(ref, "webhook")
        account = user.account_id
        if action == "rotate":
            try:
                created = webhooks.rotate_secret(web.sessions, web.settings, account, number)
            except NotFound:
                raise
            except ConfigError:
                return hook_detail(request, user, ref, error=NO_KEY_FOR_WEBHOOKS)
            except SendlineError as exc:
                return hook_detail(request, user, ref, error=exc.message)
            page = hook_detail(request, user, ref, created=created)
            page.headers.update(NO_STORE)
            return page
        if action == "delete":
            webhooks.delete_webhook(web.sessions, account, number)
            return RedirectResponse(SETTINGS + "/webhooks?done=deleted", status_code=303)
        if action not in ("enable", "disable"):
            raise NotFound("there is no such page")
        enabled = action == "enable"
        webhooks.update_webhook(web.sessions, web.settings, account, number, enabled=enabled)
        return RedirectResponse(SETTINGS + f"/webhooks/{number}", status_code=303)

    return pages
