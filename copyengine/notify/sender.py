"""The notifier: events queued without waiting, sent in the background by one sender per
webhook, retried within bounds, every attempt logged (the webhook's name and host, never its
URL, which is its key); at the end of a run, what is still queued gets a bounded flush.

The copy calls ``Notifier``'s methods (the ``pipeline.notices.Notices`` protocol); each
builds the event's fields and puts the event on each interested webhook's bounded queue
with ``send_nowait``: a full queue drops the event (logged), so a receiver that hangs or is
down never slows the copy, and a run's end waits for it at most ``flush_timeout_s``."""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from yarl import URL

from ..network import Route
from ..report import JobStats, PairStats
from . import fields, schema
from .events import Event, body
from .policy import Retry, delivered, next_wait, parse_retry_after
from .schema import NotifyConfig, Webhook

log = structlog.get_logger("copyengine.notify")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Notifier:
    """``pipeline.notices.Notices`` over ``[notify]`` webhooks. Without a running sender
    (``running``) events are only logged as dropped; without webhooks, nothing happens."""

    def __init__(
        self,
        cfg: NotifyConfig,
        job: str,
        *,
        host: str | None = None,
        retry: Retry | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = cfg
        self.job = job
        self.host = host  # a worker's host:pid, said in its events
        self.retry = retry or Retry()
        self.rand = rand
        self.route: Route | None = None
        self.queues: dict[str, MemoryObjectSendStream[Event]] = {}
        self.sent = 0
        self.dropped = 0
        self.unsent = 0

    # -- the Notices protocol (never blocks, never raises) ------------------------------------
    def pass_finished(self, stats: JobStats) -> None:
        self.emit(schema.PASS_FINISHED, lambda: fields.pass_finished(stats))

    def shared_pass_finished(self, summary: dict[str, Any]) -> None:
        self.emit(schema.PASS_FINISHED, lambda: fields.shared_pass_finished(summary))

    def pair_failed(self, key: str, pair: PairStats, limit: int | None) -> None:
        if pair.error_code == "BadItemLimit":
            self.emit(schema.BAD_ITEM_LIMIT, lambda: fields.bad_item_limit(key, pair, limit))
        self.emit(schema.PAIR_FAILED, lambda: fields.pair_failed(key, pair))

    def signed_off(self, stats: JobStats) -> None:
        so = stats.sign_off or {}
        name = schema.SIGNOFF_COMPLETE if so.get("complete") else schema.SIGNOFF_INCOMPLETE
        self.emit(name, lambda: fields.signed_off(stats))

    def stalled(self, minutes: float, progress: dict[str, Any]) -> None:
        self.emit(schema.JOB_STALLED, lambda: {"stalled_min": minutes, **progress})

    # -- queueing ------------------------------------------------------------------------------
    def emit(self, name: str, data: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """``name`` with ``data`` (or what ``data()`` builds, only when a webhook wants it)
        queued for every webhook that wants it."""
        wanted = [w for w in self.cfg.webhooks if w.wants(name)]
        if not wanted:
            return
        try:
            built = data() if callable(data) else data
        except Exception as exc:  # an announcement's fault must never reach the copy
            log.error("notify.failed", notice=name, error=f"{type(exc).__name__}: {exc}")
            return
        if self.host is not None:
            built = {**built, "host": self.host}
        event = Event(name, self.job, now_iso(), built)
        for w in wanted:
            queue = self.queues.get(w.name)
            try:
                if queue is None:
                    raise anyio.ClosedResourceError
                queue.send_nowait(event)
            except anyio.WouldBlock:
                self._drop(event, w, "queue full")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._drop(event, w, "the notifier is not running")

    def _drop(self, event: Event, w: Webhook, why: str) -> None:
        self.dropped += 1
        log.warning("notify.dropped", notice=event.name, webhook=w.name, host=w.host, reason=why)

    # -- sending -------------------------------------------------------------------------------
    async def send_all(
        self, w: Webhook, events: MemoryObjectReceiveStream[Event], http: aiohttp.ClientSession
    ) -> None:
        async with events:
            async for event in events:
                try:
                    await self.deliver(w, event, http)
                except Exception as exc:  # a notifier's fault must never reach the copy
                    self.unsent += 1
                    log.error(
                        "notify.failed", notice=event.name, webhook=w.name, error=type(exc).__name__
                    )

    async def deliver(self, w: Webhook, event: Event, http: aiohttp.ClientSession) -> bool:
        """One event to one webhook, tried again within the policy's bounds."""
        payload = body(event, w.format)
        started = time.monotonic()
        for attempt in range(1, self.retry.attempts + 1):
            status, retry_after, error = await self.attempt(w, payload, http)
            said = {"notice": event.name, "webhook": w.name, "host": w.host, "attempt": attempt}
            if status is not None and delivered(status):
                self.sent += 1
                log.info("notify.sent", status=status, **said)
                return True
            wait = next_wait(
                self.retry, attempt, status, retry_after, time.monotonic() - started, self.rand
            )
            log.warning(
                "notify.attempt_failed",
                status=status,
                error=error,
                retry_in_s=None if wait is None else round(wait, 2),
                **said,
            )
            if wait is None:
                break
            await anyio.sleep(wait)
        self.unsent += 1
        log.error("notify.gave_up", notice=event.name, webhook=w.name, host=w.host)
        return False

    async def attempt(
        self, w: Webhook, payload: dict[str, Any], http: aiohttp.ClientSession
    ) -> tuple[int | None, float | None, str | None]:
        """(HTTP status or None, Retry-After seconds, why no answer): never an exception's
        text, which can hold the URL."""
        url = URL(w.url.reveal(), encoded=True)
        kw: dict[str, Any] = {"headers": {}}
        proxy = self.route.for_url(url.scheme, url.host or "", url.port) if self.route else None
        if proxy is not None:
            kw["proxy"] = proxy.url
            auth = proxy.authorization()
            if auth is not None:
                # a tunnel (https) carries it in CONNECT; a plain request in its own headers
                key = "proxy_headers" if url.scheme == "https" else "headers"
                kw[key] = {"Proxy-Authorization": auth}
        try:
            with anyio.fail_after(self.retry.timeout_s):
                async with http.post(url, json=payload, allow_redirects=False, **kw) as resp:
                    await resp.read()
                    return resp.status, parse_retry_after(resp.headers.get("Retry-After")), None
        except TimeoutError:
            return None, None, f"no answer within {self.retry.timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            why = getattr(exc, "strerror", None) or ""
            return None, None, f"{type(exc).__name__}{': ' + why if why else ''}"


@asynccontextmanager
async def running(notifier: Notifier, route: Route | None = None) -> AsyncIterator[Notifier]:
    """The notifier's senders while the body runs; then what is queued is sent for at most
    ``flush_timeout_s`` (what is left is logged as unsent)."""
    hooks = notifier.cfg.webhooks
    if not hooks:
        yield notifier
        return
    notifier.route = route
    receivers = {}
    for w in hooks:
        send, receive = anyio.create_memory_object_stream[Event](notifier.cfg.queue_size)
        notifier.queues[w.name] = send
        receivers[w.name] = receive
    conn = aiohttp.TCPConnector(ssl=ssl.create_default_context(), limit=2 * len(hooks))
    done = anyio.Event()
    busy = [len(hooks)]

    async def sender(w: Webhook, http: aiohttp.ClientSession) -> None:
        try:
            await notifier.send_all(w, receivers[w.name], http)
        finally:
            busy[0] -= 1
            if not busy[0]:
                done.set()

    async with aiohttp.ClientSession(connector=conn) as http, anyio.create_task_group() as tg:
        for w in hooks:
            tg.start_soon(sender, w, http)
        try:
            yield notifier
        finally:
            for send in notifier.queues.values():
                send.close()  # each sender ends once its queue is empty
            with anyio.move_on_after(notifier.cfg.flush_timeout_s, shield=True) as flush:
                await done.wait()
            if flush.cancelled_caught:
                left = sum(r.statistics().current_buffer_used for r in receivers.values())
                notifier.unsent += left + busy[0]
                log.warning(
                    "notify.flush_cut_short",
                    timeout_s=notifier.cfg.flush_timeout_s,
                    unsent=left + busy[0],
                )
            tg.cancel_scope.cancel()
