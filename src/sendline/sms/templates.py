"""Message templates: ActiveCampaign-style personalization tags.

`%FIRSTNAME%`, `%LASTNAME%`, `%EMAIL%`, `%PHONE%`, custom fields `%FIELD_NAME%` and event
payload values `%EVENT.ORDER_ID%`; `%FIRSTNAME|there%` falls back to "there" when the
value is empty or missing; `%%` is a literal `%`. Tag names match case-insensitively.

Marketing copy is full of per cents ("Get 20% off, 30% more"), so a `%` that does not
start a well-formed tag is plain text rather than an error: a tag name starts with a
letter right after the `%` and holds no spaces. A well-formed tag that names no known
field *is* an error, raised when the template is saved (compiled), because at send time
it would reach thousands of phones as "Hi %FRISTNAME%".

A template is compiled once into literal parts and slots; rendering is one join with no
re-scan, so it costs about a microsecond per message, and a value that itself contains
`%FIRSTNAME%` is sent as written, never expanded (no injection through contact data).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

STANDARD_TAGS: frozenset[str] = frozenset({"FIRSTNAME", "LASTNAME", "EMAIL", "PHONE"})

# `%%` first, so "100%%FIRSTNAME%" reads as "100%" + literal "FIRSTNAME%": left to right,
# an escaped per cent never opens a tag. The fallback runs to the next `%` on the same
# line; a tag never spans lines, so a stray `%` cannot swallow a paragraph.
_TOKEN = re.compile(
    r"%%|%(?P<name>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?:\|(?P<fallback>[^%\r\n]*))?%"
)
_NOT_TAG_CHAR = re.compile(r"[^A-Za-z0-9]+")
_WILDCARD = ".*"


class TemplateError(ValueError):
    """A template that cannot be sent; `code` is machine-readable, `tags` the culprits."""

    def __init__(self, code: str, tags: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.code = code
        self.tags = tags


@dataclass(frozen=True, slots=True)
class Tag:
    """One well-formed tag in a source: upper-case `name`, and its span in the source."""

    name: str
    fallback: str | None
    start: int
    end: int


def find_tags(source: str) -> list[Tag]:
    """Every well-formed tag in `source`, known or not, in order (`%%` is not a tag)."""
    return [
        Tag(m["name"].upper(), m["fallback"], m.start(), m.end())
        for m in _TOKEN.finditer(source)
        if m["name"] is not None
    ]


def normalize_tag_name(name: str) -> str:
    """The tag for a custom field's display name: "first name" -> "FIRST_NAME".

    Accents are dropped ("Prénom" -> "PRENOM") and every run of other characters becomes
    one "_". The result may be empty or start with a digit ("2nd phone" -> "2ND_PHONE");
    such a name cannot be written as a tag, so callers should reject or rename it.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_TAG_CHAR.sub("_", ascii_only).strip("_").upper()


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: `tags` are the distinct tag names used, in order."""

    source: str
    tags: tuple[str, ...]
    # literals[i] comes before slots[i]; there is one more literal than slots.
    _literals: tuple[str, ...] = field(repr=False, compare=False)
    _slots: tuple[tuple[str, str | None], ...] = field(repr=False, compare=False)

    @classmethod
    def compile(cls, source: str, known_tags: Iterable[str] = ()) -> Template:
        """Parse `source` once; raise TemplateError naming every unknown tag.

        Known: STANDARD_TAGS, `known_tags` (any case), and any `PREFIX.x` when
        `known_tags` holds "PREFIX.*" or "PREFIX" (e.g. "EVENT.*" for event payloads).
        """
        literals: list[str] = []
        slots: list[tuple[str, str | None]] = []
        pending: list[str] = []  # literal pieces since the last slot
        position = 0
        for match in _TOKEN.finditer(source):
            pending.append(source[position : match.start()])
            position = match.end()
            if match["name"] is None:
                pending.append("%")  # `%%`
                continue
            literals.append("".join(pending))
            pending = []
            slots.append((match["name"].upper(), match["fallback"]))
        pending.append(source[position:])
        literals.append("".join(pending))

        names = tuple(dict.fromkeys(name for name, _ in slots))
        unknown = _unknown(names, known_tags)
        if unknown:
            listed = ", ".join(f"%{n}%" for n in unknown)
            raise TemplateError("unknown_tag", unknown, f"unknown tag(s): {listed}")
        return cls(source, names, tuple(literals), tuple(slots))

    def render(self, values: Mapping[str, str | None]) -> str:
        """The message for one contact; missing, None or blank values use the fallback."""
        literals = self._literals
        out = [literals[0]]
        for index, (name, fallback) in enumerate(self._slots, start=1):
            value = values.get(name)
            if value is None or not value.strip():
                value = fallback or ""
            out.append(value)
            out.append(literals[index])
        return "".join(out)


def unknown_tags(source: str, known_tags: Iterable[str] = ()) -> tuple[str, ...]:
    """The distinct tags in `source` that `Template.compile` would reject, in order."""
    return _unknown(tuple(dict.fromkeys(t.name for t in find_tags(source))), known_tags)


def escape(text: str) -> str:
    """`text` as a template source that renders back to exactly `text` (`%` -> `%%`)."""
    return text.replace("%", "%%")


def _unknown(names: tuple[str, ...], known_tags: Iterable[str]) -> tuple[str, ...]:
    exact, prefixes = _known(known_tags)
    return tuple(name for name in names if not _is_known(name, exact, prefixes))


def _known(known_tags: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    exact = set(STANDARD_TAGS)
    prefixes: set[str] = set()
    for raw in known_tags:
        # Each dotted segment normalized like a field name: "event.order id" and
        # "Event.Order_ID" both mean EVENT.ORDER_ID; "*" stays the wildcard.
        name = ".".join(s if s == "*" else normalize_tag_name(s) for s in raw.split("."))
        if name.endswith(_WILDCARD):
            prefixes.add(name[: -len(_WILDCARD)])
        else:
            exact.add(name)
            prefixes.add(name)  # "EVENT" also admits EVENT.x
    return frozenset(exact), frozenset(prefixes)


def _is_known(name: str, exact: frozenset[str], prefixes: frozenset[str]) -> bool:
    if name in exact:
        return True
    head, dot, _ = name.partition(".")
    return bool(dot) and head in prefixes
