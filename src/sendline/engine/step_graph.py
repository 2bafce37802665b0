"""An automation's steps as a graph: where each step leads, and what is refused at save.

A definition is a tree (an `if_else` holds its branches' step lists); a run's position is
one step id. The graph maps each id to its step and to the step that follows it: the
next one in its list or, at the end of a branch, the step after the `if_else` (the
join). A branch given as a step id jumps there and goes on from there.

Refused when an automation is saved (`problems`), not when a contact gets there:
- a loop that can come back to a step without a wait in between: a back-jump once sent
  one contact the same text three times in one second;
- an `if_else` whose two branches are both given and one runs on into the other: a VIP
  contact once got both variants of a message;
- a goal inside a branch: "contacts anywhere before the goal" must mean the main path.

Versions saved before these checks still load and run as written (the runner's step
limit per pass stops a loop); `automations show` lists their problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sendline.engine.definitions import (
    AutomationDefinition,
    ExitStep,
    GoalStep,
    IfElseStep,
    InvalidAutomation,
    Step,
    WaitStep,
)


@dataclass(frozen=True, slots=True)
class Node:
    step: Step
    next: str | None  # after this step: the next of its list, or the join; None: the end
    order: int  # reading order: a goal catches the runs at the steps before it
    depth: int  # 0: the main path; n: inside n branches


class StepGraph:
    """The steps of one definition by id, with where each leads."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.nodes: dict[str, Node] = {}
        self._add(steps, None, 0)
        # Furthest first: a run jumps past the furthest goal ahead of it that holds.
        self.goals = sorted(
            (n for n in self.nodes.values() if isinstance(n.step, GoalStep)),
            key=lambda n: -n.order,
        )

    def _add(self, steps: Sequence[Step], after: str | None, depth: int) -> None:
        for index, step in enumerate(steps):
            following = steps[index + 1].id if index + 1 < len(steps) else after
            self.nodes[_id(step)] = Node(step, following, len(self.nodes), depth)
            if isinstance(step, IfElseStep):
                for _, branch in step.branches():
                    self._add(branch, following, depth + 1)

    def node(self, step_id: str) -> Node:
        return self.nodes[step_id]

    def entry(self, node: Node, condition_holds: bool) -> str | None:
        """The first step of the branch an `if_else` takes (its join if the branch is empty)."""
        assert isinstance(node.step, IfElseStep)
        branch = node.step.then if condition_holds else node.step.else_
        if isinstance(branch, list):
            return _id(branch[0]) if branch else node.next
        return branch if branch is not None else node.next

    def goals_ahead(self, step_id: str | None) -> Iterator[Node]:
        """The goals at or after a position (the end: none), furthest first."""
        position = self.nodes[step_id].order if step_id is not None else len(self.nodes)
        return (goal for goal in self.goals if goal.order >= position)

    # -- what a save refuses -------------------------------------------------------

    def problems(self) -> list[str]:
        problems = [
            f"step {step_id}: a goal belongs on the main path, not inside a branch"
            for step_id, node in self.nodes.items()
            if node.depth and isinstance(node.step, GoalStep)
        ]
        problems += self._fall_throughs()
        loop = self._loop()
        if loop:
            problems.append(
                f"steps {' -> '.join(loop)} loop without a wait: a contact would get them "
                "again and again at once; put a wait (of at least 1s) in the loop"
            )
        return problems

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidAutomation.listing(problems)

    def _paths(self, node: Node) -> list[str]:
        """Where a run can go from this step in the same pass (its wait aside)."""
        step = node.step
        if isinstance(step, ExitStep):
            return []
        if isinstance(step, IfElseStep):
            targets = [self.entry(node, True), self.entry(node, False)]
        else:
            targets = [node.next]
        return [t for t in dict.fromkeys(targets) if t is not None]

    def _fall_throughs(self) -> list[str]:
        found = []
        for step_id, node in self.nodes.items():
            step = node.step
            if not isinstance(step, IfElseStep) or not step.then or not step.else_:
                continue  # one branch empty: it is the join (or the next step), not a branch
            then, other = self.entry(node, True), self.entry(node, False)
            for label, start, into in (("then", then, other), ("else", other, then)):
                if start != into and into in self._reach(start, step_id):
                    found.append(
                        f"step {step_id}: its {label} branch (from {start!r}) runs on into the "
                        f"other branch at {into!r}, so a contact would get both; write the "
                        "branches as step lists (then: [...], else: [...]), each ends at the "
                        "step after the if_else, or end the branch with an exit step"
                    )
        return found

    def _reach(self, start: str | None, stop: str) -> set[str]:
        """The steps reachable from `start` without going through `stop`."""
        seen: set[str] = set()
        todo = [start] if start is not None else []
        while todo:
            current = todo.pop()
            if current in seen or current == stop:
                continue
            seen.add(current)
            todo.extend(self._paths(self.nodes[current]))
        return seen

    def _edges_without_wait(self, node: Node) -> list[str]:
        """The moves of one pass: a wait of positive duration ends the pass; a goal ahead
        that holds moves the run past it from anywhere before it."""
        step = node.step
        waits = isinstance(step, WaitStep) and (
            step.until_time is not None or step.delay().total_seconds() > 0
        )
        edges = [] if waits else self._paths(node)
        goals = [g.next for g in self.goals if g.order >= node.order and g.next is not None]
        return list(dict.fromkeys(edges + goals))

    def _loop(self) -> list[str] | None:
        """A cycle of steps with no wait in it, as the ids around it, if any."""
        edges = {step_id: self._edges_without_wait(n) for step_id, n in self.nodes.items()}
        done: set[str] = set()
        for root in self.nodes:
            if root in done:
                continue
            path, on_path = [root], {root}
            stack = [iter(edges[root])]
            while stack:
                target = next(stack[-1], None)
                if target is None:
                    finished = path.pop()
                    on_path.discard(finished)
                    done.add(finished)
                    stack.pop()
                    continue
                if target in on_path:
                    return path[path.index(target) :] + [target]
                if target not in done:
                    path.append(target)
                    on_path.add(target)
                    stack.append(iter(edges[target]))
        return None


@dataclass(frozen=True, slots=True)
class StepLine:
    """One line of the step graph as `automations show` prints it."""

    depth: int  # inside how many branches (indentation)
    branch: str | None  # "then" or "else" on a branch's first step
    id: str
    type: str
    settings: dict[str, Any]  # the step's own settings, its branch lists aside
    leads_to: str  # where a run goes next: a step id, "end", "exit", or both branches


def outline(definition: AutomationDefinition) -> tuple[StepLine, ...]:
    """The steps in reading order, each with where it leads."""
    graph, lines = definition.graph, []
    first_of = {
        _id(branch[0]): label
        for node in graph.nodes.values()
        if isinstance(node.step, IfElseStep)
        for label, branch in node.step.branches()
        if branch
    }
    for step_id, node in graph.nodes.items():
        step = node.step
        settings = step.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"id", "type"}
        )
        if isinstance(step, IfElseStep):
            settings = {k: v for k, v in settings.items() if not isinstance(v, list)}
            then, other = graph.entry(node, True), graph.entry(node, False)
            leads = f"then: {then or 'end'}; else: {other or 'end'}"
        else:
            leads = "exit" if isinstance(step, ExitStep) else node.next or "end"
        lines.append(
            StepLine(node.depth, first_of.get(step_id), step_id, step.type, settings, leads)
        )
    return tuple(lines)


def _id(step: Step) -> str:
    assert step.id is not None, "definitions number their steps"
    return step.id
