"""The generic HTTP gateway: any SMS gateway with an HTTP API, configured in YAML.

The config (`http_gateway_config`, format in docs/providers.md) says how to send and
how to read the answer; this adapter turns the answer into the engine's outcomes:
- a 2xx with the gateway's id at `response.id_pointer`: `Accepted`;
- an error code (`response.error_pointer`) listed as permanent, transient or opt-out, or
  else the HTTP status: 408, 429 and 5xx transient (Retry-After honoured), other 4xx
  permanent (each overridable);
- a connection refused (or not made in time): transient, the request never left;
- a timeout or a connection dropped after the request went out, or a 2xx without an
  id: `UnknownOutcome`, reconciled with `lookup`, never blindly resent (R17).

Gateway ids are scoped by the provider's name (`http:7:abc123`): two gateways may both
number their messages 1, 2, 3, and `messages.provider_id` is unique. The status webhook
scopes the ids it reads the same way (`scoped_id`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sendline.config import Settings
from sendline.errors import ConfigError, InvalidInput
from sendline.providers.base import (
    Accepted,
    OutboundSms,
    PermanentError,
    Provider,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)
from sendline.providers.http_gateway_config import (
    GatewayConfig,
    LookupSpec,
    ResponseSpec,
    render,
    render_body,
)
from sendline.providers.json_pointer import scalar_at
from sendline.store.engine_models import ProviderConfig
from sendline.store.secret_box import SecretBox

MAX_PROVIDER_ID = 64  # messages.provider_id
CONFIG_KEY = "yaml"  # provider_configs.settings: {"yaml": the config as written}
STATUS_PATH = "/webhooks/http/{config_id}/status"
INBOUND_PATH = "/webhooks/http/{config_id}/inbound"
SENDLINE_STATUSES = frozenset({"sent", "delivered", "undelivered", "failed"})


def gateway_name(config_id: int) -> str:
    """The provider's name for the `provider_configs` row `config_id` (messages.provider)."""
    return f"http:{config_id}"


def scoped_id(name: str, raw: str) -> str:
    """The gateway's id for a message as Sendline stores it: unique across gateways, and
    within `messages.provider_id`'s 64 characters (a longer one is hashed, the same way
    by the adapter and the webhook)."""
    scoped = f"{name}:{raw}"
    if len(scoped) <= MAX_PROVIDER_ID:
        return scoped
    return f"{name}:#{hashlib.sha256(raw.encode()).hexdigest()[:40]}"


def gateway_settings(text: str) -> dict[str, Any]:
    """What `provider_configs.settings` holds for a gateway: its YAML, checked first."""
    GatewayConfig.parse(text)
    return {CONFIG_KEY: text}


def config_of(settings: Mapping[str, Any]) -> GatewayConfig:
    """The config stored in a `provider_configs.settings` (see `gateway_settings`)."""
    text = settings.get(CONFIG_KEY)
    if not isinstance(text, str):
        raise InvalidInput(f"this gateway's settings hold no {CONFIG_KEY!r} config")
    return GatewayConfig.parse(text)


def status_callback_url(public_url: str | None, config_id: int) -> str | None:
    """Where the gateway posts delivery reports, when Sendline has a public URL."""
    if public_url is None:
        return None
    return public_url.rstrip("/") + STATUS_PATH.format(config_id=config_id)


def gateway_from_row(
    row: ProviderConfig, settings: Settings, *, timeout: float = 10.0
) -> HttpGatewayProvider:
    """The provider a `provider_configs` row of kind http describes, its secrets opened
    with SENDLINE_SECRET_KEY, its status webhook under SENDLINE_PUBLIC_URL."""
    secrets = SecretBox(settings.secret_keys).open(row.secret) if row.secret else {}
    return HttpGatewayProvider(
        gateway_name(row.id),
        config=config_of(row.settings),
        secrets=secrets,
        status_callback_url=status_callback_url(settings.public_url, row.id),
        timeout=timeout,
    )


