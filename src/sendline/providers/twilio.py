"""Twilio (and Twilio-compatible APIs), through the official `twilio` SDK.

One REST call per message (`window_size` 1): Twilio's Messages API takes one message
per request; concurrency is the dispatcher's business, and the SDK's sync client is
thread-safe for that (one pooled `requests` session, nothing shared per call but the
last response, which is kept per thread here).

Twilio's answers are mapped to the engine's outcomes here and nowhere else:
- 21610 (the recipient texted STOP to the carrier): permanent, and the contact opted
  out (R13); the other codes in `PERMANENT` (bad number, region not enabled, not
  reachable, ...) and any other 4xx refusal: permanent, retrying repeats the refusal;
- 429 / 20429, 5xx, 30001 (queue overflow), 30008 (unknown error), a refused
  connection and bad credentials (401: the operator fixes them, the queue waits):
  transient, with Twilio's Retry-After when it gives one;
- a timeout or a connection dropped after the request went out: `UnknownOutcome`.
  Twilio has no idempotency key, so such a message is never resent blindly: `lookup`
  searches Twilio's log for it (R17).

Twilio's message statuses are mapped to Sendline's in one place (`sendline_status`),
used by reconciliation here and by the status webhook (api/twilio_webhooks.py).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]
from urllib3.exceptions import NewConnectionError

from sendline.masking import mask_phone, mask_secret
from sendline.providers.base import (
    Accepted,
    OutboundSms,
    PermanentError,
    Provider,
    ProviderRecord,
    TransientError,
    UnknownOutcome,
)

log = logging.getLogger(__name__)

OPTED_OUT = 21610
PERMANENT = frozenset({21211, 21408, 21612, 21614, 30003, 30005, 30006, 30007})
TRANSIENT = frozenset({20429, 30001, 30008})
# Twilio's statuses -> Sendline's. Twilio holds a message through accepted, scheduled,
# queued and sending before the handset: to Sendline it is `sent` (handed over, billed).
# `read` (WhatsApp/RCS) implies delivered; `canceled` is a scheduled message Twilio
# never sent. Anything else (received, receiving: inbound) is no outbound status.
STATUSES: Mapping[str, str] = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "partially_delivered": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
# Reconciliation: how far back a lost message may be (its retry deadline is a day) and
# how many of the newest messages to one number are read. A full page of messages all
# within the window that holds no match cannot prove the message absent: unknown.
LOOKBACK = timedelta(days=2)
LOOKUP_LIMIT = 100
# Connections kept per host: the dispatcher calls from many threads at once; a smaller
# pool would open and close a connection per call past its size (and warn each time).
POOL_SIZE = 512

# The SDK logs every request's query parameters (a To number) at INFO: never ours.
_sdk_log = logging.getLogger("sendline.providers.twilio.http")
_sdk_log.setLevel(logging.WARNING)
# The SDK falls back to TWILIO_EDGE / TWILIO_REGION from the environment, which would
# rewrite the API's host name; an explicit, non-empty mapping without them keeps ours.
_NO_ENVIRONMENT = {"SENDLINE": "1"}


def sendline_status(twilio_status: str | None) -> str | None:
    """The Sendline status for a Twilio message status; None when it is none of ours."""
    return STATUSES.get((twilio_status or "").strip().lower())


class _HttpClient:
    """The SDK's own HTTP client, remembering each thread's last response: the SDK's
    exception drops the response headers, and a 429's Retry-After is in them."""

    is_async = False

    def __init__(self, api_url: str, timeout: float) -> None:
        # The environment's proxy and CA settings (HTTPS_PROXY, REQUESTS_CA_BUNDLE...)
        # are read once here: `requests` would scan the whole environment on every call,
        # a third of the client's CPU per message.
        proxies = requests.utils.get_environ_proxies(api_url)
        self._inner: Any = TwilioHttpClient(timeout=timeout, logger=_sdk_log, proxy=proxies)
        session = self._inner.session
        session.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        for prefix in ("http://", "https://"):
            session.mount(prefix, adapter)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._local.response = None
        response = self._inner.request(*args, **kwargs)
        self._local.response = response
        return response

    def last_headers(self) -> Mapping[str, str]:
        response = getattr(self._local, "response", None)
        headers: Mapping[str, str] = getattr(response, "headers", None) or {}
        return headers

    def close(self) -> None:
        self._inner.session.close()


