"""While the job has sent nothing for a while, a small body passes the large one a cut budget's
bucket keeps its room for (issue 26, ``step.Quiet``): beside another writer the 8 mailboxes of
``stricter`` each waited for a 169-293 KB body (up to 70 service s at the rate the writer
leaves) with smaller ones behind it, and where those waits overlapped the job had 30-36
service s without an import."""

from __future__ import annotations

import math

import pytest

from copyengine.pacing import PacerLimits
from copyengine.pacing.pacer import Pacers
from copyengine.pacing.step import QUIET, Budgets, Kind, Quiet, step
from tests.bursts import refused_burst

LIMITS = PacerLimits(upload_bytes=100_000, upload_window=10.0, window_slack=0.0)


def _cut(job: Quiet | None) -> Budgets:
    """A budget cut to 6,000 bytes per 10 s by a refused burst (``tests.bursts``): spent
    through a bucket at 600 bytes a second; 400 bytes answered at 11.9; a 3,000-byte body
    waiting since 12.0 keeps its room (the bucket lets it go at about 16.6)."""
    b = refused_burst(Budgets(LIMITS, job))
    b.probe_after = math.inf
    b.take(400)
    b.release(11.9, 400)
    b.plan(12.0, 100_000)
    assert b.evens(12.0)
    b.queue(12.0, 3000)
    assert step(b, 12.05, 3000, 0, 12.0).kind is Kind.RESERVE
    b.reserve(3000, 12.0)
    assert b.binding(12.1, 3000, True, 12.0)[0] > 4.0
    return b


def test_a_small_body_passes_the_kept_one_once_the_job_is_quiet() -> None:
    job = Quiet()
    b = _cut(job)
    other = Budgets(LIMITS, job)  # another mailbox of the job
    quiet = QUIET * LIMITS.upload_window  # 0.5 s
    # the job answered an upload at 11.9: a 300-byte body asking at 12.1 waits, and looks
    # again when the job has been quiet long enough, not a whole ``reserve_after`` later
    d = step(b, 12.1, 300, 0, None)
    assert d.kind is Kind.SLEEP and d.wait == pytest.approx(11.9 + quiet - 12.1)
    b.queue(12.1, 300)
    assert step(b, 11.9 + quiet + 0.01, 300, 0, 12.1).kind is Kind.GO
    # another mailbox's upload in flight: the job is not quiet, the body waits its turn
    other.take(500)
    assert step(b, 13.0, 300, 0, 12.1).kind is Kind.SLEEP
    assert step(b, 13.0, 300, 0, 12.1).wait == pytest.approx(quiet)
    other.release(13.1, 500)
    assert step(b, 13.1 + quiet - 0.01, 300, 0, 12.1).kind is Kind.SLEEP
    assert step(b, 13.1 + quiet + 0.01, 300, 0, 12.1).kind is Kind.GO
    # a body more than a quarter of the kept one does not pass
    assert step(b, 13.1 + quiet + 0.01, 1000, 0, 12.1).kind is Kind.SLEEP


def test_a_mailbox_alone_keeps_its_order() -> None:
    """Without the job's account (a ``Budgets`` of its own), the order is as before: the
    small body waits behind the kept one however quiet the mailbox is."""
    b = _cut(None)
    b.queue(12.1, 300)
    assert step(b, 14.0, 300, 0, 12.1).kind is Kind.SLEEP
    assert b.binding(14.0, 300, False, 12.1)[0] > 2.0  # behind the kept one's 3,000 bytes


def test_the_pacers_of_a_registry_share_one_account() -> None:
    pacers = Pacers(LIMITS)
    a, c = pacers.get("app", "a@x"), pacers.get("app", "c@x")
    assert a.budgets.job is not None and a.budgets.job is c.budgets.job
    a.budgets.take(100)
    assert c.budgets.job is not None and c.budgets.job.quiet(50.0) == 0.0
    a.budgets.release(20.0, 100)
    assert c.budgets.job.quiet(50.0) == pytest.approx(30.0)


def test_a_small_body_passes_a_large_one_that_has_not_yet_kept_its_room() -> None:
    """At a cut budget's even rate the body that waited longest keeps its room at its next
    look only (up to ``reserve_after`` after the one before it went): a small body passes a
    larger one waiting before it all the same."""
    job = Quiet()
    b = refused_burst(Budgets(LIMITS, job))
    b.probe_after = math.inf
    b.take(400)
    b.release(11.9, 400)
    b.plan(12.0, 100_000)
    b.queue(12.0, 3000)
    assert b.reserved == 0
    assert step(b, 12.1, 300, 0, None).kind is Kind.SLEEP  # the job answered at 11.9
    b.queue(12.1, 300)
    assert step(b, 12.5, 300, 0, 12.1).kind is Kind.GO  # quiet for 0.6 s
    assert step(b, 12.5, 1000, 0, 12.1).kind is Kind.SLEEP  # a third of it: no
