"""The issue's journey, through the pages only, in Chromium: build an automation in the
builder, activate it, fire its trigger from the contact page, see the text arrive on
the sandbox phone, and reply STOP there: one confirmation, the contact opted out."""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.live_app import LiveApp
from tests.web.conftest import Member, screenshot, sign_in_browser, sqlite_only
from tests.web.test_automations import swapped

WAIT_MS = 20_000  # the embedded worker sends within a second; a loaded machine is slower


@sqlite_only
def test_it_builds_fires_and_delivers_an_automation_then_honours_stop(
    page: Any, site: LiveApp, acme: Member
) -> None:
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/automations/new")
    page.get_by_label("Name", exact=True).fill("VIP welcome")
    page.get_by_label("When a contact…").select_option("tag_added")
    swapped(page, "[id='f-trigger.tag']")
    page.get_by_label("Tag", exact=True).fill("vip")
    page.get_by_label("Message of step 1").fill("VIP: welcome %FIRSTNAME|there%, code VIP10")
    page.get_by_role("button", name="Save automation").click()
    page.wait_for_url(re.compile(r".*/app/automations/\d+\?saved=1$"))
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url(re.compile(r".*/app/automations/\d+$"))

    # The trigger, fired as a marketer does: tag the contact on their page.
    page.goto(f"{site.url}/app/contacts/{acme.contact_id}")
    page.get_by_label("Add tags").fill("vip")
    page.get_by_role("button", name="Add tags").click()
    page.wait_for_load_state()

    page.goto(f"{site.url}/app/sandbox/{acme.contact_id}")
    thread = page.get_by_role("log", name="Texts")
    thread.get_by_text("VIP: welcome Ada, code VIP10").wait_for(timeout=WAIT_MS)
    screenshot(page, "journey-phone")

    page.get_by_label("Reply as this contact").fill("STOP")
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_load_state()
    confirmation = thread.get_by_text("You are unsubscribed from Acme")
    confirmation.wait_for(timeout=WAIT_MS)
    assert page.locator("#consent").inner_text() == "opted out"
    page.wait_for_timeout(1500)  # two more polls of the thread: nothing after it
    page.reload()
    assert confirmation.count() == 1
    last = page.locator(".bubble").last.inner_text()
    assert "You are unsubscribed from Acme" in last
