"""The message check: every content rule (R9-R11, templates) composed for one body.

Used at save time (a template an automation step will send), by `sendline check
message`, and by the send pipeline on the rendered body. Violations block sending;
warnings explain costs (UCS-2 halves what a segment holds, and credits are charged per
segment, R3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sendline.sms.encoding import Encoding, SegmentInfo, segment_info
from sendline.sms.links import ShortenerList, shortener_links
from sendline.sms.lookalikes import gsm_suggestion
from sendline.sms.optout import DEFAULT_CLAUSE, InvalidClause, clause_problem, has_optout_clause
from sendline.sms.templates import find_tags, unknown_tags

MAX_SEGMENTS_LIMIT = 10  # R9: accounts may allow up to 10 segments per message

# Per-segment capacity, single and concatenated (the 6-byte UDH eats the difference).
_CAPACITY = {Encoding.GSM7: (160, 153), Encoding.UCS2: (70, 67)}


@dataclass(frozen=True, slots=True)
class MessageRules:
    """An account's content settings. `shorteners` is required on purpose: a check that
    silently skipped R10 because nobody passed the list would be worse than none."""

    shorteners: ShortenerList
    clause: str = DEFAULT_CLAUSE
    max_segments: int = 1
    known_tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 1 <= self.max_segments <= MAX_SEGMENTS_LIMIT:
            raise ValueError(
                f"max_segments must be 1-{MAX_SEGMENTS_LIMIT}, not {self.max_segments}"
            )
        problem = clause_problem(self.clause)
        if problem is not None:
            raise InvalidClause(problem)


@dataclass(frozen=True, slots=True)
class Finding:
    """A violation or a warning: a stable `code` and a sentence for people."""

    code: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, **self.data}


@dataclass(frozen=True, slots=True)
class MessageCheck:
    encoding: Encoding
    segments: int
    characters: int
    violations: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    opt_out_clause: bool
    sent_body: str
    sent_segments: int
    sent_characters: int
    ucs2_characters: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def violation_codes(self) -> tuple[str, ...]:
        return tuple(v.code for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding.value,
            "segments": self.segments,
            "characters": self.characters,
            "violations": [v.to_dict() for v in self.violations],
            "warnings": [w.to_dict() for w in self.warnings],
            "opt_out_clause": self.opt_out_clause,
            "sent_body": self.sent_body,
            "sent_segments": self.sent_segments,
            "sent_characters": self.sent_characters,
        }


def check_message(body: str, rules: MessageRules, *, rendered: bool = False) -> MessageCheck:
    """Check one body against the content rules.

    `rendered=True` for a body already personalized for one contact: a `%` in a
    contact's own value is text, not a tag, so tags are not looked for.
    """
    info = segment_info(body)
    has_clause = has_optout_clause(body)
    if has_clause:
        sent_body, sent = body, info
    else:
        sent_body = f"{body.rstrip()}\n{rules.clause}" if body.strip() else rules.clause
        sent = segment_info(sent_body)
    violations = _violations(body, sent, rules, rendered)
    warnings = _ucs2_warnings(body, info) if info.encoding is Encoding.UCS2 else ()
    if "%" in body and not rendered:
        warnings = (*warnings, *_tag_warnings(body))
    return MessageCheck(
        encoding=info.encoding,
        segments=info.segments,
        characters=info.characters,
        violations=violations,
        warnings=warnings,
        opt_out_clause=has_clause,
        sent_body=sent_body,
        sent_segments=sent.segments,
        sent_characters=sent.characters,
        ucs2_characters=info.ucs2_characters,
    )


def _violations(
    body: str, sent: SegmentInfo, rules: MessageRules, rendered: bool
) -> tuple[Finding, ...]:
    found: list[Finding] = []
    if not body.strip():
        found.append(Finding("empty", "the message has no text"))
    if "%" in body and not rendered:
        found.extend(_unknown_tags(body, rules.known_tags))
    for link in shortener_links(body, rules.shorteners):
        found.append(
            Finding(
                "public_shortener",
                f"{link.text} uses the public link shortener {link.host}; carriers filter "
                "these: use your own (branded) domain",
                {"link": link.text, "host": link.host},
            )
        )
    if sent.segments > rules.max_segments:
        found.append(_too_long(sent, rules.max_segments))
    return tuple(found)


def _too_long(sent: SegmentInfo, max_segments: int) -> Finding:
    single, multi = _CAPACITY[sent.encoding]
    limit = single if max_segments == 1 else multi * max_segments
    plural = "segment" if max_segments == 1 else "segments"
    return Finding(
        "too_long",
        f"with the opt-out clause the message is {sent.characters} {sent.encoding.value} "
        f"characters ({sent.segments} segments); the limit is {limit} "
        f"({max_segments} {plural})",
        {"characters": sent.characters, "limit": limit, "segments": sent.segments},
    )


def _unknown_tags(body: str, known_tags: frozenset[str]) -> list[Finding]:
    return [
        Finding("unknown_tag", f"%{name}% is not a field of this account", {"tag": name})
        for name in unknown_tags(body, known_tags)
    ]


def _ucs2_warnings(body: str, info: SegmentInfo) -> tuple[Finding, ...]:
    data: dict[str, Any] = {"characters": list(info.ucs2_characters)}
    detail = (
        f"{_quote_all(info.ucs2_characters)} force UCS-2: a segment holds 70 characters "
        "instead of 160"
    )
    suggestion = gsm_suggestion(body)
    if suggestion is not None:
        data["replacements"] = dict(suggestion.replacements)
        data["suggested_body"] = suggestion.suggested_body
        data["segments_saved"] = suggestion.segments_saved
        if suggestion.gsm7:
            detail += f"; replacing {_quote_all(c for c, _ in suggestion.replacements)} "
            detail += f"keeps it GSM-7 ({suggestion.segments_saved} segments saved)"
    return (Finding("ucs2_forced", detail, data),)


def _tag_warnings(body: str) -> tuple[Finding, ...]:
    if not find_tags(body):
        return ()
    return (
        Finding(
            "personalized",
            "the length depends on each contact's values; counted here as written",
        ),
    )


def _quote_all(chars: Iterable[str]) -> str:
    return ", ".join(repr(c) for c in chars)
