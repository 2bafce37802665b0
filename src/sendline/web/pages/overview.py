"""The overview: the account at a glance, and what needs action."""

# No `from __future__ import annotations`: FastAPI evaluates `Depends(web.user)` in router().
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from sendline.services.overview import Overview, account_overview
from sendline.services.users import WebUser
from sendline.web.chart import Series, line_chart
from sendline.web.context import PREFIX, Web

# The periods offered; anything else in the link shows the default with an error.
PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30
PERIOD_ERROR = (
    f"choose a period of {PERIODS[0]}, {PERIODS[1]} or {PERIODS[2]} days;"
    f" this shows the last {DEFAULT_DAYS}"
)
# Colours of the series (WCAG AA on white), in the legend's order.
SERIES = (
    ("sent", "Sent", "#0a58ca"),
    ("delivered", "Delivered", "#1a7f37"),
    ("failed", "Failed", "#b42318"),
    ("held", "Held", "#9a6700"),
    ("opt_outs", "Opt-outs", "#6f42c1"),
)


def router(web: Web) -> APIRouter:
    pages = APIRouter()

    @pages.get(PREFIX + "/", response_class=HTMLResponse)
    def overview(
        request: Request, user: Annotated[WebUser, Depends(web.user)], days: str = ""
    ) -> HTMLResponse:
        asked = _period(days)
        # A period the page does not offer is said beside the periods, not silently replaced.
        bad = days != "" and asked is None
        period = asked or DEFAULT_DAYS
        found = account_overview(web.sessions, user.account_id, days=period)
        return web.render(
            request,
            "overview.html",
            user,
            status_code=400 if bad else 200,
            period_error=PERIOD_ERROR if bad else None,
            active="overview",
            overview=found,
            credits=found.credits,
            chart=chart_of(found),
            series=SERIES,
            period=period,
            periods=PERIODS,
        )

    return pages


def _period(days: str) -> int | None:
    """The period `?days=` asks for; None when it names none the page offers."""
    text = days.strip()
    if text.isascii() and text.isdigit() and len(text) < 4 and int(text) in PERIODS:
        return int(text)
    return None


def chart_of(found: Overview) -> Markup:
    labels = [d.day.isoformat() for d in found.days]
    series = [
        Series(key, label, color, [d.get(key) for d in found.days]) for key, label, color in SERIES
    ]
    return line_chart(labels, series, title=f"Messages over the last {len(labels)} days")
