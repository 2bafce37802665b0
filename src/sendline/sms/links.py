"""Links in a message body and public link shorteners (R10).

Carriers filter SMS that carry links on public or free shorteners (bit.ly, tinyurl.com,
...) because spammers hide destinations behind them; a filtered message is paid for and
never arrives. Branded short domains are fine. So Sendline finds every link a handset
would make clickable, with or without a scheme, and refuses those whose host is on the
shortener list or is a subdomain of a listed domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

# A link as phones linkify it: an optional http(s) scheme, a host of dotted labels
# ending in an alphabetic TLD (or any host after an explicit scheme), an optional port,
# and an optional path/query/fragment up to the next space. The left guard keeps us from
# starting inside a word ("notbit.ly" is one host, not "bit.ly") or inside an e-mail
# address. The path is consumed with the host so a shortener named in a query string
# (`https://example.com/?r=bit.ly`) is part of that link, not a link of its own.
_LINK = re.compile(
    r"""
    (?<![\w.@/\-])
    (?:
        (?P<scheme>https?://)
        (?P<scheme_host>[\w\-]++(?:\.[\w\-]++)*+)
      |
        (?P<host>(?:[\w\-]++\.)+(?:[^\W\d_]{2,63}|xn--[\w\-]+))(?![\w\-@])
    )
    (?::\d{1,5})?
    (?P<rest>[/?#]\S*)?
    """,
    re.IGNORECASE | re.VERBOSE,
)
_SPACE = re.compile(r"\s")

# Characters that end a sentence rather than a URL ("see bit.ly/x." or "(bit.ly/x)").
_TRAILING_PUNCTUATION = ".,;:!?)]}'\"»”’"


class Link(NamedTuple):
    text: str
    host: str
    start: int
    end: int


def find_links(body: str) -> list[Link]:
    """Every link in `body`, in order, hosts lower-cased."""
    # A link lies in a word holding "x.y" (a letter or digit, a dot, a letter) or "//".
    # Finding dots with str.find runs at C speed and most bodies hold only a few, so
    # the full pattern only ever runs over the words that could be links.
    links: list[Link] = []
    scanned_to = 0
    for hit in _link_hints(body):
        if hit < scanned_to:
            continue  # another dot of a word already scanned
        start = _word_start(body, hit)
        after = _SPACE.search(body, hit)
        scanned_to = after.start() if after else len(body)
        links.extend(_links_in(body, start, scanned_to))
    return links


def _link_hints(body: str) -> list[int]:
    hints = []
    dot = body.find(".", 1)
    while dot != -1 and dot + 1 < len(body):
        before, after = body[dot - 1], body[dot + 1]
        if before.isalnum() and after.isalpha():
            hints.append(dot)
        dot = body.find(".", dot + 1)
    slashes = body.find("//")
    if slashes != -1:
        hints.append(slashes)
        hints.sort()
    return hints


def _word_start(body: str, index: int) -> int:
    while index > 0 and not body[index - 1].isspace():
        index -= 1
    return index


def _links_in(body: str, start: int, end: int) -> list[Link]:
    links: list[Link] = []
    for match in _LINK.finditer(body, start, end):
        text = match.group(0).rstrip(_TRAILING_PUNCTUATION)
        host = (match.group("host") or match.group("scheme_host")).lower().rstrip(".")
        links.append(Link(text, host, match.start(), match.start() + len(text)))
    return links


class ShortenerList:
    """A set of shortener domains; a host matches itself or any parent domain listed."""

    __slots__ = ("_domains",)

    def __init__(self, domains: Iterable[str] = ()) -> None:
        self._domains = frozenset(d.strip().lower().rstrip(".") for d in domains if d.strip())

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> ShortenerList:
        """Parse the data-file format: one domain a line, `#` comments, blank lines."""
        domains = []
        for line in lines:
            entry = line.split("#", 1)[0].strip()
            if entry:
                domains.append(entry)
        return cls(domains)

    def extended(self, domains: Iterable[str]) -> ShortenerList:
        return ShortenerList([*self._domains, *domains])

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        labels = host.lower().rstrip(".").split(".")
        # www.bit.ly -> check "www.bit.ly", "bit.ly" (a bare TLD is never listed).
        return any(".".join(labels[i:]) in self._domains for i in range(len(labels) - 1))

    def __len__(self) -> int:
        return len(self._domains)

    @property
    def domains(self) -> frozenset[str]:
        return self._domains


def shortener_links(body: str, shorteners: ShortenerList) -> list[Link]:
    """The links in `body` whose host is a public shortener."""
    return [link for link in find_links(body) if link.host in shorteners]
