"""Decisions as pure functions: which running jobs are orphans and how they settle, which
attempt comes next, whether a job ran elsewhere, what a config adds, and `run`'s exit code.
Plain values in, plain values out; properties over the fold's random histories."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fold import (
    BASE,
    CREATED,
    FOLD_SETTINGS,
    SESSIONS,
    added,
    finished,
    histories,
    history,
    spec,
    started,
)

from journalq import events as ev
from journalq import fold, policy
from journalq.outcomes import RecoveryReason
from journalq.state import Attempt, Job, Queue, Status
from journalq.timestamps import format_ts, parse_ts

HOUR = 3600.0


def observations(queue: Queue, *, after: float = 0.0, boot_id: str = "elsewhere",
                 stale_seconds: float = 2 * HOUR, live: frozenset[str] = frozenset(),
                 cards: dict[str, policy.RunCard] | None = None,
                 force: bool = False) -> policy.Observations:
    """What the shell would see `after` seconds past the journal's newest event."""
    now = parse_ts(queue.last_ts or format_ts(BASE)) + timedelta(seconds=after)
    return policy.Observations(now=now, boot_id=boot_id, stale_seconds=stale_seconds,
                               live_sessions=live, cards=cards or {}, force=force)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[ev.Event], policy.Observations]:
    """A random history and a random view of the world after it: this host is one of the
    sessions' machines or another, some runners alive, some run cards (right or stale)."""
    events = draw(histories())
    queue = fold.replay(events)
    cards: dict[str, policy.RunCard] = {}
    for job in queue.by_status(Status.RUNNING):
        last = job.last
        assert last is not None
        if draw(st.booleans()):
            cards[job.id] = policy.RunCard(
                job=job.id, attempt=last.number + draw(st.sampled_from([0, 0, -1])),
                session=draw(st.sampled_from([last.session, *SESSIONS])),
                outcome=draw(st.sampled_from(["done", "failed"])),
                return_code=draw(st.none() | st.integers(0, 2)))
    seen = observations(
        queue, after=draw(st.floats(-10, 5 * HOUR)),
        boot_id=draw(st.sampled_from([*SESSIONS, "elsewhere"])),
        stale_seconds=draw(st.sampled_from([1.0, HOUR, 2 * HOUR])),
        live=frozenset(draw(st.sets(st.sampled_from(SESSIONS)))), cards=cards,
        force=draw(st.booleans()))
    return events, seen


def stamped(events: list[ev.JobRecovered | ev.JobAdded | ev.JobChanged],
            after: str) -> list[ev.Event]:
    """Events as a new session `rec` appends them after the journal's newest, `after`."""
    start = parse_ts(after) if after else parse_ts(format_ts(BASE))
    micros = int(start.timestamp()) * 1_000_000 + start.microsecond
    return [attrs.evolve(event, id=f"rec:{n:04d}", ts=format_ts(micros + n), session="rec")
            for n, event in enumerate(events, 1)]


# ---- properties -----------------------------------------------------------------------------

@FOLD_SETTINGS
@given(world=worlds())
def test_classify_running_is_total(world: tuple[list[ev.Event], policy.Observations]) -> None:
    """Every running job is either an orphan or maybe alive, exactly once; nothing else is
    either; and an orphan's age is that of its last sign of life."""
    events, seen = world
    queue = fold.replay(events)

    orphans, alive = policy.classify_running(queue, seen)

    running = [job.id for job in queue.by_status(Status.RUNNING)]
    assert sorted(running) == sorted([o.job.id for o in orphans] + [a.job.id for a in alive])
    for orphan in orphans:
        assert orphan.reason in set(RecoveryReason) - {RecoveryReason.CARD}


@FOLD_SETTINGS
@given(world=worlds())
def test_recover_is_idempotent(world: tuple[list[ev.Event], policy.Observations]) -> None:
    """Recovery's events all fit (no anomaly), settle every orphan, and recovering again
    after them decides nothing: running `recover` twice appends nothing the second time."""
    events, seen = world
    queue = fold.replay(events)
    orphans, _ = policy.classify_running(queue, seen)
    settling = stamped(policy.recover(orphans, seen.cards), queue.last_ts)

    after = fold.replay([*events, *settling])

    assert queue.anomalies == after.anomalies
    assert all(after.jobs[o.job.id].status is not Status.RUNNING for o in orphans)
    again, _ = policy.classify_running(after, seen)
    assert [] == policy.recover(again, seen.cards)