class TwilioProvider(Provider):
    """Sends through one Twilio account, from a number or a Messaging Service."""

    window_size = 1

    def __init__(
        self,
        name: str,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None,
        messaging_service_sid: str | None,
        api_url: str,
        status_callback_url: str | None,
        timeout: float = 10.0,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError("a Twilio provider needs a from-number or a Messaging Service SID")
        self.name = name
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self._http = _HttpClient(api_url, timeout)
        client: Any = Client(
            account_sid, auth_token, http_client=self._http, environment=_NO_ENVIRONMENT
        )
        # Twilio's API or a compatible one (SENDLINE_TWILIO_API_URL, the tests' fake):
        # the SDK builds every Messages URL from its domain's base URL.
        client.api.base_url = api_url.rstrip("/")
        self._messages: Any = client.api.v2010.accounts(account_sid).messages

    def __repr__(self) -> str:
        sender = mask_phone(self.from_number) if self.from_number else "service"
        return f"<TwilioProvider {self.name} {mask_secret(self.account_sid)} {sender}>"

    def close(self) -> None:
        self._http.close()

    # -- sending -------------------------------------------------------------------

    def send(self, sms: OutboundSms) -> Accepted:
        params: dict[str, Any] = {"to": sms.to, "body": sms.body}
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            params["from_"] = self.from_number
        if self.status_callback_url:
            query = urlencode({"message_id": sms.message_id})
            params["status_callback"] = f"{self.status_callback_url}?{query}"
        try:
            message = self._messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._refusal(exc) from None
        except requests.RequestException as exc:
            raise _transport_outcome(exc) from None
        except (TwilioException, ValueError) as exc:  # an answer we cannot read
            raise UnknownOutcome("unreadable", f"Twilio's answer was unreadable: {exc}") from None
        sid = getattr(message, "sid", None)
        if not sid:
            raise UnknownOutcome("unreadable", "Twilio accepted the request without a SID")
        return Accepted(str(sid))

    def _refusal(self, exc: Any) -> PermanentError | TransientError:
        status = int(exc.status or 0)
        code = _int_or_none(exc.code) or status
        detail = _detail(exc)
        if code == OPTED_OUT:
            return PermanentError(str(code), detail, opted_out=True)
        if code in PERMANENT:
            return PermanentError(str(code), detail)
        if status == 429 or code in TRANSIENT or status >= 500 or status in (401, 408):
            return TransientError(str(code), detail, retry_after=self._retry_after())
        return PermanentError(str(code), detail)

    def _retry_after(self) -> float | None:
        raw = self._http.last_headers().get("Retry-After")
        if not raw:
            return None
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            return max(0.0, (parsedate_to_datetime(raw) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None

    # -- reconciliation (R17) --------------------------------------------------------

    def lookup(self, sms: OutboundSms) -> ProviderRecord | None:
        """Search Twilio's log for a message whose send had no known outcome.

        Twilio has no idempotency key: the message is looked for by To (and From when
        sending from a number), created within `LOOKBACK`, with the same body. The
        date is compared on `date_created`, not filtered on `DateSent`: a message still
        queued at Twilio has no DateSent yet, and a filter on it would call the message
        absent, so it would be sent twice."""
        filters: dict[str, Any] = {"to": sms.to, "limit": LOOKUP_LIMIT}
        if not self.messaging_service_sid:
            filters["from_"] = self.from_number
        try:
            found = self._messages.list(**filters)
        except (TwilioRestException, TwilioServiceException) as exc:
            code = str(exc.code or exc.status)
            raise UnknownOutcome(code, f"lookup failed: {_detail(exc)}") from None
        except (requests.RequestException, TwilioException, ValueError) as exc:
            raise UnknownOutcome("lookup_failed", f"lookup failed: {type(exc).__name__}") from None
        since = datetime.now(UTC) - LOOKBACK
        recent = [m for m in found if _created(m, since) >= since]
        for message in recent:
            if _same_body(getattr(message, "body", None), sms.body) and self._ours(message):
                status = sendline_status(getattr(message, "status", None)) or "sent"
                error = getattr(message, "error_code", None)
                return ProviderRecord(str(message.sid), status, str(error) if error else None)
        if len(found) >= LOOKUP_LIMIT and len(recent) == len(found):
            raise UnknownOutcome("lookup_inconclusive", "too many recent messages to tell")
        return None

    def _ours(self, message: Any) -> bool:
        if str(getattr(message, "direction", "outbound-api") or "").startswith("inbound"):
            return False
        if self.messaging_service_sid:
            return getattr(message, "messaging_service_sid", None) in (
                None,
                self.messaging_service_sid,
            )
        return True


def _transport_outcome(exc: requests.RequestException) -> TransientError | UnknownOutcome:
    """A failure below HTTP: transient when the request surely never left (the
    connection was refused or never made), unknown otherwise (it may have landed)."""
    if isinstance(exc, requests.ConnectTimeout):
        return TransientError("connect_timeout", "could not connect to Twilio in time")
    if isinstance(exc, requests.ConnectionError) and _refused(exc):
        return TransientError("connection_refused", "could not connect to Twilio")
    if isinstance(exc, requests.Timeout):
        return UnknownOutcome("timeout", "Twilio did not answer in time; the message may be sent")
    return UnknownOutcome(
        "connection_lost", f"the connection to Twilio failed: {type(exc).__name__}"
    )


def _refused(exc: BaseException) -> bool:
    # requests wraps urllib3's MaxRetryError, whose `reason` says what happened; a
    # NewConnectionError (refused, no route, DNS) means no byte of the request went out.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            return True
        reason = getattr(current, "reason", None)
        args = current.args
        nested = reason if isinstance(reason, BaseException) else None
        if nested is None and args and isinstance(args[0], BaseException):
            nested = args[0]
        current = nested
    return False


_PHONE = re.compile(r"\+?\d[\d\- ]{6,17}\d")


def _detail(exc: Any) -> str:
    """Twilio's words for a refusal, fit for a log line and `messages.detail`: its
    messages quote the To number in full ("The 'To' number +1... is not valid")."""
    text = str(getattr(exc, "msg", None) or getattr(exc, "detail", None) or "")
    text = text.replace(str(getattr(exc, "uri", "") or "\0"), "")
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text).strip()[:300]


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _created(message: Any, unknown: datetime) -> datetime:
    """When Twilio created the message (`unknown` when it does not say)."""
    value = getattr(message, "date_created", None)
    return value if isinstance(value, datetime) else unknown


def _same_body(theirs: object, ours: str) -> bool:
    if not isinstance(theirs, str):
        return False
    return (
        theirs == ours or theirs.replace("\r\n", "\n").strip() == ours.replace("\r\n", "\n").strip()
    )


# -- wiring: a ProviderConfig row (kind "twilio") ------------------------------------

# Where Twilio calls Sendline back (the webhooks in api/twilio_webhooks.py), under
# SENDLINE_PUBLIC_URL.
STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"
# A twilio row's non-secret `settings` keys, and its sealed secret's key.
ACCOUNT_SID = "account_sid"
FROM_NUMBER = "from_number"
MESSAGING_SERVICE_SID = "messaging_service_sid"
AUTH_TOKEN = "auth_token"


def provider_name(config_id: int) -> str:
    """`messages.provider` of what a config sends (`twilio:<id>`)."""
    return f"twilio:{config_id}"


def build_twilio(
    config_id: int,
    settings: Mapping[str, Any],
    secrets: Mapping[str, str],
    *,
    api_url: str,
    public_url: str | None,
    sender_number: str | None = None,
    timeout: float = 10.0,
) -> TwilioProvider:
    """The provider a `provider_configs` row describes (its secret already opened).
    Without a public URL Twilio has nowhere to report statuses: none are asked for."""
    service = settings.get(MESSAGING_SERVICE_SID) or None
    return TwilioProvider(
        provider_name(config_id),
        account_sid=str(settings[ACCOUNT_SID]),
        auth_token=secrets[AUTH_TOKEN],
        from_number=(settings.get(FROM_NUMBER) or sender_number) if not service else None,
        messaging_service_sid=str(service) if service else None,
        api_url=api_url,
        status_callback_url=f"{public_url}{STATUS_PATH}" if public_url else None,
        timeout=timeout,
    )
