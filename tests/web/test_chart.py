"""web/chart.py: the SVG line chart, pure (no database, no browser)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from sendline.web.chart import Series, line_chart, nice_max

SVG = "{http://www.w3.org/2000/svg}"


def test_it_draws_one_line_per_series_with_a_title_and_a_description() -> None:
    labels = ["2026-12-01", "2026-12-02", "2026-12-03"]
    svg = line_chart(
        labels,
        [
            Series("sent", "Sent", "#0a58ca", [1, 5, 2]),
            Series("held", "Held", "#9a6700", [0, 0, 1]),
        ],
        title="Messages <last 3 days>",
    )
    root = ElementTree.fromstring(str(svg))  # well-formed XML, every text escaped
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "Messages <last 3 days>"  # type: ignore[union-attr]
    assert "8 sent, 1 held" in root.find(f"{SVG}desc").text  # type: ignore[operator,union-attr]
    lines = root.findall(f".//{SVG}polyline")
    assert len(lines) == 2 and len(lines[0].get("points", "").split()) == 3
    # A dot (with its figure) only where something happened: 3 sent days + 1 held day.
    dots = root.findall(f".//{SVG}circle")
    assert len(dots) == 4
    assert dots[1].find(f"{SVG}title").text == "2026-12-02: 5 sent"  # type: ignore[union-attr]


def test_it_draws_an_empty_period_and_a_single_day() -> None:
    assert "No data." in line_chart([], [], title="Nothing")
    one = ElementTree.fromstring(str(line_chart(["d"], [Series("a", "A", "#000", [0])], title="t")))
    assert one.find(f".//{SVG}polyline") is not None


def test_it_refuses_a_series_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="2 values, not 3"):
        line_chart(["a", "b", "c"], [Series("s", "S", "#000", [1, 2])], title="t")


@pytest.mark.parametrize(
    ("value", "top"), [(0, 4), (3, 4), (7, 8), (20, 20), (130, 200), (999, 1000), (12345, 20000)]
)
def test_it_rounds_the_axis_to_a_readable_maximum(value: int, top: int) -> None:
    assert nice_max(value) == top
    assert nice_max(value) >= value


def test_it_keeps_two_equal_series_both_visible() -> None:
    """Every message sent was delivered: the two lines coincide. The one drawn first is
    wider, so the later one runs inside it and both show."""
    svg = line_chart(
        ["a", "b"],
        [
            Series("sent", "Sent", "#0a58ca", [3, 4]),
            Series("delivered", "Delivered", "#1a7f37", [3, 4]),
        ],
        title="t",
    )
    first, second = ElementTree.fromstring(str(svg)).findall(f".//{SVG}polyline")
    assert first.get("points") == second.get("points")
    assert float(first.get("stroke-width", "0")) > float(second.get("stroke-width", "0"))