@FOLD_SETTINGS
@given(events=histories(), data=st.data())
def test_reconcile_never_drops_a_done_job(events: list[ev.Event], data: st.DataObject) -> None:
    """Whatever a config says (jobs left out, specs changed, new jobs), recording what
    `reconcile` finds keeps every done job in the queue and done; only new ids are added."""
    queue = fold.replay(events)
    specs = {job_id: spec(job_id, data.draw(st.integers(1, 3)),
                          data.draw(st.sampled_from(["", "v2", "v3"])))
             for job_id in data.draw(st.lists(st.sampled_from(["a", "b", "c", "new1", "new2"]),
                                              unique=True))}

    new, drifted = policy.reconcile(queue, specs)
    changes = [policy.changed_event(drift) for drift in drifted]
    after = fold.replay([*events, *stamped([*new, *changes], queue.last_ts)])

    assert {e.job for e in new} == set(specs) - set(queue.jobs)
    for job in queue.by_status(Status.DONE):
        assert Status.DONE is after.jobs[job.id].status


@FOLD_SETTINGS
@given(events=histories())
def test_the_next_attempt_number_is_past_every_number_used(events: list[ev.Event]) -> None:
    """A start with `next_attempt_number` always fits a pending job, whatever its history."""
    queue = fold.replay(events)
    for job in queue.by_status(Status.PENDING):
        number = policy.next_attempt_number(job)
        assert all(attempt.number < number for attempt in job.attempts)
        start = stamped([started(job.id, number)], queue.last_ts)  # type: ignore[list-item]
        assert Status.RUNNING is fold.replay([*events, *start]).jobs[job.id].status


# ---- examples -------------------------------------------------------------------------------

def job_with(*numbers: tuple[int, str]) -> Job:
    """A pending job whose attempts have these (number, session)."""
    attempts = tuple(Attempt(number=n, session=s, host="h", boot_id="b", pid=1,
                             started=format_ts(BASE), log="l", spec_sha256="0")
                     for n, s in numbers)
    return Job(id="a", spec=spec("a", 5), added=format_ts(BASE), attempts=attempts)


@pytest.mark.parametrize(("numbers", "expected"), [
    ((), 1), (((1, "s1"),), 2), (((1, "s1"), (3, "s2")), 4), (((4, "s2"), (2, "s1")), 5),
])
def test_next_attempt_number(numbers: tuple[tuple[int, str], ...], expected: int) -> None:
    """One past the highest number used, gaps and all (merged histories have gaps)."""
    assert expected == policy.next_attempt_number(job_with(*numbers))


def card(job: str = "a", attempt: int = 2, session: str = "s2") -> policy.RunCard:
    return policy.RunCard(job=job, attempt=attempt, session=session, outcome="done",
                          return_code=0)


def settled_job(reason: str, outcome: str = "failed") -> Job:
    """A job whose attempt 1 of s1 was settled without a finish (or finished), failed."""
    job = job_with((1, "s1"))
    closed = attrs.evolve(job.attempts[0], finished=format_ts(BASE + 1), outcome=outcome,
                          reason=reason)
    return attrs.evolve(job, attempts=(closed,), status=Status.FAILED, charged=1)


@pytest.mark.parametrize(("job", "the_card", "expected"), [
    (job_with((1, "s1")), None, None),
    (job_with((1, "s1")), card(job="b"), None),  # another job's card (a shared out_dir)
    (job_with((1, "s1")), card(), "done"),  # attempt 2 of s2: this journal never saw it
    (job_with((1, "s1")), card(attempt=1, session="s2"), "done"),  # same number, other run
    (job_with((1, "s1")), attrs.evolve(card(), outcome="failed", return_code=3), "pending"),
    (settled_job("stale"), card(attempt=1, session="s1"), "done"),  # the card came late
    (settled_job("forced"), card(attempt=1, session="s1"), "done"),
    (settled_job("exit"), card(attempt=1, session="s1"), None),  # it had its finish
    (settled_job("stale"), attrs.evolve(card(attempt=1, session="s1"), outcome="failed"),
     None),  # a late failed card changes nothing: the attempt failed and was charged
])
def test_settle_from_card(job: Job, the_card: policy.RunCard | None,
                          expected: str | None) -> None:
    """A card settles a job before another attempt starts when it records a finished
    attempt the journal does not know as finished: never seen, or settled without its
    finish (stale, forced, abandoned...) and done after all."""
    event = policy.settle_from_card(job, the_card)

    assert expected == (event.to if event else None)
    if event is not None:
        assert (RecoveryReason.CARD, the_card.attempt, the_card.session) == (  # type: ignore[union-attr]
            event.reason, event.attempt, event.attempt_session)


