"""Charts as server-rendered SVG: no JavaScript library, nothing from a CDN.

`line_chart` draws a few series over the same labels (days) with a y axis rounded to a
readable maximum. Every text in it is escaped here, so the page may include the result
as markup; the SVG carries a title and a description for screen readers, and the page
shows the same numbers in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# The drawing's own coordinates; CSS scales the SVG to its container (viewBox).
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
Y_TICKS = 4


@dataclass(frozen=True)
class Series:
    key: str  # a CSS-safe name: the class of its line
    label: str
    color: str
    values: Sequence[int]


def nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 x 10^k at or above `value`, and divisible into the ticks
    (a y axis of 0-4 for a largest value of 3, 0-200 for 130)."""
    if value <= Y_TICKS:
        return Y_TICKS
    magnitude = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        top = step * magnitude
        if top >= value and top % Y_TICKS == 0:
            return top
    return int(math.ceil(value / Y_TICKS) * Y_TICKS)


def line_chart(labels: Sequence[str], series: Sequence[Series], *, title: str) -> Markup:
    """An SVG line chart of `series` over `labels` (every series as long as `labels`)."""
    for one in series:
        if len(one.values) != len(labels):
            raise ValueError(f"series {one.key!r} has {len(one.values)} values, not {len(labels)}")
    top = nice_max(max((max(s.values, default=0) for s in series), default=0))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(_description(labels, series))}</desc>',
        *_axes(labels, top),
    ]
    for order, one in enumerate(series):
        parts.extend(_line(one, labels, top, _width(order, len(series))))
    parts.append("</svg>")
    return Markup("".join(parts))


def _x(index: int, count: int) -> float:
    width = WIDTH - LEFT - RIGHT
    if count <= 1:
        return LEFT + width / 2
    return LEFT + index * width / (count - 1)


def _y(value: int, top: int) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _axes(labels: Sequence[str], top: int) -> list[str]:
    parts = ['<g class="axes" font-size="13" fill="#57606a">']
    for tick in range(Y_TICKS + 1):
        value = top * tick // Y_TICKS
        y = _y(value, top)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>'
        )
    count = len(labels)
    shown = sorted({0, count // 2, count - 1}) if count else []
    for index in shown:
        anchor = "start" if index == 0 and count > 1 else "end" if index == count - 1 else "middle"
        parts.append(
            f'<text x="{_x(index, count):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
            f"{escape(labels[index])}</text>"
        )
    parts.append("</g>")
    return parts


def _width(order: int, count: int) -> float:
    """Earlier series are drawn wider, under later ones: where two series are equal
    (every message sent was delivered) the later line runs inside the earlier one and
    both stay visible, instead of the last one hiding the other."""
    return 1.5 + 1.0 * (count - 1 - order)


def _line(one: Series, labels: Sequence[str], top: int, width: float = 2.0) -> list[str]:
    count = len(labels)
    points = " ".join(f"{_x(i, count):.1f},{_y(v, top):.1f}" for i, v in enumerate(one.values))
    color = escape(one.color)
    parts = [
        f'<g class="series series-{escape(one.key)}">',
        f'<polyline fill="none" stroke="{color}" stroke-width="{width:g}" '
        f'stroke-linejoin="round" points="{points}"/>',
    ]
    for index, value in enumerate(one.values):
        if value:  # a dot with its figure on hover where something happened
            parts.append(
                f'<circle cx="{_x(index, count):.1f}" cy="{_y(value, top):.1f}" r="3" '
                f'fill="{color}"><title>{escape(labels[index])}: {value} '
                f"{escape(one.label.lower())}</title></circle>"
            )
    parts.append("</g>")
    return parts


def _description(labels: Sequence[str], series: Sequence[Series]) -> str:
    if not labels:
        return "No data."
    totals = ", ".join(f"{sum(s.values)} {s.label.lower()}" for s in series)
    return f"From {labels[0]} to {labels[-1]}: {totals}."
