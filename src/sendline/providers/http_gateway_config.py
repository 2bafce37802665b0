"""The generic HTTP gateway's configuration: a YAML file, checked strictly.

Any SMS gateway with an HTTP API is described, not coded: the request to send (URL,
method, headers, a JSON or form body with placeholders), where its answer holds the
message id and the error code (JSON Pointers), which codes and HTTP statuses are
permanent, how to look a message up, and how its webhooks are signed and read. The
format, with a complete example, is in docs/providers.md.

Strict because a gateway config is written by hand and sends real texts: a missing or
malformed field, or an unknown key (almost always a typo that would silently fall back
to a default), is refused with an `InvalidInput` naming the field
(`response.id_pointer: must be a JSON Pointer such as /message/id`).

Secrets never sit in the YAML (it is stored and shown as settings, in clear): a header,
URL or body names one (`Bearer ${secret:api_key}`), `secret_names` lists them so the CLI
can ask for them, and they are stored sealed (`store.secret_box`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from sendline.errors import InvalidInput
from sendline.providers.json_pointer import check_pointer

# What a send template may say; `from` and `status_callback_url` may be absent (no
# sender number, no SENDLINE_PUBLIC_URL): see `render`.
SEND_FIELDS = ("to", "from", "body", "message_id", "status_callback_url")
# A lookup happens when the send's outcome is unknown: the gateway's id is not known
# then, only what Sendline sent (its message id as a reference, the numbers).
LOOKUP_FIELDS = ("to", "from", "message_id")
OPTIONAL_FIELDS = frozenset({"from", "status_callback_url"})
MAX_YAML = 64 * 1024

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
SECRET_NAME = re.compile(r"secret:([A-Za-z_][A-Za-z0-9_]{0,63})")
SECRET_REF = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]{0,63})\}")

Pointer = Annotated[str, AfterValidator(check_pointer)]
SendlineStatus = Literal["sent", "delivered", "undelivered", "failed"]


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL such as https://sms.example.com/send")
    if "${" in parts.netloc:
        raise ValueError("the host cannot be a placeholder")
    return value.strip()


def _header_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ValueError("must be an HTTP header name such as X-Signature")
    return value


def _secret_ref(value: str) -> str:
    if not SECRET_REF.fullmatch(value.strip()):
        raise ValueError("must name a secret, such as ${secret:webhook_secret}")
    return value.strip()


def _codes(value: Any) -> Any:
    """Error codes as text: YAML reads `21211` as a number, the answer may hold either."""
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


def _status_keys(value: Any) -> Any:
    """Gateway statuses as text (some are numbers: `1: delivered`)."""
    if isinstance(value, dict):
        return {
            str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
            for k, v in value.items()
        }
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
HeaderName = Annotated[str, AfterValidator(_header_name)]
SecretRef = Annotated[str, AfterValidator(_secret_ref)]
Codes = Annotated[tuple[str, ...], BeforeValidator(_codes)]
StatusMap = Annotated[dict[str, SendlineStatus], BeforeValidator(_status_keys)]
HttpStatus = Annotated[int, Field(ge=100, le=599)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class RequestSpec(_Strict):
    """The send: one HTTP request per message."""

    url: HttpUrl
    method: Literal["POST", "PUT", "PATCH", "GET"] = "POST"
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    form: dict[str, str] | None = None

    @model_validator(mode="after")
    def check_one_body(self) -> RequestSpec:
        if self.json_body is not None and self.form is not None:
            raise ValueError("give a json or a form body, not both")
        if self.method != "GET" and self.json_body is None and self.form is None:
            raise ValueError(f"a {self.method} needs a json or a form body template")
        if self.json_body is not None and not isinstance(self.json_body, dict | list):
            raise ValueError("json must be a mapping or a list (the body template)")
        return self


class ResponseSpec(_Strict):
    """Reading the send's answer, and which refusals are final."""

    id_pointer: Pointer
    error_pointer: Pointer | None = None
    permanent_errors: Codes = ()
    transient_errors: Codes = ()
    # The refusal says the recipient opted out with the carrier (R13): recorded as such.
    opt_out_errors: Codes = ()
    # Overrides of the default: 408 and 429 transient, other 4xx permanent, 5xx transient.
    permanent_statuses: list[HttpStatus] = Field(default_factory=list)
    transient_statuses: list[HttpStatus] = Field(default_factory=list)


class LookupSpec(_Strict):
    """Finding a message whose send had no known outcome (R17 reconciliation)."""

    url: HttpUrl
    method: Literal["GET", "POST"] = "GET"
    headers: dict[HeaderName, str] | None = None  # None: the send's headers
    id_pointer: Pointer
    status_pointer: Pointer
    status_map: StatusMap = Field(default_factory=dict)
    error_pointer: Pointer | None = None
    not_found_statuses: list[HttpStatus] = Field(default_factory=lambda: [404])


class StatusHook(_Strict):
    id_pointer: Pointer
    status_pointer: Pointer
    status_map: StatusMap = Field(default_factory=dict)
    error_pointer: Pointer | None = None
    # Where the report echoes `${message_id}`: it settles a message whose send had no
    # known outcome (no gateway id stored yet) when there is no lookup.
    reference_pointer: Pointer | None = None


class InboundHook(_Strict):
    from_pointer: Pointer
    body_pointer: Pointer
    to_pointer: Pointer | None = None
    id_pointer: Pointer | None = None


