"""The circuit breaker on a fake clock: it opens after N failures within its window,
lets exactly one probe through after the cool-down, and the probe decides."""

from __future__ import annotations

import pytest

from sendline.engine.circuit import CircuitBreaker


class Seconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Seconds:
    return Seconds()


@pytest.fixture
def breaker(clock: Seconds) -> CircuitBreaker:
    return CircuitBreaker(failures=3, window=10.0, cooldown=30.0, clock=clock)


def _fail(breaker: CircuitBreaker, times: int, name: str = "twilio:1") -> None:
    for _ in range(times):
        breaker.failed(name)


def test_it_opens_after_n_failures_within_the_window(
    breaker: CircuitBreaker, clock: Seconds
) -> None:
    _fail(breaker, 2)
    assert (breaker.state("twilio:1"), breaker.allow("twilio:1")) == ("closed", True)
    _fail(breaker, 1)
    assert (breaker.state("twilio:1"), breaker.allow("twilio:1")) == ("open", False)
    assert breaker.retry_in("twilio:1") == 30.0
    assert breaker.allow("http:2")  # each provider has its own circuit
    clock.now += 29.9
    assert not breaker.allow("twilio:1")


def test_it_forgets_failures_older_than_the_window(breaker: CircuitBreaker, clock: Seconds) -> None:
    _fail(breaker, 2)
    clock.now += 10.0  # the first two fall out of the window
    _fail(breaker, 2)
    assert breaker.state("twilio:1") == "closed"
    clock.now += 1.0
    _fail(breaker, 1)
    assert breaker.state("twilio:1") == "open"


def test_it_counts_only_failures_with_no_answer_between_them(
    breaker: CircuitBreaker, clock: Seconds
) -> None:
    _fail(breaker, 2)
    breaker.succeeded("twilio:1")  # a failure now and then: the provider works
    _fail(breaker, 2)
    assert breaker.state("twilio:1") == "closed"
    _fail(breaker, 1)
    assert breaker.state("twilio:1") == "open"


def test_it_lets_one_probe_through_whose_success_closes_it(
    breaker: CircuitBreaker, clock: Seconds
) -> None:
    _fail(breaker, 3)
    clock.now += 30.0
    assert breaker.state("twilio:1") == "half_open"
    assert breaker.allow("twilio:1")  # the probe
    assert not breaker.allow("twilio:1")  # the others wait for its answer
    assert breaker.retry_in("twilio:1") == 30.0
    breaker.succeeded("twilio:1")
    assert (breaker.state("twilio:1"), breaker.allow("twilio:1")) == ("closed", True)
    _fail(breaker, 2)  # a closed circuit counts from zero again
    assert breaker.state("twilio:1") == "closed"


def test_it_reopens_when_the_probe_fails(breaker: CircuitBreaker, clock: Seconds) -> None:
    _fail(breaker, 3)
    clock.now += 30.0
    assert breaker.allow("twilio:1")
    breaker.failed("twilio:1")
    assert (breaker.state("twilio:1"), breaker.retry_in("twilio:1")) == ("open", 30.0)
    clock.now += 30.0
    assert breaker.allow("twilio:1")


def test_it_ignores_late_answers_of_calls_made_before_it_opened(
    breaker: CircuitBreaker, clock: Seconds
) -> None:
    _fail(breaker, 3)
    clock.now += 5.0
    breaker.succeeded("twilio:1")
    breaker.failed("twilio:1")
    assert (breaker.state("twilio:1"), breaker.retry_in("twilio:1")) == ("open", 25.0)


def test_it_sends_another_probe_when_one_never_answered(
    breaker: CircuitBreaker, clock: Seconds
) -> None:
    _fail(breaker, 3)
    clock.now += 30.0
    assert breaker.allow("twilio:1")  # ... and its worker stopped before it reported
    clock.now += 29.0
    assert not breaker.allow("twilio:1")
    clock.now += 1.0
    assert breaker.allow("twilio:1")


def test_it_refuses_a_circuit_that_could_never_close() -> None:
    with pytest.raises(ValueError, match="failures >= 1"):
        CircuitBreaker(failures=0)
