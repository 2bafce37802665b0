"""What a provider's row holds, checked from what a user typed (issue 13).

`prepare_twilio` and `prepare_http` turn the fields of `providers add` into a
`Prepared` row: one error naming the field when anything is wrong (InvalidInput with a
field-specific code), never echoing a secret, and a phone number only masked. The keys
of a row's `settings` JSON are written here and read by `providers.directory`:
twilio: `account_sid`, `from_number`, `messaging_service_sid` (the auth token is the
sealed secret `auth_token`); http: `config` (the gateway's YAML; its secrets sealed by
the names it refers to).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sendline.errors import InvalidInput
from sendline.masking import mask_phone, mask_secret
from sendline.providers.http_gateway import GatewayConfig, gateway_settings
from sendline.sms.phone import check_phone

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_AUTH_TOKEN = re.compile(r"[0-9a-fA-F]{32}")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_LABEL = 100  # the column's width
MAX_CONFIG = 64 * 1024  # a gateway's YAML is a page, not a file to fill the database


@dataclass(frozen=True)
class TwilioFields:
    """`providers add ACCOUNT twilio`: a From number or a Messaging Service, not both."""

    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True)
class HttpFields:
    """`providers add ACCOUNT http`: the gateway's YAML and the secrets it references.
    `from_number`: the number texts are sent from, which inbound texts are addressed to."""

    config: str
    secrets: Mapping[str, str] = field(default_factory=dict)
    from_number: str | None = None


@dataclass(frozen=True)
class Prepared:
    """A provider's row before it is stored: what its fields became once checked."""

    kind: str
    settings: dict[str, Any]
    secrets: dict[str, str]
    sender_number: str | None
    label: str
    confirms_optout: bool


def prepare_twilio(fields: TwilioFields) -> Prepared:
    sid = fields.account_sid.strip()
    if not _ACCOUNT_SID.fullmatch(sid):
        raise InvalidInput(
            f"the Account SID must be AC followed by 32 hex digits, not {mask_secret(sid)}",
            code="invalid_account_sid",
        )
    token = fields.auth_token.strip()
    if not _AUTH_TOKEN.fullmatch(token):
        # Never echoed, not even masked: a mistyped token is most of a real one.
        raise InvalidInput(
            f"the auth token must be 32 hex digits (the one given has {len(token)} characters)",
            code="invalid_auth_token",
        )
    if (fields.from_number is None) == (fields.messaging_service_sid is None):
        raise InvalidInput(
            "give exactly one of a from-number (--from) and a Messaging Service SID "
            "(--messaging-service-sid)",
            code="invalid_sender",
        )
    service = fields.messaging_service_sid
    service = service.strip() if service is not None else None
    if service is not None and not _SERVICE_SID.fullmatch(service):
        raise InvalidInput(
            "the Messaging Service SID must be MG followed by 32 hex digits, "
            f"not {mask_secret(service)}",
            code="invalid_messaging_service_sid",
        )
    sender = _sender(fields.from_number)
    return Prepared(
        kind="twilio",
        settings={"account_sid": sid, "from_number": sender, "messaging_service_sid": service},
        secrets={"auth_token": token},
        sender_number=sender,
        label=f"Twilio {mask_phone(sender) if sender else mask_secret(service)}",
        # Twilio answers STOP itself on long codes and toll-free numbers (its default
        # opt-out handling): Sendline then sends no second confirmation (R12).
        confirms_optout=True,
    )


def prepare_http(fields: HttpFields) -> Prepared:
    if len(fields.config) > MAX_CONFIG:
        raise InvalidInput(
            f"the gateway config is over {MAX_CONFIG // 1024} KB", code="invalid_config"
        )
    # The YAML is the gateway's own to check (GatewayConfig.parse raises InvalidInput
    # naming the field); `secret_names` are the secrets the config refers to.
    config = GatewayConfig.parse(fields.config)
    wanted = {str(name) for name in config.secret_names}
    given = {name.strip(): value for name, value in fields.secrets.items()}
    for name, value in given.items():
        if not _SECRET_NAME.fullmatch(name) or not value:
            raise InvalidInput(
                f"secret {name[:64]!r}: give it as --secret NAME=VALUE, NAME a word and "
                "VALUE not empty",
                code="invalid_secret",
            )
    missing, unknown = sorted(wanted - given.keys()), sorted(given.keys() - wanted)
    if missing:
        raise InvalidInput(
            f"the config refers to secret(s) not given: {', '.join(missing)} "
            "(add --secret NAME=VALUE)",
            code="missing_secret",
        )
    if unknown:
        raise InvalidInput(
            f"secret(s) the config never refers to: {', '.join(unknown)}",
            code="unknown_secret",
        )
    sender = _sender(fields.from_number) if fields.from_number is not None else None
    return Prepared(
        kind="http",
        settings=gateway_settings(fields.config),
        secrets=given,
        sender_number=sender,
        label=f"HTTP gateway {mask_phone(sender)}" if sender else "HTTP gateway",
        confirms_optout=False,
    )


def _sender(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = raw.strip()
    checked = check_phone(text)
    if not text.startswith("+"):  # a national form: which country would it be?
        what = "must be in E.164 form, + and the country code (+14155550100)"
    elif checked.status.value == "landline":
        what = "is a landline, which cannot send texts"
    elif not checked.ok or checked.e164 is None:
        what = "is not a valid number"
    else:
        return checked.e164
    raise InvalidInput(f"the from-number {mask_phone(text)} {what}", code="invalid_from_number")


def check_label(label: str) -> str:
    label = label.strip()
    if not label or len(label) > MAX_LABEL:
        raise InvalidInput(f"the label must be 1 to {MAX_LABEL} characters", code="invalid_label")
    return label


def check_position(position: int | None, last: int) -> int:
    if position is None:
        return last
    if not 1 <= position <= last:
        raise InvalidInput(
            f"the position must be from 1 to {last} (1 is tried first), not {position}",
            code="invalid_position",
        )
    return position