def test_a_card_settlement_folds_into_a_done_job_that_is_never_started_again() -> None:
    """The event the policy returns fits the fold: the job is done, its history shows the
    attempt the card tells of, and settling it again finds nothing new."""
    queue = queue_of(added("a"))
    job = queue.jobs["a"]
    event = policy.settle_from_card(job, card())
    assert event is not None

    after = fold.replay(history(CREATED, added("a"), event))
    job = after.jobs["a"]

    assert Status.DONE is job.status
    assert [(2, "s2", "done")] == [(a.number, a.session, a.outcome) for a in job.attempts]
    assert policy.settle_from_card(job, card()) is None
    assert () == after.anomalies


def queue_of(*events: ev.Event) -> Queue:
    return fold.replay(history(CREATED, *events))


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"yielded": False, "interrupted_by": None}, 0),
    ({"yielded": False, "interrupted_by": None, "halted": True}, 1),
    ({"yielded": True, "interrupted_by": None}, 5),
    ({"yielded": True, "interrupted_by": 2}, 130),
    ({"yielded": False, "interrupted_by": 15}, 143),
    ({"yielded": False, "interrupted_by": 1}, 129),
    ({"yielded": False, "interrupted_by": 10}, 130),  # any other signal: as Ctrl-C
])
def test_run_exit_code_of_a_queue_without_failures(kwargs: dict[str, object],
                                                   expected: int) -> None:
    """A signal wins, then jobs left to another runner (5), then a halt (1); else 0."""
    queue = queue_of(added("a"), started("a", 1), finished("a", 1))

    assert expected == policy.run_exit_code(queue, ["a"], **kwargs)  # type: ignore[arg-type]


def test_run_exit_code_is_1_while_a_selected_job_is_still_pending() -> None:
    """0 promises every selected job done (or cancelled): one left pending at the end for
    no stated reason (no signal, no other runner, no halt) is not success."""
    queue = queue_of(added("a"), added("b"), started("a", 1), finished("a", 1))

    assert (1, 0) == (policy.run_exit_code(queue, ["a", "b"], yielded=False, interrupted_by=None),
                      policy.run_exit_code(queue, ["a"], yielded=False, interrupted_by=None))


def test_run_exit_code_is_1_when_a_selected_job_failed() -> None:
    """A failed job of the run's selection makes it exit 1 unless more is to say; a failed
    job another runner selected does not."""
    queue = queue_of(added("a"), added("b"), started("a", 1), finished("a", 1, return_code=3),
                     started("b", 1), finished("b", 1))

    assert (1, 5, 143, 0) == (
        policy.run_exit_code(queue, ["a"], yielded=False, interrupted_by=None),
        policy.run_exit_code(queue, ["a"], yielded=True, interrupted_by=None),
        policy.run_exit_code(queue, ["a"], yielded=True, interrupted_by=15),
        policy.run_exit_code(queue, ["b"], yielded=False, interrupted_by=None))


@pytest.mark.parametrize(("boot_id", "live", "after", "force", "reason"), [
    ("s1", frozenset(), 0.0, False, RecoveryReason.ABANDONED),  # this host, runner gone
    ("s1", frozenset({"s1"}), 3 * HOUR, False, None),  # this host, runner alive
    ("elsewhere", frozenset(), 3 * HOUR, False, RecoveryReason.STALE),
    ("elsewhere", frozenset(), 60.0, False, None),  # heard from a minute ago
    ("elsewhere", frozenset(), 60.0, True, RecoveryReason.FORCED),
])
def test_classify_running(boot_id: str, live: frozenset[str], after: float, force: bool,
                          reason: RecoveryReason | None) -> None:
    """Certain on this host (the runner's process lives or not); elsewhere, silence for
    stale_seconds means stale, and --force declares it gone."""
    queue = queue_of(added("a"), attrs.evolve(started("a", 1), boot_id="s1"))
    seen = observations(queue, after=after, boot_id=boot_id, live=live, force=force)

    orphans, alive = policy.classify_running(queue, seen)

    assert [reason] == ([o.reason for o in orphans] or [None])
    assert len(alive) == (reason is None)


def test_recover_trusts_only_the_card_of_this_very_attempt() -> None:
    """A card of this attempt settles the job as it ended; an older card is ignored and the
    budget decides."""
    queue = queue_of(added("a", 2), started("a", 1))
    orphans, _ = policy.classify_running(queue, observations(queue, after=3 * HOUR))
    mine = card(attempt=1, session="s1")

    by_card = policy.recover(orphans, {"a": mine})
    by_budget = policy.recover(orphans, {"a": card(attempt=0, session="s1")})

    assert [("done", "card")] == [(e.to, e.reason) for e in by_card]
    assert [("pending", "stale")] == [(e.to, e.reason) for e in by_budget]
