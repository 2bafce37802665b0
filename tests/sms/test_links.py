"""R10: links in a body, and which of them are on public shorteners."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendline.shortener_files import packaged_shorteners
from sendline.sms.links import ShortenerList, find_links, shortener_links

SHORTENERS = packaged_shorteners()


@pytest.mark.parametrize(
    ("body", "flagged"),
    [
        ("Sale! bit.ly/abc", ["bit.ly/abc"]),
        ("Sale! https://bit.ly/abc", ["https://bit.ly/abc"]),
        ("Sale! HTTP://BIT.LY/ABC", ["HTTP://BIT.LY/ABC"]),
        ("Sale! www.bit.ly/abc", ["www.bit.ly/abc"]),
        ("see tinyurl.com/y7x.", ["tinyurl.com/y7x"]),
        ("(t.co/abc)", ["t.co/abc"]),
        ("two: bit.ly/a and goo.gl/b", ["bit.ly/a", "goo.gl/b"]),
        ("port https://bit.ly:443/x", ["https://bit.ly:443/x"]),
        ("bare domain bit.ly", ["bit.ly"]),
        # Not links on a shortener:
        ("https://example.com/?r=bit.ly", []),  # named in another host's query
        ("https://example.com/bit.ly/x", []),  # ... or path
        ("notbit.ly/x", []),  # look-alike host
        ("bit.lyrics.example.com", []),  # bit.ly is a prefix, not the domain
        ("write to sales@bit.ly", []),  # an e-mail address is not a web link
        ("Branded go.shop.example/x", []),
        ("no links at all", []),
        ("e.g. 3.14 and i.e.", []),
    ],
)
def test_it_flags_links_on_public_shorteners(body: str, flagged: list[str]) -> None:
    assert [link.text for link in shortener_links(body, SHORTENERS)] == flagged


def test_it_finds_links_with_and_without_scheme() -> None:
    links = find_links("Visit https://Shop.Example.com/x?y=1, or example.org!")
    assert [(link.text, link.host) for link in links] == [
        ("https://Shop.Example.com/x?y=1", "shop.example.com"),
        ("example.org", "example.org"),
    ]
    body = "Visit https://Shop.Example.com/x?y=1"
    (link,) = find_links(body)
    assert body[link.start : link.end] == link.text


def test_it_reads_the_data_file_format() -> None:
    listed = ShortenerList.from_lines(["# comment", "", "  Short.Example  # trailing", "x.io"])
    assert listed.domains == frozenset({"short.example", "x.io"})
    assert "a.short.example" in listed
    assert "short.example." in listed
    assert "example" not in listed


def test_it_ships_the_shared_list() -> None:
    assert len(SHORTENERS) >= 30
    for domain in ("bit.ly", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "rebrand.ly"):
        assert domain in SHORTENERS


def test_it_lets_operators_extend_the_list() -> None:
    extended = SHORTENERS.extended(["sho.rt"])
    assert shortener_links("go sho.rt/x", extended)[0].host == "sho.rt"
    assert shortener_links("go sho.rt/x", SHORTENERS) == []


@given(st.sampled_from(sorted(SHORTENERS.domains)), st.text(alphabet="abcXYZ019", max_size=8))
def test_every_listed_domain_is_flagged_in_any_case(domain: str, path: str) -> None:
    body = f"Deal: {domain.upper()}/{path} today"
    assert [link.host for link in shortener_links(body, SHORTENERS)] == [domain]


@given(st.text(max_size=300))
def test_it_never_raises_and_spans_are_exact(body: str) -> None:
    for link in find_links(body):
        assert body[link.start : link.end] == link.text
