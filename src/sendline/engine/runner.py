"""The runner: advances due automation runs, a batch at a time, exactly once per step.

A run is a row: the next step to run, the number of steps done, when it is next due.
A worker locks a batch of due runs (`FOR UPDATE SKIP LOCKED` lets workers on PostgreSQL
take batches side by side; SQLite serializes them with `BEGIN IMMEDIATE`) and advances
them in the SAME transaction, which holds both the steps' effects (messages, tags, new
runs) and the runs' new positions. So a step's effect is committed exactly when the run
moves past it: a crash before the commit loses both, and the runs are due again at
once (no claim to wait out); a `send_sms` replayed after a lost commit finds its
message by idempotency key (`run:<id>:<steps done>`) and never sends twice.

If one run of a batch raises, the batch is rolled back and its runs are redone one per
transaction, so a bad run fails alone. Database outages are not a run's fault: the
error propagates and the rollback leaves the runs due.

Waits set `due_at` (and `wait_until`). Any change to the contact made through
`actions` wakes its sleeping runs (due now); the runner then checks the goals ahead of
the run and, if none holds, puts it back to sleep until `wait_until`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import outbox
from sendline.engine.actions import Actions
from sendline.engine.automations import load_definition
from sendline.engine.conditions import RunScope, holds
from sendline.engine.definitions import (
    AutomationDefinition,
    ExitStep,
    GoalStep,
    IfElseStep,
    SendSmsStep,
    Step,
    WaitStep,
)
from sendline.engine.outbox import Job
from sendline.engine.pipeline import Pipeline, SmsRequest
from sendline.engine.recipients import ContactFacts, Recipient, load_facts
from sendline.engine.run_positions import RUN_COLUMNS, RunState, write_back
from sendline.engine.zones import local_zone
from sendline.errors import SendlineError
from sendline.sms.links import ShortenerList
from sendline.store.engine_models import Automation, AutomationRun, AutomationVersion
from sendline.store.models import Account
from sendline.store.types import utcnow

log = logging.getLogger(__name__)

MAX_STEPS_PER_PASS = 100  # more steps than this without a wait: an if_else loops back
GOAL_RECHECK = timedelta(days=1)  # a run waiting at a goal looks again at least daily


@dataclass
class _Batch:
    """What a batch loads once: contacts, definitions, one Pipeline per account."""

    session: Session
    now: datetime
    contacts: dict[int, ContactFacts]
    definitions: dict[int, AutomationDefinition]
    pipelines: dict[int, Pipeline]
    touched: dict[int, set[int]] = field(default_factory=dict)  # contact -> runs that acted
    sends: list[tuple[int, ContactFacts, SmsRequest]] = field(default_factory=list)
    claim_for: str | None = None  # the worker that claims the messages queued due now
    claimed: list[Job] = field(default_factory=list)

    def _claim(self, rows: list[dict[str, Any]]) -> None:
        assert self.claim_for is not None
        self.claimed.extend(outbox.claim_new(rows, self.claim_for, self.now))

    def queue_sends(self) -> None:
        """Queue the batch's pending send_sms steps (before anything reads messages).

        Collected, then queued per account with set-based SQL (`Pipeline.queue_many`), in
        the same transaction as the runs' new positions.
        """
        by_account: dict[int, list[tuple[Recipient, SmsRequest]]] = {}
        for account_id, contact, request in self.sends:
            by_account.setdefault(account_id, []).append((contact, request))
        claim = self._claim if self.claim_for is not None else None
        for account_id, items in by_account.items():
            self.pipelines[account_id].queue_many(self.session, items, self.now, claim)
        self.sends.clear()


class Runner:
    """Advances due runs; one per worker process (`worker_id` names its claims)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        worker_id: str,
        batch_size: int = 200,
        clock: Callable[[], datetime] = utcnow,
        shorteners: ShortenerList | None = None,
        claim_sends: bool = False,
    ) -> None:
        self._sessions = session_factory
        # With its worker's dispatcher next in line, the runner claims the messages it
        # queues due now (`outbox.claim_new`); `take_claimed` hands them over.
        self.claim_sends = claim_sends
        self._claimed: list[Job] = []
        self._claimed_at: datetime | None = None
        self.worker_id = worker_id
        self.batch_size = batch_size
        self._clock = clock
        self._shorteners = shorteners

    def run_due(self, max_batches: int | None = None) -> int:
        """Advance the due runs, batch after batch, until none is left (or `max_batches`,
        so a worker can interleave sending); returns the runs advanced."""
        total = batches = 0
        while max_batches is None or batches < max_batches:
            advanced = self.advance_due()
            if not advanced:
                break
            total += advanced
            batches += 1
        return total

    def take_claimed(self) -> tuple[list[Job], datetime | None]:
        """The messages claimed for this worker since the last call (committed), and
        when the oldest of them was claimed."""
        claimed, claimed_at = self._claimed, self._claimed_at
        self._claimed, self._claimed_at = [], None
        return claimed, claimed_at

    def advance_due(self, run_id: int | None = None) -> int:
        """Lock up to batch_size due runs (or just `run_id`, if due) and advance them in
        one transaction; a batch that fails is redone run by run. Returns the runs
        advanced (a run that failed on its own counts: it moved, to `failed`)."""
        now = self._clock()
        locked: list[int] = []
        try:
            with self._sessions.begin() as session:
                runs = self._lock_due(session, now, run_id)
                locked = [run.id for run in runs]
                claimed = self._advance_batch(session, runs, now)
            if claimed:  # committed: they are this worker's to send now
                self._claimed_at = self._claimed_at or now
                self._claimed.extend(claimed)
            return len(runs)
        except DBAPIError as exc:
            if not isinstance(exc, IntegrityError | DataError):
                raise  # the database, not the run: the rollback left the runs due
            error: Exception = exc
        except Exception as exc:  # noqa: BLE001 - any bug in one run must not stop the rest
            error = exc
        if run_id is None:
            return sum(self.advance_due(each) for each in locked)
        log.error("automation run %s failed: %s", run_id, error)
        self._fail(run_id, error)
        return 1

    def _lock_due(self, session: Session, now: datetime, run_id: int | None) -> list[RunState]:
        """The due runs of active automations, locked until the batch commits: `FOR
        UPDATE SKIP LOCKED` lets workers on PostgreSQL take batches side by side; SQLite
        transactions start with BEGIN IMMEDIATE, so one writer at a time."""
        query = (
            select(*RUN_COLUMNS)
            .join(Automation, Automation.id == AutomationRun.automation_id)
            .where(
                AutomationRun.status == "active",
                AutomationRun.due_at <= now,
                Automation.status == "active",
            )
            .order_by(AutomationRun.due_at)  # the index order: no sort of every due run
            .limit(self.batch_size)
            .with_for_update(skip_locked=True, of=AutomationRun)
        )
        if run_id is not None:
            query = query.where(AutomationRun.id == run_id)
        return [RunState(*row) for row in session.execute(query)]

    # -- one batch -----------------------------------------------------------------

    def _advance_batch(self, session: Session, runs: list[RunState], now: datetime) -> list[Job]:
        """Advance the runs; returns the messages claimed for this worker."""
        if not runs:
            return []
        batch = self._load(session, runs, now)
        batch.claim_for = self.worker_id if self.claim_sends else None
        for run in runs:
            self._advance(batch, run)
        batch.queue_sends()
        for run in runs:
            # Woken by another run of the same contact after it went back to sleep.
            others = batch.touched.get(run.contact_id, set()) - {run.id}
            if others and run.status == "active" and run.due_at and run.due_at > now:
                run.due_at = now
        write_back(session, runs, now)
        return batch.claimed

    def _load(self, session: Session, runs: list[RunState], now: datetime) -> _Batch:
        contact_ids = {r.contact_id for r in runs}
        versions = session.execute(
            select(AutomationVersion.id, AutomationVersion.definition).where(
                AutomationVersion.id.in_({r.version_id for r in runs})
            )
        )
        account_ids = {r.account_id for r in runs}
        accounts = session.scalars(select(Account).where(Account.id.in_(account_ids)))
        return _Batch(
            session=session,
            now=now,
            contacts=load_facts(session, contact_ids),
            definitions={vid: load_definition(data) for vid, data in versions},
            pipelines={a.id: Pipeline(a, self._shorteners) for a in accounts},
        )

    def _fail(self, run_id: int, error: Exception) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(AutomationRun)
                .where(AutomationRun.id == run_id, AutomationRun.status == "active")
                .values(
                    status="failed",
                    error=f"{type(error).__name__}: {error}"[:2000],
                    due_at=None,
                    updated_at=self._clock(),
                )
            )

    # -- one run -------------------------------------------------------------------

    def _advance(self, batch: _Batch, run: RunState) -> None:
        definition = batch.definitions[run.version_id]
        if run.contact_id not in batch.contacts:
            run.end("failed", "the contact no longer exists")
            return
        if run.wait_until is not None and run.wait_until > batch.now:
            # Woken before its time by a change to the contact: only a goal moves it now.
            if not _reach_goal(batch, run, definition):
                run.due_at = run.wait_until
                return
        run.wait_until = None
        for _ in range(MAX_STEPS_PER_PASS):
            if run.step_id is None:
                run.end("completed")
                return
            if _reach_goal(batch, run, definition):
                continue
            if not self._step(batch, run, definition):
                return
        run.end("failed", f"more than {MAX_STEPS_PER_PASS} steps without a wait (a loop?)")

    def _step(self, batch: _Batch, run: RunState, definition: AutomationDefinition) -> bool:
        """Run the step at the run's position; False when the run waits or ended."""
        assert run.step_id is not None
        node = definition.graph.node(run.step_id)
        step, following = node.step, node.next
        done, run.steps_done = run.steps_done, run.steps_done + 1
        contact = batch.contacts[run.contact_id]
        if isinstance(step, SendSmsStep):
            request = SmsRequest(
                template=step.body,
                automation_id=run.automation_id,
                run_id=run.id,
                step_id=step.id,
                idempotency_key=f"run:{run.id}:{done}",
                event=run.context.get("event"),
                transactional=definition.transactional,
            )
            batch.sends.append((run.account_id, contact, request))
        elif isinstance(step, WaitStep):
            run.step_id = following
            run.wait_until = run.due_at = step.ends_at(batch.now, local_zone(contact.time_zone))
            return False
        elif isinstance(step, IfElseStep):
            # A branch's steps, then the join; or where its jump says (engine/step_graph.py).
            run.step_id = definition.graph.entry(node, _holds(batch, run, step))
            return True
        elif isinstance(step, GoalStep):
            return _at_goal(batch, run, step, following)
        elif isinstance(step, ExitStep):
            run.end("exited")
            return False
        else:
            self._act(batch, run, step)
            if run.status != "active":
                return False
        run.step_id = following
        return True

    def _act(self, batch: _Batch, run: RunState, step: Step) -> None:
        """A contact change; a refused change (a field since deleted) fails this run only."""
        actions = Actions(
            batch.session, run.account_id, now=batch.now, depth=run.context.get("depth", 0) + 1
        )
        try:
            with batch.session.begin_nested():  # a refused change leaves nothing behind
                actions.apply(run.contact_id, step)
        except SendlineError as exc:
            run.end("failed", f"step {step.id}: {exc.message}")
            return
        batch.touched.setdefault(run.contact_id, set()).add(run.id)
        # Later steps of this pass read the contact as the change left it.
        batch.contacts.update(load_facts(batch.session, [run.contact_id]))


def _holds(batch: _Batch, run: RunState, step: IfElseStep | GoalStep) -> bool:
    batch.queue_sends()  # a condition may read the messages just sent
    scope = RunScope(run_id=run.id, started_at=run.created_at)
    return holds(batch.session, run.contact_id, step.condition, scope)


def _at_goal(batch: _Batch, run: RunState, step: GoalStep, following: str | None) -> bool:
    """A run reaching a goal in sequence: past it if met, else as `otherwise` says."""
    if _holds(batch, run, step) or step.otherwise == "continue":
        run.step_id = following
        return True
    if step.otherwise == "exit":
        run.end("exited")
        return False
    run.due_at = batch.now + GOAL_RECHECK  # stays at the goal; actions wake it sooner
    return False


def _reach_goal(batch: _Batch, run: RunState, definition: AutomationDefinition) -> bool:
    """Jump past the furthest goal ahead of the run whose condition holds, if any."""
    for goal in definition.graph.goals_ahead(run.step_id):
        assert isinstance(goal.step, GoalStep)
        if _holds(batch, run, goal.step):
            run.step_id = goal.next
            run.steps_done += 1
            run.wait_until = None
            return True
    return False
