"""Every page, in Chromium at a phone's width (375 px): it loads, nothing overflows
sideways, every field has a label, and the keyboard reaches the main content.

The pages are the app's own list (`app.state.web_routes`): a page added later is
checked too. Pages that need an object get Acme's contact.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.live_app import LiveApp
from tests.web.conftest import Member, sign_in_browser, sqlite_only

PHONE = {"width": 375, "height": 812}
PARAM = re.compile(r"\{[^}]+\}")
# Pages that are actions or downloads, not something to look at.
NOT_PAGES = re.compile(r"(\.csv|/check|/poll|/progress|/fragment|/login)$")

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""


def _pages(site: LiveApp, member: Member) -> list[str]:
    assert site.app is not None
    paths = []
    for method, path in site.app.state.web_routes:
        if method != "GET" or NOT_PAGES.search(path):
            continue
        if PARAM.search(path):
            if PARAM.findall(path) != ["{contact_id}"]:
                continue  # other objects: their own tests open them with their data
            path = path.replace("{contact_id}", str(member.contact_id))
        paths.append(path)
    return paths


@sqlite_only
def test_it_fits_every_page_on_a_phone(page: Any, site: LiveApp, acme: Member) -> None:
    page.set_viewport_size(PHONE)
    sign_in_browser(page, site, acme)
    paths = _pages(site, acme)
    assert "/app/" in paths
    for path in paths:
        answer = page.goto(site.url + path)
        assert answer is not None and answer.status == 200, path
        if page.locator("main#main").count() == 0:
            continue  # a fragment htmx fetches into a page (the composer's extras)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow} px wider than a phone"
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("h1").count() == 1, f"{path} needs one h1"


@sqlite_only
def test_it_lets_the_keyboard_skip_to_the_content(page: Any, site: LiveApp, acme: Member) -> None:
    sign_in_browser(page, site, acme)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
