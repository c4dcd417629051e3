"""A request slot (``MailboxPacer.slot``) gives back what it took however it is left: answered,
failed in its body, or cancelled while the app-wide rate holds it."""

from __future__ import annotations

import anyio
import pytest
from aiolimiter import AsyncLimiter

from copyengine.pacing.pacer import MailboxPacer
from copyengine.pacing.policy import PacerLimits

pytestmark = pytest.mark.anyio


def _pacer(app: AsyncLimiter | None = None) -> MailboxPacer:
    return MailboxPacer(
        "app/m", PacerLimits(upload_bytes=1000, upload_window=10.0), app_limiter=app
    )


def _assert_all_given_back(p: MailboxPacer) -> None:
    assert p.inflight == 0 and p.budgets.held_bytes == 0 and p.account.inflight == 0
    assert p.account.requests == 2 and p.account.upload_bytes == 500


async def test_a_slot_cancelled_while_the_app_rate_holds_it_gives_everything_back() -> None:
    p = _pacer(AsyncLimiter(1, 60.0))  # one request a minute: the second waits on the app
    async with p.slot(300):
        pass
    with anyio.move_on_after(0.05) as scope:
        async with p.slot(200):
            pytest.fail("the app-wide rate let a second request through")
    assert scope.cancelled_caught
    _assert_all_given_back(p)


async def test_a_slot_whose_request_fails_gives_everything_back() -> None:
    p = _pacer()
    async with p.slot(300):
        pass
    with pytest.raises(OSError):
        async with p.slot(200):
            assert p.inflight == 1
            raise OSError("connection reset")
    _assert_all_given_back(p)
