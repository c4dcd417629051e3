"""A 429 ends the naps of the bodies waiting on the mailbox (``MailboxPacer._throttled``):
each looks again at once, so none sleeps past the service's Retry-After on a nap planned
before it (issue 26, ``stricter`` beside the other writer: a refused body's bytes back in
the budget and a Retry-After of 3 service s, the bodies behind it napping 30 s each)."""

from __future__ import annotations

import time

import anyio
import pytest

from copyengine.pacing import MailboxPacer, PacerLimits

pytestmark = pytest.mark.anyio

# a 100 s upload window: a body waiting on it naps ``reserve_after`` (10 s) or longer
LIMITS = PacerLimits(upload_bytes=1000, upload_window=100.0, window_slack=0.0)


async def _refused_then_waiting(retry_after: float) -> tuple[float, float]:
    """A body of 600 answered (in the window), a second one waiting on the budget, then a
    429 refusing the first (its bytes leave the window): (seconds from the 429 until the
    second went, seconds it was sent after the first began to wait)."""
    pacer = MailboxPacer("app/m", LIMITS)
    async with pacer.slot(600):
        pass
    went: list[float] = []
    sent = anyio.Event()

    async def second() -> None:
        async with pacer.slot(600):
            went.append(time.monotonic())
            sent.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.sleep(0.2)  # it waits on the upload budget now, napping
        assert not went
        refused = time.monotonic()
        pacer.on_throttled("IncomingBytes", retry_after, 600)
        with anyio.fail_after(5.0):
            await sent.wait()
    return went[0] - refused, pacer.account.throttle_wait_s


async def test_a_429_wakes_a_body_napping_on_the_budget_it_goes_after_the_retry_after() -> None:
    waited, counted = await _refused_then_waiting(0.3)
    # the Retry-After holds it (0.3 s), no longer: without the wake it napped 10 s or more
    assert 0.25 <= waited < 1.5
    # what it slept, not the naps it was planning: 0.2 s before the 429, 0.3 s after
    assert counted < 2.0


async def test_the_wake_does_not_shorten_the_retry_after() -> None:
    waited, _ = await _refused_then_waiting(1.0)
    assert waited >= 0.95
