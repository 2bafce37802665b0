"""`among` and `unindexed`: the batch filters of the engine's statements, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from sendline.store.batch_filter import IdList, among, unindexed
from sendline.store.models import Account, Contact
from tests.engine.factories import make_account


def _contacts(session: Session, owner: Account, count: int) -> list[Contact]:
    made = [
        Contact(account_id=owner.id, first_name=f"C{i}", email=f"c{i}@example.com")
        for i in range(count)
    ]
    session.add_all(made)
    session.flush()
    return made


def test_it_handles_integer_and_text_lists(session: Session) -> None:
    owner = make_account(session)
    made = _contacts(session, owner, 5)
    wanted = [made[0].id, made[3].id, made[4].id]
    ids = session.scalars(select(Contact.id).where(among(session, Contact.id, wanted)))
    assert sorted(ids) == sorted(wanted)
    emails = ["c1@example.com", "c2@example.com", "nobody@example.com"]
    found = session.scalars(select(Contact.email).where(among(session, Contact.email, emails)))
    assert sorted(found) == emails[:2]


def test_it_handles_ids_beyond_32_bits_as_one_binary_array(session: Session, backend: str) -> None:
    owner = make_account(session)
    made = _contacts(session, owner, 2)
    wanted = [made[1].id, 2**40]  # a BIGINT id next to an integer column's
    ids = session.scalars(select(Contact.id).where(among(session, Contact.id, wanted)))
    assert list(ids) == [made[1].id]
    if backend == "postgresql":
        # Bound as IdList, which psycopg dumps in binary (store.db registers it), not
        # as a plain list quoted element by element.
        bound = among(session, Contact.id, wanted).compile(dialect=session.get_bind().dialect)
        assert [type(value) for value in bound.params.values()] == [IdList]


def test_it_handles_an_empty_list_and_awkward_text(session: Session) -> None:
    owner = make_account(session)
    made = _contacts(session, owner, 2)
    made[0].email = 'o\'brien "quoted" ,[]@example.com'
    session.flush()
    assert list(session.scalars(select(Contact.id).where(among(session, Contact.id, [])))) == []
    found = session.scalars(
        select(Contact.id).where(among(session, Contact.email, [made[0].email]))
    )
    assert list(found) == [made[0].id]


def test_it_handles_a_condition_that_leaves_the_index_to_the_ids(session: Session) -> None:
    owner = make_account(session)
    made = _contacts(session, owner, 3)
    made[1].sms_consent = "opted_in"
    session.flush()
    changed = session.execute(
        update(Contact)
        .where(
            among(session, Contact.id, [c.id for c in made]),
            unindexed(Contact.sms_consent) == "opted_in",
        )
        .values(first_name="Opted")
        .returning(Contact.id)
        .execution_options(synchronize_session=False)
    ).all()
    assert [row[0] for row in changed] == [made[1].id]


def test_it_handles_sqlites_plan_for_a_batch_of_claimed_messages(session: Session) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans by statistics; this pins SQLite's planner, which has none")
    from sendline.engine.outbox import ours  # noqa: PLC0415 - the engine's own condition
    from sendline.store.engine_models import Message  # noqa: PLC0415

    statement = update(Message).where(*ours(session, "w1", [1, 2, 3])).values(status="sent")
    sql = str(statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    plan = " ".join(row[3] for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    # One primary-key lookup per id, not a walk of every message in the status.
    assert "INTEGER PRIMARY KEY" in plan
    assert "ix_messages_due" not in plan
