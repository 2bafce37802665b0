"""GSM 03.38 encoding and segment counting (R9), as Twilio's segment calculator counts.

A message is GSM-7 when every grapheme is one character of the GSM 03.38 basic or
extension table; one other grapheme makes the whole message UCS-2. A segment carries 140
octets (1120 bits): 160 septets or 70 UTF-16 units. Concatenated segments lose 6 octets
to the user data header, leaving 153 septets or 67 units, and carriers never split an
escape pair or a grapheme, so one that straddles the boundary moves whole to the next
segment. Credits are charged per segment (R3), so these numbers are money.

The counting runs on every message check, so the common shapes take shortcuts (one
C-level regex pass to tell GSM-7, arithmetic for the rest); grapheme splitting happens
only around the few code points that can join their neighbours. The tests compare the
shortcuts against a literal port of Twilio's algorithm.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final, NamedTuple

import regex  # type: ignore[import-untyped,unused-ignore]


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


# GSM 03.38 default alphabet (0x1B, the escape, is not a character of its own).
GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + code, so it costs two septets.
GSM7_EXTENSION: Final = "\f^{}\\[~]|€"

_SEGMENT_BITS: Final = 1120  # 140 octets of TP-User-Data
_UDH_BITS: Final = 48  # 6-octet concatenation header in every part of a long message
# Septets (GSM-7) or UTF-16 units (UCS-2) in a single segment and in each concatenated one.
_GSM7_SINGLE, _GSM7_PART, _UCS2_SINGLE, _UCS2_PART = 160, 153, 70, 67
# Twilio's calculator moves characters out of the first segment in a way that matches
# plain greedy filling only while no grapheme is longer than this (in UTF-16 units).
_MAX_FAST_GRAPHEME: Final = 32

_GSM_CHARS: Final = frozenset(GSM7_BASIC + GSM7_EXTENSION)
_EXTENSION_CHARS: Final = frozenset(GSM7_EXTENSION)
_NON_BASIC: Final = re.compile(f"[^{re.escape(GSM7_BASIC)}]")
NON_GSM: Final = re.compile(f"[^{re.escape(GSM7_BASIC + GSM7_EXTENSION)}]")
_GRAPHEME: Final = regex.compile(r"\X")

# Blocks holding every code point whose grapheme break property lets it join a neighbour
# (Extend, ZWJ, regional indicator, Prepend, SpacingMark, Hangul jamo L/V/T); the tests
# check the coverage. In the BMP the exact members are read from `regex` at import.
_BMP_JOINER_BLOCKS: Final = """
    0300-036F 0483-0489 0591-11FF 135D-135F 1712-193B 1A17-1C37 1CD0-1CF9 1DC0-1DFF
    200C-200D 20D0-20F0 2CEF-2CF1 2D7F-2DFF 302A-302F 3099-309A A66F-A6F1 A802-AAF6
    ABE3-ABED D7B0-D7FB FB1E-FB1E FE00-FE2F FF9E-FF9F
"""
_JOINER_PROPERTY: Final = regex.compile(
    r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=Regional_Indicator}\p{GCB=Prepend}"
    r"\p{GCB=SpacingMark}\p{GCB=L}\p{GCB=V}\p{GCB=T}]"
)


def _bmp_joiners() -> str:
    """The inside of a stdlib `re` class (a bitmap: far faster than `regex` here)."""
    ranges: list[list[int]] = []
    for block in _BMP_JOINER_BLOCKS.split():
        low, high = (int(end, 16) for end in block.split("-"))
        for match in _JOINER_PROPERTY.finditer("".join(map(chr, range(low, high + 1)))):
            point = ord(match.group())
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges)


_BMP_JOINERS: Final = _bmp_joiners()
# Astral joiners, coarsely (sparing math letters and emoji): historic scripts' marks,
# regional indicators (flags), skin tones, tags. `re` tests astral ranges one by one, so
# bodies are never scanned for these, only the few characters outside the basic table.
_ASTRAL_JOINERS: Final = (
    "\U000101fd-\U0001d281\U0001da00-\U0001e94a\U0001f1e6-\U0001f1ff"
    "\U0001f3fb-\U0001f3ff\U000e0020-\U000e01ef"
)
JOINER: Final = re.compile(f"[{_BMP_JOINERS}{_ASTRAL_JOINERS}]")
_ASTRAL_JOINER: Final = re.compile(f"[{_ASTRAL_JOINERS}]")
# Runs of BMP joiners (astral ones are swapped for U+0300 first), chained when one code
# point apart: that code point is then bound on both sides. (Written to start with a plain
# class, which lets `re` skip ahead to candidates in C.)
_JOINER_RUN: Final = re.compile(
    f"[{_BMP_JOINERS}][{_BMP_JOINERS}]*(?:.[{_BMP_JOINERS}]+)*", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a body is sent: encoding, billed segments and length as Twilio reports it.

    `characters` counts septets for GSM-7 (an extension character counts 2) and
    graphemes for UCS-2; `units` counts septets or UTF-16 code units."""

    encoding: Encoding
    segments: int
    characters: int
    units: int
    ucs2_characters: tuple[str, ...]


