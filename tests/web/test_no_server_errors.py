"""Nothing a user can type gives a 500 page: every dashboard route, walked.

Every /app route is found on the app itself, so a page added later is walked too. Each
GET gets odd path parameters and query strings; each POST gets odd form values (with
the session's CSRF token, so the route itself runs). The answer must be a page (HTML)
with a status below 500. Pages that another helper's test covers in depth still come
through here with input nobody thought of.
"""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import Browserless

ODD_VALUES = [
    "",
    " ",
    "0",
    "-1",
    "99999999999999999999999",
    "1e309",
    "abc",
    "\x00",
    "é" * 3000,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%FRISTNAME%",
    "bit.ly/x",
    "🙂",
]
ODD_IDS = ["0", "-1", "99999999999999999999999", "abc", "%00", "1.5"]
PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def web_routes(client: Browserless) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = client.http.app.state.web_routes  # type: ignore[attr-defined]
    return routes


def _filled(path: str, value: str) -> str:
    return PARAM.sub(lambda _match: value, path)


def test_it_finds_the_dashboards_routes(signed_in: Browserless) -> None:
    routes = web_routes(signed_in)
    assert ("GET", "/app/") in routes and ("POST", "/app/login") in routes


@pytest.mark.parametrize("odd", ODD_IDS)
def test_it_answers_odd_ids_and_queries_with_a_page(signed_in: Browserless, odd: str) -> None:
    for method, path in web_routes(signed_in):
        if method != "GET":
            continue
        url = _filled(path, odd)
        for query in ("", f"?q={odd}&before={odd}&status={odd}&limit={odd}&contact={odd}"):
            answer = signed_in.get(url + query, follow_redirects=False)
            assert answer.status_code < 500, (url + query, answer.status_code, answer.text[:300])


def test_it_answers_odd_form_values_with_a_page(signed_in: Browserless) -> None:
    routes = [(m, p) for m, p in web_routes(signed_in) if m == "POST" and "logout" not in p]
    for method, path in routes:
        for odd in ODD_VALUES:
            url = _filled(path, "1")
            fields = {name: odd for name in _field_names(signed_in, path)}
            answer = signed_in.post(url, data=fields, follow_redirects=False)
            assert answer.status_code < 500, (method, url, repr(odd)[:40], answer.text[:300])


def _field_names(client: Browserless, path: str) -> list[str]:
    """The names the route's own page puts in its forms (when it has a GET twin), plus
    the common ones."""
    names = {"body", "name", "phone", "email", "q", "reason", "id", "ids", "text", "value"}
    page = client.get(_filled(path, "1"), follow_redirects=False)
    if page.status_code == 200:
        names |= set(re.findall(r'name="([^"]+)"', page.text)) - {"csrf_token"}
    return sorted(names)
