"""`make run`: set up a demo account on the embedded default, then start the service.

Idempotent: the first run creates the "demo" account (a legacy Professional account,
so SMS works without buying the add-on), a few contacts who opted in on a web form (and
two who cannot be texted, to show why), and an active welcome automation; the contacts
then subscribe to the list that triggers it. Later runs find it all in place.

It also creates the dashboard's demo user, whose sign-in it prints. The password is
public, so this is a demo on loopback (`SENDLINE_HOST` defaults to 127.0.0.1), not a
way to set up a real account: real users come from `sendline users create`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from rich.panel import Panel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.cli.common import console
from sendline.config import load_settings
from sendline.engine.actions import Actions
from sendline.engine.automations import Automations
from sendline.services.users import create_user
from sendline.store.accounts import Accounts
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from sendline.store.credits import Credits
from sendline.store.db import open_engine, session_factory, upgrade
from sendline.store.user_models import User

ACCOUNT = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "sendline-demo"
DISCLOSURE = (
    "By entering your number you agree to receive marketing texts from Demo Shop at the "
    "number provided. Consent is not a condition of purchase. Msg & data rates may apply. "
    "Reply STOP to opt out, HELP for help."
)
CONTACTS = [
    ("Ada", "Lovelace", "ada@example.com", "(415) 555-0101", True),
    ("Grace", "Hopper", "grace@example.com", "+1 212 555 0199", True),
    ("Marie", "Curie", "marie@example.com", "+33 6 12 34 56 78", True),
    ("Alan", "Turing", "alan@example.com", "+44 7400 123456", False),  # never opted in
    ("Louis", "Pasteur", "louis@example.com", "+33 1 42 68 53 00", True),  # a landline
]
WELCOME = """
name: Welcome
trigger: {type: list_subscribed, list: Newsletter}
steps:
  - type: send_sms
    body: "Hi %FIRSTNAME|there%, welcome to Demo Shop! Your code WELCOME10 takes 10% off."
  - {type: wait, duration: 1m}
  - type: send_sms
    body: "%FIRSTNAME|Hi%, our spring sale starts today at shop.example.com"
"""


def set_up(session: Session) -> bool:
    """Create the demo data unless it exists; True when it was created."""
    accounts = Accounts(session)
    if accounts.find(ACCOUNT) is not None:
        return False
    account = accounts.create(
        ACCOUNT,
        product_line="marketing",
        tier="professional",
        last_purchase_on=date(2022, 6, 1),
        sender_number="+14155550100",
        # The demo sends at any hour so it shows something whenever it is run; real
        # accounts keep the 08:00-21:00 default (R14).
        quiet_start=0,
        quiet_end=24 * 60,
    )
    Credits(session, account.id).purchase(500, note="demo credits")
    contacts, consent = Contacts(session, account.id), Consent(session, account.id)
    created = []
    for first, last, email, phone, opted_in in CONTACTS:
        contact = contacts.create(first_name=first, last_name=last, email=email, phone=phone)
        if opted_in:
            consent.record(
                contact.id, "opt_in", "form", source="demo signup form", disclosure=DISCLOSURE
            )
        created.append(contact.id)
    automations = Automations(session, account.id)
    automations.create(WELCOME)
    automations.activate("Welcome")
    actions = Actions(session, account.id, now=datetime.now(UTC))
    for contact_id in created:
        actions.subscribe(contact_id, "Newsletter")
    return True


def add_demo_user(sessions: sessionmaker[Session]) -> None:
    """The dashboard's demo sign-in, unless it exists (a database from before 0018 has
    the demo account but no user)."""
    with sessions.begin() as session:
        if session.scalar(select(User.id).where(User.email == DEMO_EMAIL)) is not None:
            return
    create_user(sessions, ACCOUNT, DEMO_EMAIL, DEMO_PASSWORD)


def main() -> None:
    settings = load_settings()
    engine = open_engine(settings.database_url, require_current=False)
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        created = set_up(session)
    add_demo_user(sessions)
    engine.dispose()
    base = f"http://{settings.host}:{settings.port}"
    state = "created" if created else "already set up"
    console.print(
        Panel.fit(
            f"Demo account [bold]{ACCOUNT}[/] {state}: 5 contacts subscribed to "
            "Newsletter, which starts the active automation Welcome.\n\n"
            f"Open the dashboard: [bold]{base}/app/[/]\n"
            f"  sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}\n\n"
            "In another terminal, try:\n"
            "  .venv/bin/sendline sandbox outbox\n"
            "  .venv/bin/sendline automations preflight Welcome\n"
            "  .venv/bin/sendline messages list --status held\n"
            "  .venv/bin/sendline sandbox reply +14155550101 STOP\n"
            "  .venv/bin/sendline contacts consent-history ada@example.com\n"
            "  .venv/bin/sendline check message 'Our “big” sale: bit.ly/x'\n"
            f"  curl {base}/readyz\n\n"
            f"The HTTP API (reference at {base}/docs):\n"
            f"  .venv/bin/sendline keys create {ACCOUNT} --name me\n"
            f"  curl -H 'Authorization: Bearer sl_live_...' {base}/api/v1/messages",
            title="Sendline",
        )
    )


if __name__ == "__main__":
    main()