# A message check asks again about the same UCS-2 body (for the look-alike suggestion),
# so the last few UCS-2 answers are kept.
_RECENT_UCS2: Final[dict[str, SegmentInfo]] = {}


def is_gsm7(body: str) -> bool:
    return NON_GSM.search(body) is None


def segment_count(body: str) -> int:
    return segment_info(body).segments


def segment_info(body: str) -> SegmentInfo:
    first = _NON_BASIC.search(body)
    if first is None:
        return _basic_gsm7_info(len(body))
    if (recent := _RECENT_UCS2.get(body)) is not None:
        return recent
    # Most bodies have few characters outside the basic table; the rest looks at them only.
    specials = _NON_BASIC.findall(body, first.start())
    if _EXTENSION_CHARS.issuperset(specials):
        return _extended_gsm7_info(body, specials)
    joined = "".join(specials)
    units = len(body) + utf16_len(joined) - len(joined)
    if JOINER.search(joined) is None:
        info = _simple_ucs2_info(body, units, specials)
    else:
        info = _clustered_ucs2_info(body, first.start(), units, joined)
    if len(_RECENT_UCS2) >= 16:
        _RECENT_UCS2.clear()
    _RECENT_UCS2[body] = info
    return info


# GSM-7 results hold no text, so equal counts can share one (immutable) instance.
@lru_cache(maxsize=1024)
def _gsm7_result(segments: int, septets: int) -> SegmentInfo:
    return SegmentInfo(Encoding.GSM7, segments, septets, septets, ())


