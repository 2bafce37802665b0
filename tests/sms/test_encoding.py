"""GSM-7 / UCS-2 encoding and segment counting (R9).

The fast paths in `sendline.sms.encoding` are checked against `reference`, a literal port
of Twilio's message-segment-calculator (SegmentedMessage, Segment, EncodedChar), on
table-driven cases and on random text.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import regex  # type: ignore[import-untyped,unused-ignore]
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sendline.sms import encoding
from sendline.sms.encoding import (
    Encoding,
    SegmentInfo,
    is_gsm7,
    segment_count,
    segment_info,
    split_segments,
)
from sendline.sms.lookalikes import GsmSuggestion, gsm_suggestion

# ---------------------------------------------------------------------------------------
# Reference: Twilio's calculator, step for step (src/libs/*.ts), kept deliberately slow.

# The keys of the calculator's UnicodeToGsm map (UTF-16 code units), extension ones apart.
_TWILIO_BASIC = {
    *(0x0A, 0x0D, 0x5F, 0xA1, 0xA3, 0xA4, 0xA5, 0xA7, 0xBF, 0xC4, 0xC5, 0xC6, 0xC7, 0xC9),
    *(0xD1, 0xD6, 0xD8, 0xDC, 0xDF, 0xE0, 0xE4, 0xE5, 0xE6, 0xE8, 0xE9, 0xEC, 0xF1, 0xF2),
    *(0xF6, 0xF8, 0xF9, 0xFC, 0x393, 0x394, 0x398, 0x39B, 0x39E, 0x3A0, 0x3A3, 0x3A6),
    *(0x3A8, 0x3A9),
    *range(0x20, 0x5B),
    *range(0x61, 0x7B),
}
_TWILIO_EXTENSION = {0x0C, 0x5B, 0x5C, 0x5D, 0x5E, 0x7B, 0x7C, 0x7D, 0x7E, 0x20AC}


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class _EncodedChar:
    def __init__(self, grapheme: str, encoding_name: str) -> None:
        self.raw = grapheme
        self.encoding = encoding_name
        point = ord(grapheme) if len(grapheme) == 1 else -1
        self.is_gsm7 = point in _TWILIO_BASIC or point in _TWILIO_EXTENSION
        if self.is_gsm7:
            self.code_units = 2 if point in _TWILIO_EXTENSION else 1
        else:
            self.code_units = _utf16(grapheme)

    def size_in_bits(self) -> int:
        if self.encoding == "UCS-2" and self.is_gsm7:
            return 16
        return (7 if self.encoding == "GSM-7" else 16) * self.code_units


class _UserDataHeader:
    raw = ""

    def size_in_bits(self) -> int:
        return 8


class _Segment(list[_EncodedChar | _UserDataHeader]):
    def __init__(self, with_user_data_header: bool = False) -> None:
        super().__init__()
        self.has_user_data_header = with_user_data_header
        if with_user_data_header:
            self.extend(_UserDataHeader() for _ in range(6))

    def free_size_in_bits(self) -> int:
        return 1120 - sum(c.size_in_bits() for c in self)

    def add_header(self) -> list[_EncodedChar | _UserDataHeader]:
        if self.has_user_data_header:
            return []
        left_over: list[_EncodedChar | _UserDataHeader] = []
        self.has_user_data_header = False  # sic: the calculator leaves this false
        for _ in range(6):
            self.insert(0, _UserDataHeader())
        # `< 0` as published in src/libs/Segment.ts (one stored revision reads `<= 0`, which
        # would leave 66 rather than 67 units in the first part of a long UCS-2 message).
        while self.free_size_in_bits() < 0:
            left_over.insert(0, self.pop())
        return left_over


def _reference_graphemes(body: str) -> list[str]:
    out: list[str] = []
    for grapheme in regex.findall(r"\X", body):
        out.extend(["\r", "\n"] if grapheme == "\r\n" else [grapheme])
    return out


def _build_segments(chars: list[_EncodedChar]) -> list[_Segment]:
    segments = [_Segment()]
    current = segments[0]
    for char in chars:
        if current.free_size_in_bits() < char.size_in_bits():
            segments.append(_Segment(True))
            current = segments[-1]
            previous = segments[-2]
            if not previous.has_user_data_header:
                for moved in previous.add_header():
                    current.append(moved)
        current.append(char)
    return segments


@dataclass
class _Reference:
    info: SegmentInfo
    pieces: list[str]


def reference(body: str) -> _Reference:
    graphemes = _reference_graphemes(body)
    ucs = any(len(g) >= 2 or not _EncodedChar(g, "GSM-7").is_gsm7 for g in graphemes)
    name = "UCS-2" if ucs else "GSM-7"
    chars = [_EncodedChar(g, name) for g in graphemes]
    segments = _build_segments(chars) if body else []
    units = sum(c.size_in_bits() for c in chars) // (16 if ucs else 7)
    non_gsm = tuple(dict.fromkeys(c.raw for c in chars if not c.is_gsm7))
    info = SegmentInfo(
        encoding=Encoding(name),
        segments=len(segments),
        characters=len(graphemes) if ucs else sum(c.code_units for c in chars),
        units=units,
        ucs2_characters=non_gsm if ucs else (),
    )
    return _Reference(info, ["".join(c.raw for c in s) for s in segments])


# ---------------------------------------------------------------------------------------
# Table-driven cases

EMOJI = "😀"  # one grapheme, two UTF-16 units
FLAG = "🇮🇹"  # two regional indicators, four units
FAMILY = "👩\u200d👩\u200d👧\u200d👦"  # ZWJ sequence, eleven units
RAINBOW = "🏳️\u200d🌈"  # six units
THUMB = "👍🏽"  # emoji + skin tone modifier, four units

CASES = [
    # body, encoding, segments, characters, units
    ("", Encoding.GSM7, 0, 0, 0),
    ("a", Encoding.GSM7, 1, 1, 1),
    ("a" * 160, Encoding.GSM7, 1, 160, 160),
    ("a" * 161, Encoding.GSM7, 2, 161, 161),
    ("a" * 306, Encoding.GSM7, 2, 306, 306),
    ("a" * 307, Encoding.GSM7, 3, 307, 307),
    ("€" * 80, Encoding.GSM7, 1, 160, 160),
    ("€" * 81, Encoding.GSM7, 2, 162, 162),
    ("a" * 159 + "]", Encoding.GSM7, 2, 161, 161),
    # 306 septets, but the escape pair at septets 153-154 moves whole: 152 + 154 > 2 x 153
    ("a" * 152 + "]" + "a" * 152, Encoding.GSM7, 3, 306, 306),
    ("a" * 151 + "]" + "a" * 153, Encoding.GSM7, 2, 306, 306),
    ("]" * 153, Encoding.GSM7, 3, 306, 306),  # 76 pairs fit a part, not 76.5
    ("á" * 70, Encoding.UCS2, 1, 70, 70),
    ("á" * 71, Encoding.UCS2, 2, 71, 71),
    ("á" * 134, Encoding.UCS2, 2, 134, 134),
    ("á" * 135, Encoding.UCS2, 3, 135, 135),
    ("ç" * 70, Encoding.UCS2, 1, 70, 70),
    ("Ç" * 160, Encoding.GSM7, 1, 160, 160),
    (EMOJI + "a" * 68, Encoding.UCS2, 1, 69, 70),
    (EMOJI + "a" * 69, Encoding.UCS2, 2, 70, 71),
    # 134 units, but the emoji at units 67-68 moves whole: 66 + 68 > 2 x 67
    ("a" * 66 + EMOJI + "a" * 66, Encoding.UCS2, 3, 133, 134),
    ("a" * 65 + EMOJI + "a" * 67, Encoding.UCS2, 2, 133, 134),
    ("a" * 66 + FLAG + "a" * 64, Encoding.UCS2, 3, 131, 134),
    ("a" * 63 + FLAG + "a" * 67, Encoding.UCS2, 2, 131, 134),
    (FLAG + "a" * 66, Encoding.UCS2, 1, 67, 70),
    (FAMILY, Encoding.UCS2, 1, 1, 11),
    (RAINBOW + "a" * 64, Encoding.UCS2, 1, 65, 70),
    (RAINBOW + "a" * 65, Encoding.UCS2, 2, 66, 71),
    (THUMB * 17 + "ab", Encoding.UCS2, 1, 19, 70),
    (THUMB * 18, Encoding.UCS2, 2, 18, 72),
    ("😀" + "]" * 68, Encoding.UCS2, 1, 69, 70),  # extension characters are 1 unit in UCS-2
    ("😀" + "]" * 69, Encoding.UCS2, 2, 70, 71),
    ("e\u0301" * 35, Encoding.UCS2, 1, 35, 70),  # a combining accent is its own unit
    ("e\u0301" * 36, Encoding.UCS2, 2, 36, 72),
    ("\rabcde\r\n123", Encoding.GSM7, 1, 11, 11),  # CRLF counts as two characters
    ("a" * 158 + "\r\n", Encoding.GSM7, 1, 160, 160),
    ("a" * 159 + "\r\n", Encoding.GSM7, 2, 161, 161),
    ("😀\r\n", Encoding.UCS2, 1, 3, 4),
    ("\f", Encoding.GSM7, 1, 2, 2),
    ("`", Encoding.UCS2, 1, 1, 1),  # the backtick is not in GSM 03.38
    ("\t", Encoding.UCS2, 1, 1, 1),
    ("ΔΦΓΛΩΠΨΣΘΞ", Encoding.GSM7, 1, 10, 10),
    ("αβγ", Encoding.UCS2, 1, 3, 3),
    ("가각", Encoding.UCS2, 1, 2, 2),
    ("\u1100\u1161\u11a8", Encoding.UCS2, 1, 1, 3),  # conjoining jamo make one syllable
]


@pytest.mark.parametrize(("body", "enc", "segments", "characters", "units"), CASES)
def test_it_counts_segments_like_the_calculator(
    body: str, enc: Encoding, segments: int, characters: int, units: int
) -> None:
    info = segment_info(body)
    assert (info.encoding, info.segments, info.characters, info.units) == (
        enc,
        segments,
        characters,
        units,
    )
    assert info == reference(body).info
    assert segment_count(body) == segments
    assert is_gsm7(body) == (enc is Encoding.GSM7)


@pytest.mark.parametrize(("body", "enc", "segments", "characters", "units"), CASES)
def test_it_splits_segments_like_the_calculator(
    body: str, enc: Encoding, segments: int, characters: int, units: int
) -> None:
    pieces = split_segments(body)
    assert pieces == reference(body).pieces
    assert "".join(pieces) == body
    assert len(pieces) == segments


def test_it_moves_a_straddling_escape_pair_whole() -> None:
    assert split_segments("a" * 152 + "]" + "b" * 10) == ["a" * 152, "]" + "b" * 10]


def test_it_moves_a_straddling_emoji_whole() -> None:
    assert split_segments("a" * 66 + EMOJI + "b" * 5) == ["a" * 66, EMOJI + "b" * 5]


def test_it_never_splits_a_grapheme() -> None:
    pieces = split_segments("a" * 60 + FAMILY + "b" * 10)
    assert pieces == ["a" * 60, FAMILY + "b" * 10]


def test_it_lists_the_characters_that_force_ucs2_once_in_order() -> None:
    info = segment_info("a😀b😀 ç ]x" + THUMB + "e\u0301" + FLAG)
    assert info.ucs2_characters == ("😀", "ç", THUMB, "e\u0301", FLAG)
    assert segment_info("plain GSM [text] €5").ucs2_characters == ()


def test_it_reports_the_tables_twilio_uses() -> None:
    assert len(encoding.GSM7_BASIC) == len(set(encoding.GSM7_BASIC)) == 127
    assert {ord(c) for c in encoding.GSM7_BASIC} == _TWILIO_BASIC
    assert {ord(c) for c in encoding.GSM7_EXTENSION} == _TWILIO_EXTENSION
    assert "Ç" in encoding.GSM7_BASIC and "ç" not in encoding.GSM7_BASIC


def test_it_treats_every_joining_code_point_as_a_joiner() -> None:
    # The fast path assumes code points outside this class never join a neighbour.
    joining = regex.compile(
        r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=Regional_Indicator}\p{GCB=Prepend}"
        r"\p{GCB=SpacingMark}\p{GCB=L}\p{GCB=V}\p{GCB=T}]"
    )
    expected = joining.findall("".join(map(chr, range(0x110000))))
    assert len(expected) > 2000
    assert encoding.JOINER.findall("".join(expected)) == expected
    # ...and that everyday text is not slowed down by false joiners.
    everyday = encoding.GSM7_BASIC + "áíóúâêôãõœ’“”–—…•😀🎉🔥❤👍αβγабв中文한국어𝐁𝐨𝐥𝐝"
    assert encoding.JOINER.search(everyday) is None


# ---------------------------------------------------------------------------------------
# Look-alike suggestions


@pytest.mark.parametrize(
    ("body", "suggested", "replacements"),
    [
        (
            "It’s “great” – see you…",
            'It\'s "great" - see you...',
            (("’", "'"), ("“", '"'), ("”", '"'), ("–", "-"), ("…", "...")),
        ),
        ("façade", "faÇade", (("ç", "Ç"),)),
        ("crème brûlée", "crème brulée", (("û", "u"),)),
        ("Olá, São Paulo", "Ola, Sao Paulo", (("á", "a"), ("ã", "a"))),
        ("ÁÍÓÚ", "AIOU", (("Á", "A"), ("Í", "I"), ("Ó", "O"), ("Ú", "U"))),
        ("Hi\u00a0there\u200b!", "Hi there!", (("\u00a0", " "), ("\u200b", ""))),
        ("a\tb\u2009c\u3000d", "a b c d", (("\t", " "), ("\u2009", " "), ("\u3000", " "))),
        ("• one — two", "- one - two", (("•", "-"), ("—", "-"))),
        ("‘q’ „w‟ «e» ′ ″ −", '\'q\' "w" "e" \' " -', None),
        ("cafe\u0301", "café", (("e\u0301", "é"),)),
        ("e\u0301\u0301!", "é!", (("e\u0301\u0301", "é"),)),
        ("\ufeffSale", "Sale", (("\ufeff", ""),)),
    ],
)
def test_it_suggests_gsm_look_alikes(
    body: str, suggested: str, replacements: tuple[tuple[str, str], ...] | None
) -> None:
    suggestion = gsm_suggestion(body)
    assert suggestion is not None
    assert suggestion.suggested_body == suggested
    if replacements is not None:
        assert suggestion.replacements == replacements
    assert suggestion.gsm7
    assert suggestion.segments_after == segment_count(suggested)


def test_it_suggests_nothing_for_gsm_bodies_or_without_look_alikes() -> None:
    assert gsm_suggestion("Plain text, ÄÖÜ é è [ok]") is None
    assert gsm_suggestion("") is None
    assert gsm_suggestion("Party 🎉 tonight") is None
    assert gsm_suggestion("中文") is None


def test_it_suggests_even_when_ucs2_characters_remain() -> None:
    body = "Olá 😀 " + "a" * 70
    suggestion = gsm_suggestion(body)
    assert suggestion == GsmSuggestion(
        replacements=(("á", "a"),),
        suggested_body="Ola 😀 " + "a" * 70,
        gsm7=False,
        segments_before=2,
        segments_after=2,
    )
    assert suggestion.segments_saved == 0


def test_it_counts_the_segments_a_suggestion_saves() -> None:
    suggestion = gsm_suggestion("“Hello” " + "a" * 150)
    assert suggestion is not None
    assert (suggestion.segments_before, suggestion.segments_after) == (3, 1)
    assert suggestion.segments_saved == 2


def test_it_drops_a_growing_replacement_that_would_cost_a_segment() -> None:
    # 70 ellipses are one UCS-2 segment; as "..." they are 210 septets, two segments.
    assert gsm_suggestion("…" * 70) is None
    suggestion = gsm_suggestion("…" * 69 + "’")
    assert suggestion is not None
    assert suggestion.replacements == (("’", "'"),)
    assert suggestion.suggested_body == "…" * 69 + "'"
    assert (suggestion.gsm7, suggestion.segments_before, suggestion.segments_after) == (
        False,
        1,
        1,
    )


def test_it_replaces_whole_graphemes_only() -> None:
    # The ZWJ inside the family emoji is not a stray zero-width joiner to remove.
    suggestion = gsm_suggestion(FAMILY + " ok\u200b")
    assert suggestion is not None
    assert suggestion.suggested_body == FAMILY + " ok"


# ---------------------------------------------------------------------------------------
# Properties

_PIECES = [
    *encoding.GSM7_BASIC,
    *encoding.GSM7_EXTENSION,
    *"áíóúâêôãõçœÁÍÓÚ’“”–…•\u00a0\u200b\t`",
    EMOJI,
    FLAG,
    FAMILY,
    RAINBOW,
    THUMB,
    "❤️",
    "🇫",
    "🏽",
    "\u200d",
    "\ufe0f",
    "\u0301",
    "e\u0301",
    "\u0327",
    "\r",
    "\n",
    "\r\n",
    "\u1100",
    "\u1161",
    "\u11a8",
    "가",
    "क्ष",
    "ि",
    "\u0600",
    "ำ",
    "\U000e0067",
]
_REPEATABLE = ["a", "]", "€", "é", "á", EMOJI, "e\u0301", FLAG, THUMB, "\r\n"]

_chunks = st.one_of(
    st.sampled_from(_PIECES),
    st.characters(exclude_categories=["Cs"]),
    st.builds(lambda c, n: c * n, st.sampled_from(_REPEATABLE), st.integers(1, 170)),
    st.builds(lambda n: "a" + "\u0301" * n, st.integers(1, 90)),  # graphemes of any size
)
bodies = st.lists(_chunks, max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(bodies)
@example("a" * 66 + FAMILY * 2)
@example("x" + "\u0301" * 69 + "a")
@example("\u0301" * 80)
def test_it_matches_the_reference_on_random_text(body: str) -> None:
    expected = reference(body)
    assert segment_info(body) == expected.info
    assert split_segments(body) == expected.pieces


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["a]", "a€ ", "]€\f", "á😀", "a😀", "a" + FLAG, "a" + THUMB, "aé\u0301"]
    ).flatmap(lambda alphabet: st.lists(st.sampled_from(alphabet), min_size=130, max_size=480))
)
def test_it_matches_the_reference_on_long_bodies_near_segment_edges(chars: list[str]) -> None:
    body = "".join(chars)
    expected = reference(body)
    assert segment_info(body) == expected.info
    assert split_segments(body) == expected.pieces


@settings(max_examples=200, deadline=None)
@given(bodies, st.sampled_from(_PIECES))
def test_it_never_counts_fewer_segments_after_appending(body: str, extra: str) -> None:
    assert segment_count(body + extra) >= segment_count(body)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=encoding.GSM7_BASIC + encoding.GSM7_EXTENSION, max_size=170))
def test_it_keeps_gsm_bodies_of_up_to_160_septets_in_one_segment(body: str) -> None:
    info = segment_info(body)
    assert info.encoding is Encoding.GSM7
    if 0 < info.characters <= 160:
        assert info.segments == 1


@settings(max_examples=200, deadline=None)
@given(bodies)
def test_it_splits_into_pieces_that_fit_their_segments(body: str) -> None:
    pieces = split_segments(body)
    assert "".join(pieces) == body
    assert len(pieces) == segment_count(body)
    gsm = is_gsm7(body)
    single, part = (160, 153) if gsm else (70, 67)
    for piece in pieces:
        size = segment_info(piece).units if gsm else _utf16(piece)
        # The calculator lets a segment overflow around graphemes of 33+ units (stacks of
        # combining marks): it moves them whole and does not re-check the next segment.
        huge = any(_utf16(g) > 32 for g in regex.findall(r"\X", piece))
        assert size <= (single if len(pieces) == 1 else part) or huge


@settings(max_examples=300, deadline=None)
@given(bodies)
@example("…" * 70)
def test_it_never_suggests_more_segments(body: str) -> None:
    suggestion = gsm_suggestion(body)
    if suggestion is None:
        return
    assert suggestion.replacements
    assert suggestion.segments_before == segment_count(body)
    assert suggestion.segments_after == segment_count(suggestion.suggested_body)
    assert suggestion.segments_after <= suggestion.segments_before
    assert suggestion.gsm7 == is_gsm7(suggestion.suggested_body)
    assert all(is_gsm7(new) for _, new in suggestion.replacements)
