"""Circuit breakers: open after N failures in a row, probe after a delay, back off."""

from __future__ import annotations

from scribe.breaker import Breakers, BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_rule_failing_n_times_in_a_row_is_skipped_until_its_probe() -> None:
    clock = Clock()
    breakers = Breakers(3, base_delay=10, clock=clock)
    for _ in range(2):
        assert breakers.record([], ["bad"]) == []
    (opened,) = breakers.record([], ["bad"])
    assert (opened.state, opened.delay) == (BreakerState.OPEN, 10)
    assert breakers.blocked(["bad", "good"])[0] == {"bad"}
    clock.now = 10
    blocked, moved = breakers.blocked(["bad"])
    assert blocked == set()
    assert [t.state for t in moved] == [BreakerState.HALF_OPEN]
    assert breakers.blocked(["bad"])[0] == {"bad"}  # one probe at a time
    (closed,) = breakers.record(["bad"], [])
    assert closed.state is BreakerState.CLOSED
    assert breakers.blocked(["bad"])[0] == set()
    assert breakers.states() == {}


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    clock = Clock()
    breakers = Breakers(1, base_delay=10, max_delay=25, clock=clock)
    breakers.record([], ["bad"])
    delays = []
    for _ in range(3):
        clock.now += 1000
        assert breakers.blocked(["bad"])[0] == set()
        (reopened,) = breakers.record([], ["bad"])
        delays.append(reopened.delay)
    assert delays == [20, 25, 25]
    assert breakers.states() == {"bad": BreakerState.OPEN}


def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    breakers = Breakers(3)
    breakers.record([], ["flaky"])
    breakers.record([], ["flaky"])
    breakers.record(["flaky"], [])
    assert breakers.record([], ["flaky"]) == []
    assert breakers.record([], ["flaky"]) == []
    assert breakers.states() == {}


def test_a_probe_that_did_not_run_goes_to_the_next_event() -> None:
    clock = Clock()
    breakers = Breakers(1, base_delay=1, clock=clock)
    breakers.record([], ["bad"])
    clock.now = 5
    assert breakers.blocked(["bad"])[0] == set()
    breakers.record([], [], idle=["bad"])  # its conditions did not match this file
    assert breakers.blocked(["bad"])[0] == set()  # the next event probes it
