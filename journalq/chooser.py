"""Which job a free slot takes next: the run's selection in queue order (a job pending
again after a failure first), minus what an earlier live runner also selected, and never
a job whose run card says it finished already."""

from __future__ import annotations

import collections

from journalq import host, policy, render, runners, runners_view
from journalq.batchplan import Plan
from journalq.card import card_path, read_card
from journalq.clock import Clock
from journalq.fold import Fold
from journalq.recovery import observe
from journalq.render import Console
from journalq.session import Session
from journalq.state import Job, Status


class Chooser:
    """The order of a run's jobs, and the other runners it leaves jobs to."""

    def __init__(self, session: Session, console: Console, plan: Plan, clock: Clock) -> None:
        self.session = session
        self.console = console
        self.plan = plan
        self.clock = clock
        self.yielded: dict[str, runners.OtherRunner] = {}  # session -> the runner we left to
        self.left: set[str] = set()  # jobs left to an earlier runner
        self._order = [job for job in session.fold.job_ids() if job in plan.runnable]
        self._cursor = 0
        self._again: collections.deque[str] = collections.deque()  # pending again, first
        self._shared: dict[str, tuple[str, ...]] = {}  # other runner -> jobs we both chose
        self._looked = False  # for other runners, once; again after each merge

    @property
    def fold(self) -> Fold:
        """The live fold (a merge that sorts in older events replaces it: never keep it)."""
        return self.session.fold

    def again(self, job: str) -> None:
        """The job failed with attempts left: its next attempt goes first."""
        self._again.append(job)

    def look_around(self) -> None:
        """Pull what is new in the sync folder, and leave the jobs an earlier live runner
        also selected to it (the check at start-up cannot see a runner whose copy was still
        on its way through a lagging folder).

        Only the first time and after a merge brought events from elsewhere: without them
        no other runner can appear or start to look alive, and building the queue costs
        O(jobs), too much for every start of a large batch."""
        merged = 0
        if self.session.mirror is not None:
            merged = self.session.merge(when_due=True, lenient=True)
        if self._looked and not merged:
            return
        self._looked = True
        queue = self.session.queue()
        others = [info for info in queue.sessions.values()
                  if info.command == "run" and not info.ended and info.id != self.session.id]
        if not others:
            return
        seen = observe(queue, self.clock.utc_now(), self.plan.stale_seconds)
        here = runners_view.live_here(queue, seen.boot_id, host.is_alive)
        for other in runners.live_earlier(
                queue, self.session.id, now=seen.now, stale_seconds=self.plan.stale_seconds,
                boot_id=seen.boot_id, live_here=here, ignore=self.plan.declared_dead):
            sid = other.info.id
            if sid not in self._shared:
                self._shared[sid] = runners.shared_jobs(list(queue.jobs), other.info,
                                                        self.plan.runnable)
            if self._shared[sid] and sid not in self.yielded:
                self.yielded[sid] = other
                self.left.update(self._shared[sid])

    def next_job(self) -> Job | None:
        """The first pending job of the selection, in queue order (a job pending again
        after a failure goes first), that no earlier runner took and no card settles."""
        while True:
            if self._again:
                job_id = self._again.popleft()
            elif self._cursor < len(self._order):
                job_id = self._order[self._cursor]
                self._cursor += 1
            else:
                return None
            job = self.fold.job(job_id)
            if job is None or job.status is not Status.PENDING or job_id in self.left:
                continue
            if self._settle_by_card(job):
                # The card's attempt is in the journal now: a job still pending (a failure
                # with budget left) numbers its next attempt past it.
                job = self.fold.job(job_id)
                if job is None or job.status is not Status.PENDING:
                    continue
            return job

    def _settle_by_card(self, job: Job) -> bool:
        """Settle the job from a run card of an attempt the journal never saw finish
        (`policy.settle_from_card`) instead of running it twice and overwriting the card;
        whether it did."""
        card = read_card(job.spec.out_dir, self.session.fs)
        event = policy.settle_from_card(job, card)
        if event is None:
            return False
        assert card is not None
        self.session.append(event)
        again = event.to == Status.PENDING.value  # a failure with attempts left
        self.console.warn(render.safe(
            f"{job.id}: {card_path(job.spec.out_dir)} records attempt {card.attempt} of "
            f"session {card.session} ({card.outcome}), which this journal never saw "
            "finish; " + ("recorded from the card, and the job runs again (it has attempts "
                          "left)" if again else f"settled {event.to} from the card, not run")))
        return True
