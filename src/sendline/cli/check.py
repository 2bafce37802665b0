"""`sendline check message|phone|reply`: the rule core from the command line.

Readable by default, `--json` for one object, `--jsonl` to lint a stream (one JSON
string per input line, one JSON object per output line, in order). A bad line gets an
`{"error": ...}` line and the run goes on; only usage errors exit non-zero (or
violations, when `--strict` asks for it, so templates can be linted in CI).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sendline.cli.common import console, usage_error
from sendline.cli.db import guarded
from sendline.shortener_files import shorteners
from sendline.sms.check import MessageCheck, MessageRules, check_message
from sendline.sms.optout import DEFAULT_CLAUSE, classify_reply
from sendline.sms.phone import PhoneCheck, check_phone

app = typer.Typer(
    help="Check a message, a phone number or an inbound reply against the rules.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
JsonlOpt = Annotated[
    bool, typer.Option("--jsonl", help="Read one JSON string per stdin line; write JSON lines.")
]

_PHONE_EXPLAINED = {
    "ok": "can receive SMS",
    "no_phone": "the default phone field is empty",
    "invalid_phone": "not a valid number: non-US numbers need +country code (E.164); "
    "US numbers need the area code",
    "landline": "a fixed line: it cannot receive SMS",
}
_REPLY_EXPLAINED = {
    "opt_out": "opt-out keyword: the contact is opted out at once, one confirmation reply",
    "opt_in": "opt-in keyword: the contact is opted back in",
    "help": "help keyword: the account's help text is sent",
    "review": "looks like a free-text revocation: flagged for review",
    "none": "an ordinary reply",
}


@app.command("message")
@guarded
def message_command(
    body: Annotated[str | None, typer.Argument(help="The message text.")] = None,
    as_json: JsonOpt = False,
    jsonl: JsonlOpt = False,
    max_segments: Annotated[
        int, typer.Option(min=1, max=10, help="Segments allowed per message (R9).")
    ] = 1,
    clause: Annotated[str, typer.Option(help="Opt-out clause appended when missing.")] = (
        DEFAULT_CLAUSE
    ),
    field: Annotated[
        list[str] | None, typer.Option(help="A custom field the template may use.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when a message has violations.")] = False,
) -> None:
    """Check a message body: encoding, segments, links, opt-out clause, tags."""
    try:
        rules = MessageRules(
            shorteners=shorteners(_shortener_file()),
            clause=clause,
            max_segments=max_segments,
            known_tags=frozenset(field or ()),
        )
    except ValueError as exc:
        raise usage_error(str(exc)) from exc
    failed = False

    def one(text: str) -> MessageCheck:
        nonlocal failed
        result = check_message(text, rules)
        failed = failed or not result.ok
        return result

    _dispatch(body, as_json, jsonl, lambda t: one(t).to_dict(), lambda t: _show_message(t, one(t)))
    if strict and failed:
        raise typer.Exit(1)


@app.command("phone")
@guarded
def phone_command(
    number: Annotated[str | None, typer.Argument(help="The phone number as stored.")] = None,
    as_json: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Check a phone number the way the send pipeline reads it (R6-R8)."""
    _dispatch(number, as_json, jsonl, lambda t: _phone_dict(check_phone(t)), _show_phone)


@app.command("reply")
@guarded
def reply_command(
    body: Annotated[str | None, typer.Argument(help="The inbound message text.")] = None,
    as_json: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """Classify an inbound reply: opt_out, opt_in, help, review or none (R12)."""
    _dispatch(body, as_json, jsonl, lambda t: {"action": classify_reply(t).value}, _show_reply)


def _dispatch(
    value: str | None,
    as_json: bool,
    jsonl: bool,
    to_dict: Callable[[str], dict[str, Any]],
    show: Callable[[str], None],
) -> None:
    if jsonl:
        if value is not None:
            raise usage_error("give either an argument or --jsonl (stdin), not both")
        for line in _jsonl_results(sys.stdin.buffer, to_dict):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        return
    if value is None:
        raise usage_error("missing argument (or use --jsonl to read stdin)")
    if as_json:
        sys.stdout.write(_dumps(to_dict(value)) + "\n")
    else:
        show(value)


def _jsonl_results(stream: Any, to_dict: Callable[[str], dict[str, Any]]) -> Iterator[str]:
    for number, raw in enumerate(stream, start=1):
        try:
            text = _parse_line(raw)
        except ValueError as exc:
            yield _dumps({"error": f"line {number}: {exc}"})
            continue
        yield _dumps(to_dict(text))


def _parse_line(raw: bytes) -> str:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start})") from None
    if not line.strip():
        raise ValueError("empty line; expected a JSON string")
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, str):
        raise ValueError(f"expected a JSON string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the string contains a lone surrogate (\\ud800-\\udfff)") from None
    return value


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _phone_dict(result: PhoneCheck) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "e164": result.e164,
        "region": result.region,
        "type": result.number_type,
    }


def _shortener_file() -> Any:
    from sendline.config import load_settings  # noqa: PLC0415 - settings only when needed

    return load_settings().shorteners_file


def _show_message(body: str, result: MessageCheck) -> None:
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_row("body", _highlight(body, set(result.ucs2_characters)))
    table.add_row("encoding", result.encoding.value)
    table.add_row("segments", f"{result.segments} ({result.characters} characters)")
    clause = "present" if result.opt_out_clause else "missing: appended when sent"
    table.add_row("opt-out clause", clause)
    table.add_row("sent as", Text(result.sent_body))
    table.add_row("sent segments", f"{result.sent_segments} ({result.sent_characters} characters)")
    console.print(table)
    for violation in result.violations:
        console.print(Text(f"✗ {violation.code}: {violation.detail}", style="bold red"))
    for warning in result.warnings:
        console.print(Text(f"! {warning.code}: {warning.detail}", style="yellow"))
    if result.ok:
        console.print(Text("✓ ready to send", style="green"))


def _highlight(body: str, ucs2: set[str]) -> Text:
    text = Text()
    for char in body:
        text.append(char, style="black on yellow" if char in ucs2 else "")
    return text


def _show_phone(number: str) -> None:
    result = check_phone(number)
    style = "green" if result.ok else "bold red"
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_row("status", Text(result.status.value, style=style))
    table.add_row("meaning", _PHONE_EXPLAINED[result.status.value])
    table.add_row("e164", result.e164 or "-")
    table.add_row("region", result.region or "-")
    table.add_row("type", result.number_type or "-")
    console.print(table)


def _show_reply(body: str) -> None:
    action = classify_reply(body).value
    console.print(Text(action, style="bold"), _REPLY_EXPLAINED[action])