@lru_cache(maxsize=1024)
def _basic_gsm7_info(septets: int) -> SegmentInfo:
    segments = 0 if not septets else 1 if septets <= _GSM7_SINGLE else -(-septets // _GSM7_PART)
    return _gsm7_result(segments, septets)


def _extended_gsm7_info(body: str, extension: list[str]) -> SegmentInfo:
    septets = len(body) + len(extension)
    if septets <= _GSM7_SINGLE:
        return _gsm7_result(1, septets)
    if quick := _unshifted_count(septets, _GSM7_PART, 2):
        return _gsm7_result(quick, septets)
    # Spell out the escapes; an edge that falls right after an ESC would split the pair.
    escaped = body
    for char in set(extension):
        escaped = escaped.replace(char, "\x1b" + char)
    segments, start = 1, 0
    while septets - start > _GSM7_PART:
        edge = start + _GSM7_PART
        start = edge - 1 if escaped[edge - 1] == "\x1b" else edge
        segments += 1
    return _gsm7_result(segments, septets)


def _simple_ucs2_info(body: str, units: int, specials: list[str]) -> SegmentInfo:
    """UCS-2 where every code point is a grapheme of its own (no joiners)."""
    ucs2 = dict.fromkeys(specials)
    if not _EXTENSION_CHARS.isdisjoint(ucs2):
        for char in GSM7_EXTENSION:
            ucs2.pop(char, None)
    segments = _ucs2_segments(body, units, [], [], 1 if units == len(body) else 2)
    return SegmentInfo(Encoding.UCS2, segments, len(body), units, tuple(ucs2))


def _clustered_ucs2_info(body: str, first: int, units: int, specials: str) -> SegmentInfo:
    """UCS-2 with joiners. Only spans (a joiner run with the code point on each side) are
    split into graphemes; outside them each code point is one. A span's edges lie between
    non-joiners, where a boundary is certain, so it can be split alone (and cached)."""
    order: list[str] = []  # non-GSM graphemes, in order, repeated
    starts: list[int] = []  # unit ranges of the multi-unit graphemes in spans
    ends: list[int] = []
    merged = biggest = gap = 0
    extra = 0  # UTF-16 units beyond one per code point, before `gap`
    last = len(body)
    for match in _JOINER_RUN.finditer(_probe(body, specials), first):
        start, stop = match.span()
        start, stop = start - 1 if start else 0, stop + 1 if stop < last else stop
        if between := NON_GSM.findall(body, gap, start):
            order += between
            joined = "".join(between)
            extra += utf16_len(joined) - len(joined)
        span = _span(body[start:stop])
        for offset, size in span.items:
            starts.append(start + extra + offset)
            ends.append(start + extra + offset + size)
        extra += span.units - (stop - start)
        merged += span.merged
        biggest = span.biggest if span.biggest > biggest else biggest
        order += span.non_gsm
        gap = stop
    order += NON_GSM.findall(body, gap)
    if biggest > _MAX_FAST_GRAPHEME and units > _UCS2_SINGLE:
        segments = len(split_segments(body))
    else:
        segments = _ucs2_segments(body, units, starts, ends, max(biggest, 2))
    ucs2 = tuple(dict.fromkeys(order))
    return SegmentInfo(Encoding.UCS2, segments, len(body) - merged, units, ucs2)


def _unshifted_count(units: int, part: int, widest: int) -> int:
    """The plain count of `part`-unit segments if no straddling grapheme can raise it, else
    0: an edge moves back by less than the widest grapheme, so n parts hold at least
    n * (part - widest + 1) units."""
    count = -(-units // part)
    return count if units - (count - 1) * (part - widest + 1) <= part else 0


def _ucs2_segments(body: str, units: int, starts: list[int], ends: list[int], widest: int) -> int:
    """Fill segments to 67 units unless a grapheme would straddle the edge: one listed in
    `starts`/`ends` (sorted unit ranges), or a surrogate pair outside them."""
    if units <= _UCS2_SINGLE:
        return 1
    if quick := _unshifted_count(units, _UCS2_PART, widest):
        return quick
    encoded = body.encode("utf-16-le", "surrogatepass") if units > len(body) else b""
    segments, start = 1, 0
    while units - start > _UCS2_PART:
        edge = start + _UCS2_PART
        item = bisect_left(starts, edge) - 1
        if item >= 0 and ends[item] > edge:
            edge = starts[item]
        elif encoded and 0xD8 <= encoded[2 * edge - 1] <= 0xDB:  # high surrogate before
            edge -= 1
        segments += 1
        start = edge
    return segments


class _Span(NamedTuple):
    """What a span of a body costs; computed once per distinct span text."""

    units: int  # UTF-16 units
    items: tuple[tuple[int, int], ...]  # (unit offset, units) of each multi-unit grapheme
    biggest: int  # units of the longest grapheme
    merged: int  # code points that do not start a grapheme
    non_gsm: tuple[str, ...]  # graphemes outside GSM-7


def _probe(body: str, specials: str) -> str:
    """`body` with its astral joiners swapped for a BMP one, for _JOINER_RUN."""
    for joiner in set(_ASTRAL_JOINER.findall(specials)):
        body = body.replace(joiner, "\u0300")
    return body


@lru_cache(maxsize=4096)
def _span(text: str) -> _Span:
    graphemes = split_graphemes(text)
    sizes = [utf16_len(g) for g in graphemes]
    offsets = [sum(sizes[:k]) for k in range(len(sizes))]
    return _Span(
        units=sum(sizes),
        items=tuple((o, s) for o, s in zip(offsets, sizes, strict=True) if s > 1),
        biggest=max(sizes),
        merged=len(text) - len(graphemes),
        non_gsm=tuple(g for g in graphemes if len(g) > 1 or g not in _GSM_CHARS),
    )


def split_graphemes(text: str) -> tuple[str, ...]:
    """Extended grapheme clusters, but CR LF is two characters (as carriers count it)."""
    out: list[str] = []
    for grapheme in _GRAPHEME.findall(text):
        out.extend(("\r", "\n") if grapheme == "\r\n" else (grapheme,))
    return tuple(out)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_segments(body: str) -> list[str]:
    """The text of each segment, as the calculator cuts it (concatenation is `body`).

    A lone grapheme bigger than a segment still goes out whole; the calculator then
    reports an extra, empty first segment, and so does this."""
    graphemes = split_graphemes(body)
    if not graphemes:
        return []
    if is_gsm7(body):
        bits = [14 if g in _EXTENSION_CHARS else 7 for g in graphemes]
    else:
        bits = [16 * utf16_len(g) for g in graphemes]
    bounds = [*_calculator_starts(bits), len(graphemes)]
    return ["".join(graphemes[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def _calculator_starts(bits: Sequence[int]) -> list[int]:
    """Index of the first grapheme of each segment, step for step as Twilio's calculator:
    fill the first segment to 1120 bits; on overflow give it the header and move the
    graphemes that no longer fit into the next one; later segments start with a header."""
    starts = [0]
    used = 0
    for index, size in enumerate(bits):
        if _SEGMENT_BITS - used < size:
            if len(starts) == 1:
                used += _UDH_BITS
                moved = index
                while used > _SEGMENT_BITS:
                    moved -= 1
                    used -= bits[moved]
                starts.append(moved)
                used = _UDH_BITS + sum(bits[moved:index])
            else:
                starts.append(index)
                used = _UDH_BITS
        used += size
    return starts
