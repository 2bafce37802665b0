"""The automation pages on both databases: building one with the form (errors beside
the inputs, what was typed kept), the builder's buttons, validate, save, activate and
pause, versions, the pre-flight report, another account's automation a 404 page, odd
input never a 500; and in Chromium, an automation built, activated and sending."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.automation_edits import save_definition
from sendline.services.automation_pages import automation_full, page_versions
from sendline.services.automations import send_account_event
from sendline.services.messages import list_messages
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

WELCOME = {
    "name": "Welcome",
    "reentry": "once",
    "trigger.type": "event",
    "trigger.name": "signed_up",
    "steps.0.type": "send_sms",
    "steps.0.body": "Hi %FIRSTNAME|there%, welcome aboard!",
}
SAVED = re.compile(r"/app/automations/(\d+)\?saved=(\d+)$")


def save(pages: Browserless, fields: dict[str, str], url: str = "/app/automations/new") -> int:
    answer = pages.post(url, {**fields, "op": "save"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    found = SAVED.search(answer.headers["location"])
    assert found is not None
    return int(found.group(1))


def error_beside(page: str, name: str) -> str:
    found = re.search(rf'id="error-{re.escape(name)}" role="alert">([^<]*)<', page)
    assert found is not None, f"no error beside {name}"
    return found.group(1)


def test_it_builds_an_automation_with_the_form(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    assert "No automations" in signed_in.get("/app/automations").text
    builder = signed_in.get("/app/automations/new")
    assert builder.status_code == 200
    assert 'name="trigger.type"' in builder.text and 'name="steps.0.body"' in builder.text
    automation_id = save(signed_in, WELCOME)
    page = signed_in.get(f"/app/automations/{automation_id}?saved=1")
    assert "Saved: version 1." in page.text and "draft" in page.text
    assert "Hi %FIRSTNAME|there%, welcome aboard!" in page.text
    listed = signed_in.get("/app/automations").text
    assert "Welcome" in listed and "signed_up" in listed and "step-1" in listed
    full = automation_full(session_factory, acme.account_id, automation_id)
    assert full.definition["trigger"] == {"type": "event", "name": "signed_up"}


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [
        ("steps.0.body", "Hi %FRISTNAME%, welcome!", "FRISTNAME"),
        ("steps.0.body", "Deals at https://bit.ly/deal", "bit.ly"),
        ("steps.0.body", "", "at least 1 character"),
        ("name", "", "at least 1 character"),
        ("trigger.name", "", "Field required"),
    ],
)
def test_it_shows_errors_beside_the_fields_and_keeps_what_was_typed(
    signed_in: Browserless, field: str, typed: str, said: str
) -> None:
    fields = {**WELCOME, field: typed}
    answer = signed_in.post("/app/automations/new", {**fields, "op": "save"})
    assert answer.status_code == 400
    assert said in error_beside(answer.text, field)
    if typed:
        assert typed in answer.text  # kept, to fix rather than retype
    assert 'value="signed_up"' in answer.text or field == "trigger.name"
    assert "No automations" in signed_in.get("/app/automations").text  # nothing saved


def test_it_pages_and_filters_the_list(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    for number in range(22):
        data = {"name": f"Auto {number:02}", "trigger": {"type": "event", "name": "e"}}
        save_definition(session_factory, acme.account_id, {**data, "steps": [{"type": "exit"}]})
    first = signed_in.get("/app/automations").text
    assert "Auto 21" in first and "Auto 02" in first and "Auto 01" not in first
    older = re.search(r'href="(/app/automations\?before=\d+)"', first)
    assert older is not None
    rest = signed_in.get(older.group(1)).text
    assert "Auto 01" in rest and "Auto 00" in rest and "Auto 02" not in rest
    assert "No automations in state active" in signed_in.get("/app/automations?state=active").text
    assert "No automations in state active" in signed_in.get("/app/automations?status=active").text
    for odd in ("?before=x", "?before=" + "9" * 40):
        assert signed_in.get("/app/automations" + odd).status_code == 200
    for odd in ("zzz", "\x00", "a" * 5000, "ACTIVE", "😀"):
        for name in ("state", "status"):
            bad = signed_in.get("/app/automations", params={name: odd})
            assert bad.status_code == 400, (name, odd)
            assert '<p class="error" id="f-status-error" role="alert">' in bad.text
            assert 'aria-invalid="true"' in bad.text and "choose a state from the list" in bad.text


def test_it_validates_without_saving(signed_in: Browserless) -> None:
    answer = signed_in.post("/app/automations/new", {**WELCOME, "op": "validate"})
    assert answer.status_code == 200
    assert "This definition is valid: 1 step, 1 text" in answer.text
    assert "No automations" in signed_in.get("/app/automations").text


def test_it_refuses_a_name_taken_beside_the_name(signed_in: Browserless) -> None:
    save(signed_in, WELCOME)
    answer = signed_in.post("/app/automations/new", {**WELCOME, "op": "save"})
    assert answer.status_code == 400
    assert "already exists" in error_beside(answer.text, "name")


def test_it_builds_branches_with_the_buttons(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    fields = dict(WELCOME)

    def press(op: str, **extra: str) -> str:
        answer = signed_in.post("/app/automations/new", {**fields, **extra, "op": op})
        assert answer.status_code == 200, answer.text
        return str(answer.text)

    page = press("add:steps", **{"add.steps": "if_else"})
    assert 'name="steps.1.condition.kind"' in page and "Add branch step" in page
    fields |= {"steps.1.type": "if_else", "steps.1.condition.kind": "tag"}
    fields |= {"steps.1.condition.tag": "vip", "steps.1.condition.present": "yes"}
    page = press("add:steps.1.then", **{"add.steps.1.then": "send_sms"})
    assert 'name="steps.1.then.0.body"' in page
    fields |= {"steps.1.then.0.type": "send_sms", "steps.1.then.0.body": "VIP gift inside"}
    page = press("up:steps.1")
    assert page.index('name="steps.0.condition.kind"') < page.index('name="steps.1.body"')
    automation_id = save(signed_in, fields)
    steps = automation_full(session_factory, acme.account_id, automation_id).definition["steps"]
    assert steps[1]["then"][0]["body"] == "VIP gift inside"
    assert steps[1]["condition"] == {"tag": "vip", "present": True}


def test_it_puts_a_branch_steps_error_beside_it(signed_in: Browserless) -> None:
    fields = {
        **WELCOME,
        "steps.1.type": "if_else",
        "steps.1.condition.kind": "tag",
        "steps.1.condition.tag": "vip",
        "steps.1.then.0.type": "send_sms",
        "steps.1.then.0.body": "Go to bit.ly/vip",
        "steps.1.else.0.type": "wait",
        "steps.1.else.0.duration": "400d",
    }
    answer = signed_in.post("/app/automations/new", {**fields, "op": "validate"})
    assert answer.status_code == 400
    assert "366 days" in error_beside(answer.text, "steps.1.else.0")
    assert "Go to bit.ly/vip" in answer.text and 'value="400d"' in answer.text
    # The account's checks (links, fields) run on a definition that parses.
    fields["steps.1.else.0.duration"] = "4d"
    answer = signed_in.post("/app/automations/new", {**fields, "op": "validate"})
    assert answer.status_code == 400
    assert "bit.ly" in error_beside(answer.text, "steps.1.then.0.body")
    fields["steps.1.then.0.body"] = "Hi %FRISTNAME%, a gift"
    answer = signed_in.post("/app/automations/new", {**fields, "op": "validate"})
    said = error_beside(answer.text, "steps.1.then.0.body")
    assert "FRISTNAME" in said and not said.startswith("step ")  # no internal step id
    assert "Step 2 → then, step 1: Send a text" in answer.text
    assert "Step 2 → else, step 1: Wait" in answer.text


def test_it_titles_nested_branch_steps_by_where_they_sit(signed_in: Browserless) -> None:
    fields = {
        **WELCOME,
        "steps.1.type": "if_else",
        "steps.1.condition.kind": "tag",
        "steps.1.condition.tag": "vip",
        "steps.1.then.0.type": "add_tag",
        "steps.1.then.0.tag": "gift",
        "steps.1.then.1.type": "if_else",
        "steps.1.then.1.condition.kind": "tag",
        "steps.1.then.1.condition.tag": "gold",
        "steps.1.then.1.else.0.type": "exit",
    }
    page = signed_in.post("/app/automations/new", {**fields, "op": "refresh"}).text
    assert "Step 1: Send a text" in page and "Step 2 → then, step 1:" in page
    assert "Step 2 → then, step 2 → else, step 1:" in page


def test_it_shows_hints_without_markdown_backticks(signed_in: Browserless) -> None:
    page = signed_in.get("/app/automations/new").text
    assert "sendline events send" in page and "`" not in page


def test_it_activates_pauses_and_archives(signed_in: Browserless) -> None:
    automation_id = save(signed_in, WELCOME)
    url = f"/app/automations/{automation_id}"
    refused = signed_in.post(url + "/pause")  # a draft cannot be paused: said on its page
    assert refused.status_code == 409 and "only an active automation" in refused.text
    assert signed_in.post(url + "/activate", follow_redirects=False).status_code == 303
    assert ">active<" in signed_in.get(url).text and ">Pause<" in signed_in.get(url).text
    assert signed_in.post(url + "/pause", follow_redirects=False).status_code == 303
    assert ">paused<" in signed_in.get(url).text
    assert signed_in.post(url + "/archive", follow_redirects=False).status_code == 303
    assert "Edit (new version)" not in signed_in.get(url).text
    assert signed_in.post(url + "/activate").status_code == 409
    assert signed_in.post(url + "/explode").status_code == 404


def test_it_saves_a_new_version_and_lists_the_versions(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    automation_id = save(signed_in, WELCOME)
    url = f"/app/automations/{automation_id}"
    assert signed_in.post(url + "/activate", follow_redirects=False).status_code == 303
    edit = signed_in.get(url + "/edit").text
    assert 'value="step-1"' in edit and "Welcome" in edit  # the saved ids are kept
    changed = {**WELCOME, "steps.0.id": "step-1", "steps.0.body": "Welcome, v2!"}
    assert save(signed_in, changed, url + "/edit") == automation_id
    rows = page_versions(session_factory, acme.account_id, automation_id, limit=10)
    assert [row.number for row in rows] == [2, 1]
    page = signed_in.get(url + "/versions").text
    assert "Version 2" in page and "Version 1" in page and "Welcome, v2!" in page
    old = signed_in.get(url + "/edit?version=1").text
    assert "welcome aboard!" in old
    assert signed_in.get(url + "/edit?version=9").status_code == 404


def test_it_shows_the_preflight_report(signed_in: Browserless) -> None:
    fields = {**WELCOME, "trigger.type": "bulk", "trigger.segment.kind": "none"}
    automation_id = save(signed_in, fields)
    page = signed_in.get(f"/app/automations/{automation_id}/preflight")
    assert page.status_code == 200
    assert "Pre-flight report" in page.text and "Would be texted" in page.text


def test_it_loads_a_definition_pasted_as_yaml(signed_in: Browserless) -> None:
    text = "name: Pasted\ntrigger: {type: tag_added, tag: vip}\nsteps:\n  - {type: exit}\n"
    answer = signed_in.post("/app/automations/new", {"op": "load", "definition_text": text})
    assert answer.status_code == 200
    assert 'value="Pasted"' in answer.text and 'name="trigger.tag"' in answer.text
    bad = signed_in.post("/app/automations/new", {"op": "load", "definition_text": "[: nope"})
    assert bad.status_code == 400
    assert "not valid YAML" in error_beside(bad.text, "definition_text")
    assert "[: nope" in bad.text


def test_it_answers_htmx_with_the_builder_alone(signed_in: Browserless) -> None:
    htmx = {"HX-Request": "true"}
    answer = signed_in.post(
        "/app/automations/new", {**WELCOME, "op": "add:steps", "add.steps": "wait"}, headers=htmx
    )
    assert answer.status_code == 200
    assert answer.text.lstrip().startswith('<div id="builder"') and "<html" not in answer.text
    saved = signed_in.post("/app/automations/new", {**WELCOME, "op": "save"}, headers=htmx)
    assert saved.headers["HX-Redirect"].startswith("/app/automations/")


def test_it_shows_another_accounts_automation_as_a_404_page(
    signed_in: Browserless, globex: Member, session_factory: sessionmaker[Session]
) -> None:
    data = {
        "name": "Secret",
        "trigger": {"type": "event", "name": "x"},
        "steps": [{"type": "exit"}],
    }
    theirs = save_definition(session_factory, globex.account_id, data).automation_id
    url = f"/app/automations/{theirs}"
    for path in ("", "/edit", "/versions", "/preflight", "/edit?version=1"):
        answer = signed_in.get(url + path)
        assert answer.status_code == 404, path
        assert "Not found" in answer.text and "Secret" not in answer.text
    for path in ("/activate", "/pause", "/archive", "/edit"):
        assert signed_in.post(url + path, {**WELCOME, "op": "save"}).status_code == 404, path
    assert "Secret" not in signed_in.get("/app/automations").text
    assert automation_full(session_factory, globex.account_id, theirs).row.status == "draft"


@pytest.mark.parametrize(
    "ref", ["abc", "0", "-1", "99999999999999999999999", "1e3", "%00", "١", "9223372036854775808"]
)
def test_it_answers_an_odd_id_with_a_404_page(signed_in: Browserless, ref: str) -> None:
    assert signed_in.get(f"/app/automations/{ref}").status_code == 404
    assert signed_in.post(f"/app/automations/{ref}/activate").status_code == 404


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"op": "save"},
        {"op": "validate", "name": "x" * 100_000, "steps.0.type": "send_sms"},
        {**WELCOME, "op": "save", "steps.0.body": "é" * 5000},
        {**WELCOME, "op": "save", "name": "nul\x00name", "steps.0.body": "a\x00b"},
        {**WELCOME, "op": "save", "trigger.type": "date", "trigger.offset_days": "abc"},
        {**WELCOME, "op": "save", "trigger.type": "date", "trigger.offset_days": "9" * 400},
        {**WELCOME, "op": "save", "trigger.type": "nope"},
        {**WELCOME, "op": "save", "steps.0.type": "teleport"},
        {**WELCOME, "op": "save", "steps.0.type": "wait", "steps.0.duration": "9" * 50 + "d"},
        {**WELCOME, "op": "save", "steps.0.type": "wait", "steps.0.until_time": "25:99"},
        {
            **WELCOME,
            "op": "save",
            "steps.0.type": "if_else",
            "steps.0.condition.kind": "field",
            "steps.0.condition.op": "gt",
            "steps.0.condition.value": "nan",
        },  # fmt: skip
        {
            **WELCOME,
            "op": "save",
            "steps.0.type": "if_else",
            "steps.0.condition.kind": "json",
            "steps.0.condition.json": "[" * 5000,
        },  # fmt: skip
        {**WELCOME, "op": "save", "steps.0.type": "goal", "steps.0.condition.kind": "weird"},
        {**WELCOME, "op": "add:steps", "add.steps": "if_else" * 1000},
        {**WELCOME, "op": "remove:steps.99999999999999999999"},
        {**WELCOME, "op": "up:" + "steps.0.then" * 500},
        {"op": "load", "definition_text": "[" * 50_000},
        {"op": "load", "definition_text": "a: &a [*a, *a]\nb: 1"},
        {"op": "load", "definition_text": "name: x\ntrigger: 5\nsteps: {a: 2020-01-01}"},
        {"op": "load", "definition_text": "- 1\n- 2"},
        {"steps.0.then.0.then.0.then.0.then.0.then.0.then.0.type": "send_sms", "op": "save"},
    ],
)
def test_it_never_answers_odd_input_with_a_500(
    signed_in: Browserless, fields: dict[str, Any]
) -> None:
    answer = signed_in.post("/app/automations/new", fields)
    assert answer.status_code in (200, 303, 400), answer.text[:2000]
    assert "<html" in answer.text or answer.status_code == 303


# --- real Chromium ---------------------------------------------------------------------


def swapped(page: Any, selector: str) -> None:
    """Wait for htmx to put in the new builder (holding `selector`) and wire it: htmx
    processes swapped-in content when it settles (20 ms later); a change made by a
    test faster than a person would otherwise fire no request."""
    page.locator(selector).first.wait_for()
    page.wait_for_function("() => !document.querySelector('.htmx-settling, .htmx-request')")


def _sent(session_factory: sessionmaker[Session], member: Member, body: str) -> list[Any]:
    return [
        m
        for m in list_messages(session_factory, member.account_id, limit=50)
        if (m.body or "").startswith(body) and m.status in ("sent", "delivered")
    ]


@sqlite_only
def test_it_builds_activates_and_runs_an_automation_in_chromium(
    page: Any, site: LiveApp, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/automations/new")
    page.get_by_label("Name", exact=True).fill("Browser welcome")
    page.get_by_label("When a contact…").select_option("tag_added")  # htmx re-renders
    swapped(page, "[id='f-trigger.tag']")
    page.get_by_label("When a contact…").select_option("event")
    swapped(page, "[id='f-trigger.name']")
    page.get_by_label("Event name").fill("joined_club")
    page.get_by_label("Message of step 1").fill("Welcome to the club, %FIRSTNAME%!")
    page.get_by_label("New step", exact=True).select_option("add_tag")
    page.get_by_role("button", name="Add step").click()
    swapped(page, "[id='f-steps.1.tag']")
    page.get_by_label("Tag", exact=True).fill("club")
    page.get_by_label("Tag", exact=True).press("Enter")  # re-shows the builder, moves nothing
    swapped(page, "[id='f-steps.1.tag']")
    assert page.get_by_label("Message of step 1").input_value().startswith("Welcome")
    page.get_by_label("Message of step 1").fill("Welcome to the club, %FRISTNAME%!")
    page.get_by_role("button", name="Validate").click()
    swapped(page, "[id='error-steps.0.body']")
    assert "FRISTNAME" in page.locator("[id='error-steps.0.body']").inner_text()
    assert page.get_by_label("Tag", exact=True).input_value() == "club"  # what was typed is kept
    screenshot(page, "automation-builder")
    page.get_by_label("Message of step 1").fill("Welcome to the club, %FIRSTNAME%!")
    page.get_by_role("button", name="Save automation").click()
    page.wait_for_url(re.compile(r".*/app/automations/\d+\?saved=1$"))
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url(re.compile(r".*/app/automations/\d+$"))
    assert page.locator(".badge").first.inner_text() == "active"

    event = send_account_event(
        session_factory, acme.account_id, str(acme.contact_id), "joined_club"
    )
    assert event.started == 1, event.reasons
    deadline = time.monotonic() + 20
    while not _sent(session_factory, acme, "Welcome to the club, Ada!"):
        every = list_messages(session_factory, acme.account_id, limit=50)
        assert time.monotonic() < deadline, f"the automation's text was not sent: {every}"
        time.sleep(0.1)
    page.get_by_role("link", name="Pre-flight report").click()
    assert page.get_by_role("heading", name="Pre-flight report").is_visible()
    assert "1 sent" in page.locator(".step-table").inner_text() or "1 delivered" in (
        page.locator(".step-table").inner_text()
    )
    screenshot(page, "automation")
    page.get_by_role("link", name="version history").click()
    assert page.get_by_role("heading", name="Version 1 current").is_visible()
    screenshot(page, "automation-versions")
    page.goto(site.url + "/app/automations")
    assert page.get_by_role("link", name="Browser welcome").is_visible()
    screenshot(page, "automations")
    # Readable on a phone: the builder with a branch is no wider than 375 px.
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(site.url + "/app/automations/new")
    page.get_by_label("New step", exact=True).select_option("if_else")
    page.get_by_role("button", name="Add step").click()
    swapped(page, "[id='f-steps.1.condition.kind']")
    page.get_by_role("button", name="Add a step in “then” of step 2").click()
    swapped(page, "#f-steps-1-then-0-body")  # a composer: ids without dots
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