class WebhookSpec(_Strict):
    """The gateway's webhooks, signed with HMAC-SHA256 over the raw body (prefixed with
    the timestamp and a dot when a timestamp header is configured)."""

    signature_header: HeaderName
    secret: SecretRef
    signature_encoding: Literal["hex", "base64"] = "hex"
    signature_prefix: str = ""  # e.g. "sha256=" before the digest
    timestamp_header: HeaderName | None = None
    max_age: int = Field(default=300, ge=1, le=86_400)  # seconds, the replay window
    format: Literal["json", "form"] = "json"
    status: StatusHook | None = None
    inbound: InboundHook | None = None

    @model_validator(mode="after")
    def check_some_hook(self) -> WebhookSpec:
        if self.status is None and self.inbound is None:
            raise ValueError("configure status, inbound or both")
        return self

    @property
    def secret_name(self) -> str:
        match = SECRET_REF.fullmatch(self.secret)
        assert match is not None  # checked by _secret_ref
        return match.group(1)


class GatewayConfig(_Strict):
    """A generic HTTP gateway, as its YAML describes it."""

    request: RequestSpec
    response: ResponseSpec
    lookup: LookupSpec | None = None
    webhooks: WebhookSpec | None = None

    @model_validator(mode="after")
    def check_placeholders(self) -> GatewayConfig:
        for where, text in _send_templates(self):
            _check_placeholders(where, text, SEND_FIELDS)
        if self.lookup is not None:
            for where, text in _lookup_templates(self.lookup):
                _check_placeholders(where, text, LOOKUP_FIELDS)
        return self

    @classmethod
    def parse(cls, text: str) -> GatewayConfig:
        """The config in `text` (YAML or JSON); InvalidInput naming each bad field."""
        if len(text) > MAX_YAML:
            raise InvalidInput(f"a gateway config is at most {MAX_YAML // 1024} KiB")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"the gateway config is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput(
                "a gateway config is a mapping with request, response and optionally "
                "lookup and webhooks (see docs/providers.md)"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput("; ".join(_describe(exc))) from None

    @property
    def secret_names(self) -> tuple[str, ...]:
        """The secrets this config refers to, in order of first mention: what the CLI
        asks for and the provider must be given."""
        found: dict[str, None] = {}
        texts = [text for _, text in _send_templates(self)]
        if self.lookup is not None:
            texts += [text for _, text in _lookup_templates(self.lookup)]
        if self.webhooks is not None:
            texts.append(self.webhooks.secret)
        for text in texts:
            for name in SECRET_REF.findall(text):
                found.setdefault(name, None)
        return tuple(found)


def _describe(exc: ValidationError) -> list[str]:
    """One `field.path: what is wrong` per error, in the config's own words."""
    lines = []
    for error in exc.errors()[:8]:
        path = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
        kind = error["type"]
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "unknown key (check its spelling in docs/providers.md)"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a template (keys are literal), with where it sits."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}.{index}")


def _send_templates(config: GatewayConfig) -> Iterator[tuple[str, str]]:
    request = config.request
    yield "request.url", request.url
    yield from _strings(dict(request.headers), "request.headers")
    if request.json_body is not None:
        yield from _strings(request.json_body, "request.json")
    if request.form is not None:
        yield from _strings(dict(request.form), "request.form")


def _lookup_templates(lookup: LookupSpec) -> Iterator[tuple[str, str]]:
    yield "lookup.url", lookup.url
    yield from _strings(dict(lookup.headers or {}), "lookup.headers")


def _check_placeholders(where: str, text: str, fields: tuple[str, ...]) -> None:
    for name in PLACEHOLDER.findall(text):
        if name in fields or SECRET_NAME.fullmatch(name):
            continue
        known = ", ".join(f"${{{field}}}" for field in fields)
        raise ValueError(
            f"{where}: unknown placeholder ${{{name}}} (known: {known}, ${{secret:NAME}})"
        )


def render(
    template: str,
    values: Mapping[str, str | None],
    secrets: Mapping[str, str],
    *,
    in_url: bool = False,
) -> str:
    """`template` with its placeholders filled; an absent value is empty. In a URL the
    values are percent-encoded (a body with `&` must not end the query parameter)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("secret:"):
            value: str | None = secrets[name.removeprefix("secret:")]
        else:
            value = values.get(name)
        text = value or ""
        return quote(text, safe="") if in_url else text

    return PLACEHOLDER.sub(fill, template)


def render_body(template: Any, values: Mapping[str, str | None], secrets: Mapping[str, str]) -> Any:
    """A JSON body template filled in. A field whose whole value is an absent optional
    placeholder (`from: ${from}` without a sender) is left out rather than sent empty:
    gateways default a missing field, they reject an empty one."""
    if isinstance(template, str):
        return render(template, values, secrets)
    if isinstance(template, dict):
        return {
            key: render_body(item, values, secrets)
            for key, item in template.items()
            if not _absent(item, values)
        }
    if isinstance(template, list):
        return [render_body(item, values, secrets) for item in template]
    return template


def _absent(item: Any, values: Mapping[str, str | None]) -> bool:
    if not isinstance(item, str):
        return False
    match = PLACEHOLDER.fullmatch(item)
    return (
        match is not None and match.group(1) in OPTIONAL_FIELDS and not values.get(match.group(1))
    )
