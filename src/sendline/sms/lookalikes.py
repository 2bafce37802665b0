"""Look-alike rewrites (R9): a UCS-2 body whose only non-GSM characters have GSM-7
look-alikes (typographic quotes, dashes, exotic spaces, accents GSM-7 lacks) can be sent
in GSM-7 and cost fewer segments. The message check suggests the rewrite; it never
changes a body on its own.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from sendline.sms.encoding import (
    JOINER,
    NON_GSM,
    Encoding,
    segment_info,
    split_graphemes,
    utf16_len,
)


@dataclass(frozen=True, slots=True)
class GsmSuggestion:
    """A look-alike rewrite of a UCS-2 body that costs fewer (or no more) segments."""

    replacements: tuple[tuple[str, str], ...]
    suggested_body: str
    gsm7: bool
    segments_before: int
    segments_after: int

    @property
    def segments_saved(self) -> int:
        return self.segments_before - self.segments_after


# Look-alikes that keep the meaning: typographic punctuation from word processors and
# phones, exotic spaces, invisible characters. Accented letters GSM-7 lacks lose their
# accent (see _lookalike), except ç, which GSM-7 has only as Ç.
_LOOKALIKES: Final[dict[str, str]] = {
    **dict.fromkeys("‘’‚‛′`´", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−•", "-"),
    "…": "...",
    **dict.fromkeys("\t\u00a0\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B))), " "),
    **dict.fromkeys("\u200b\u200c\u200d\ufeff", ""),
    "ç": "Ç",
    **dict(zip("łŁđĐı", "lLdDi", strict=True)),  # no Unicode decomposition to strip
}
_LOOKALIKE_TABLE: Final = str.maketrans(_LOOKALIKES)


@lru_cache(maxsize=4096)
def _lookalike(grapheme: str) -> str | None:
    """GSM-7 text that reads as `grapheme`, or None."""
    text = unicodedata.normalize("NFC", grapheme).translate(_LOOKALIKE_TABLE)
    if NON_GSM.search(text) is None:
        return text
    decomposed = unicodedata.normalize("NFD", text)
    # Drop trailing accents one by one: "ê" -> "e", but "é" + acute -> "é".
    for keep in range(len(decomposed) - 1, 0, -1):
        if not unicodedata.combining(decomposed[keep]):
            break
        candidate = unicodedata.normalize("NFC", decomposed[:keep]).translate(_LOOKALIKE_TABLE)
        if NON_GSM.search(candidate) is None:
            return candidate
    return None


def gsm_suggestion(body: str) -> GsmSuggestion | None:
    """Replace look-alike characters to save segments; None when GSM-7 already or when
    nothing applies. Never suggests a body that costs more segments."""
    info = segment_info(body)
    if info.encoding is Encoding.GSM7:
        return None
    found = {g: r for g in info.ucs2_characters if (r := _lookalike(g)) is not None}
    if not found:
        return None
    # Every joiner of the body is inside one of these graphemes.
    specials = "".join(info.ucs2_characters)
    suggested = _replace_graphemes(body, found, specials)
    after = segment_info(suggested)
    if after.segments > info.segments:
        # "…" becomes three characters: in a long body that can cost a segment. Without
        # such growth every grapheme costs the same or fewer bits, so no more segments.
        found = {g: r for g, r in found.items() if utf16_len(r) <= utf16_len(g)}
        if not found:
            return None
        suggested = _replace_graphemes(body, found, specials)
        after = segment_info(suggested)
        if after.segments > info.segments:
            return None
    return GsmSuggestion(
        replacements=tuple(found.items()),
        suggested_body=suggested,
        gsm7=after.encoding is Encoding.GSM7,
        segments_before=info.segments,
        segments_after=after.segments,
    )


def _replace_graphemes(body: str, mapping: dict[str, str], specials: str) -> str:
    if JOINER.search(specials) is not None:  # rare: split it all
        return "".join(mapping.get(g, g) for g in split_graphemes(body))
    for char, replacement in mapping.items():  # every code point is a grapheme
        # str.replace per character: str.translate takes a slow path on non-ASCII text.
        body = body.replace(char, replacement)
    return body