class HttpGatewayProvider(Provider):
    """One gateway, one HTTP call per message (window 1)."""

    window_size = 1

    def __init__(
        self,
        name: str,
        *,
        config: GatewayConfig,
        secrets: Mapping[str, str],
        status_callback_url: str | None,
        timeout: float = 10.0,
    ) -> None:
        missing = [key for key in config.secret_names if not secrets.get(key)]
        if missing:
            raise ConfigError(f"gateway {name} needs the secrets: {', '.join(missing)}")
        self.name = name
        self.config = config
        self._secrets = dict(secrets)
        self._callback = status_callback_url
        # No redirects: a gateway that moved must be reconfigured, not followed blindly
        # with our credentials.
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    # -- sending -------------------------------------------------------------------

    def send(self, sms: OutboundSms) -> Accepted:
        try:
            request = self._send_request(sms)
        except httpx.InvalidURL:
            raise PermanentError("bad_url", "request.url does not make a valid URL") from None
        response = self._call(request, sending=True)
        answer = _json(response)
        spec = self.config.response
        code = scalar_at(answer, spec.error_pointer)
        if response.is_success and code is None:
            raw = scalar_at(answer, spec.id_pointer)
            if raw is None:
                # It may well have the message: reconcile, never resend (R17).
                raise UnknownOutcome(
                    "no_id",
                    f"the gateway answered {response.status_code} without an id "
                    f"at {spec.id_pointer}",
                )
            return Accepted(scoped_id(self.name, raw))
        raise refusal(spec, response.status_code, code, _retry_after(response))

    def _values(self, sms: OutboundSms) -> dict[str, str | None]:
        return {
            "to": sms.to,
            "from": sms.sender,
            "body": sms.body,
            "message_id": str(sms.message_id),
            "status_callback_url": self._callback,
        }

    def _send_request(self, sms: OutboundSms) -> httpx.Request:
        spec = self.config.request
        values = self._values(sms)
        url = render(spec.url, values, self._secrets, in_url=True)
        headers = {k: render(v, values, self._secrets) for k, v in spec.headers.items()}
        if spec.json_body is not None:
            body = render_body(spec.json_body, values, self._secrets)
            return self._client.build_request(spec.method, url, headers=headers, json=body)
        if spec.form is not None:
            form = render_body(spec.form, values, self._secrets)
            return self._client.build_request(spec.method, url, headers=headers, data=form)
        return self._client.build_request(spec.method, url, headers=headers)

    def _call(self, request: httpx.Request, *, sending: bool) -> httpx.Response:
        """The exchange; transport failures as outcomes. Nothing of the request (URL,
        headers, body) goes into an error: they hold secrets and phone numbers."""
        try:
            return self._client.send(request)
        except httpx.TransportError as exc:
            if not sending:  # a lookup that failed tells nothing: still unknown
                raise UnknownOutcome(_kind(exc), _failure(exc, "lookup failed")) from None
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
                # The request never left: safe to send again later.
                raise TransientError("connect_failed", _failure(exc, "no connection")) from None
            if isinstance(exc, httpx.UnsupportedProtocol):
                raise PermanentError("bad_url", _failure(exc, "cannot call the URL")) from None
            raise UnknownOutcome(_kind(exc), _failure(exc, "sent, no answer")) from None

    # -- reconciliation ------------------------------------------------------------

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        spec = self.config.lookup
        if spec is None:
            # Nothing to ask: the message waits for its status webhook or the
            # unconfirmed deadline, and is never resent (R17).
            raise UnknownOutcome("no_lookup", "this gateway has no lookup configured")
        try:
            request = self._lookup_request(spec, sms)
        except httpx.InvalidURL:
            raise UnknownOutcome("bad_url", "lookup.url does not make a valid URL") from None
        response = self._call(request, sending=False)
        if response.status_code in spec.not_found_statuses:
            return None
        if not response.is_success:
            raise UnknownOutcome(f"http_{response.status_code}", "the lookup failed")
        answer = _json(response)
        raw = scalar_at(answer, spec.id_pointer)
        if raw is None:
            raise UnknownOutcome("no_id", f"the lookup's answer has no id at {spec.id_pointer}")
        status = mapped_status(scalar_at(answer, spec.status_pointer), spec.status_map)
        return ProviderRecord(
            provider_id=scoped_id(self.name, raw),
            status=status or "sent",  # it has the message, whatever it calls its state
            error_code=(scalar_at(answer, spec.error_pointer) or "")[:32] or None,
        )

    def _lookup_request(self, spec: LookupSpec, sms: OutboundSms) -> httpx.Request:
        values = self._values(sms)
        url = render(spec.url, values, self._secrets, in_url=True)
        templates = spec.headers if spec.headers is not None else self.config.request.headers
        headers = {k: render(v, values, self._secrets) for k, v in templates.items()}
        return self._client.build_request(spec.method, url, headers=headers)


def refusal(
    spec: ResponseSpec, status: int, code: str | None, retry_after: float | None
) -> PermanentError | TransientError:
    """The outcome of an answer that is no acceptance: by the gateway's error code when
    the config lists it, else by the HTTP status."""
    code = code[:32] if code else None  # messages.error_code
    label = code or f"http_{status}"
    detail = f"the gateway answered HTTP {status}" + (f" with error {code}" if code else "")
    if code is not None:
        if code in spec.opt_out_errors:
            return PermanentError(code, detail, opted_out=True)
        if code in spec.permanent_errors:
            return PermanentError(code, detail)
        if code in spec.transient_errors:
            return TransientError(code, detail, retry_after)
    if status in spec.transient_statuses:
        return TransientError(label, detail, retry_after)
    if status in spec.permanent_statuses or 200 <= status < 300:
        return PermanentError(label, detail)  # a 2xx with an error code: refused
    if status in (408, 429) or status >= 500:
        return TransientError(label, detail, retry_after)
    if 400 <= status < 500:
        return PermanentError(label, detail)
    # 1xx, 3xx: not an answer to a send; the request.url is likely wrong.
    return PermanentError(label, detail + " (check request.url: redirects are not followed)")


def mapped_status(raw: str | None, status_map: Mapping[str, str]) -> str | None:
    """A gateway's status in Sendline's words: by the map, or as is when it already is
    one of them; None when unknown (nothing to apply)."""
    if raw is None:
        return None
    status = status_map.get(raw, raw)
    return status if status in SENDLINE_STATUSES else None


def _json(response: httpx.Response) -> Any:
    """The answer's JSON document; None when it is not JSON (then only the status talks)."""
    try:
        return json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds: a number of seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _kind(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "connection_lost"


def _failure(exc: httpx.TransportError, what: str) -> str:
    # The exception's class says enough; its text may quote the URL (and a secret in it).
    return f"{what} ({type(exc).__name__})"


__all__ = [
    "GatewayConfig",
    "HttpGatewayProvider",
    "config_of",
    "gateway_from_row",
    "gateway_name",
    "gateway_settings",
    "mapped_status",
    "scoped_id",
    "status_callback_url",
]
