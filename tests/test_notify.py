"""Notifications (issue 25, ``[notify]``): the table, the three formats, the retry and stall
decisions (pure), and the background sender against a receiver on 127.0.0.1 (retries, 429,
a receiver that hangs or is down, a full queue, the flush at the end)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from copyengine.config import load_job
from copyengine.errors import ConfigError
from copyengine.notify.events import Event, body, generic, slack, teams
from copyengine.notify.policy import Retry, StallWatch, next_wait, parse_retry_after
from copyengine.notify.schema import NotifyConfig, Webhook
from copyengine.notify.sender import Notifier, running
from copyengine.secrets import Secret
from tests.webhooks import json_log, logged, receiver

pytestmark = pytest.mark.anyio
KEY = "sig=K3Y-0f-The-H00k"  # what a webhook URL carries: never in a log line


def _job(tmp: Path, notify: str) -> Path:
    (tmp / "s.secret").write_text("x")
    text = f"""
[tenants.source]
tenant_id = "contoso.example"
client_id = "11111111-1111-4111-8111-111111111111"
client_secret = "file:s.secret"
[tenants.target]
tenant_id = "fabrikam.example"
client_id = "22222222-2222-4222-8222-222222222222"
client_secret = "file:s.secret"
[[pairs]]
source = "a@contoso.example"
target = "a@fabrikam.example"
{notify}
"""
    path = tmp / "job.toml"
    path.write_text(text)
    return path


log_lines = pytest.fixture(json_log)


# -- the table ---------------------------------------------------------------------------------
def test_notify_table_reads_webhooks_by_reference(tmp_path: Path) -> None:
    (tmp_path / "hook.url").write_text(f"https://example.webhook.office.com/x?{KEY}\n")
    cfg = load_job(
        _job(
            tmp_path,
            '[notify]\nstalled_after_min = 5\n[[notify.webhooks]]\nurl = "file:hook.url"\n'
            'format = "teams"\nevents = ["pass.finished", "job.stalled"]\nname = "ops"\n',
        )
    )
    (w,) = cfg.notify.webhooks
    assert (w.name, w.format, w.host) == ("ops", "teams", "example.webhook.office.com")
    assert w.wants("pass.finished") and not w.wants("pair.failed")
    assert cfg.notify.stalled_after_min == 5
    assert KEY not in repr(cfg)  # the URL is a Secret


@pytest.mark.parametrize(
    ("table", "where", "says"),
    [
        ('url = "http://hooks.example.com/x"', "notify.webhooks[0].url", "secret reference"),
        ('url = "env:HOOK_PLAIN"', "notify.webhooks[0].url", "plain http"),
        ('url = "env:HOOK_OK"\nformat = "discord"', "notify.webhooks[0].format", "generic"),
        ('url = "env:HOOK_OK"\nevents = ["pass.done"]', "notify.webhooks[0].events[0]", "unknown"),
        ('url = "env:HOOK_OK"\nevents = []', "notify.webhooks[0].events", "names no event"),
        ('url = "env:HOOK_OK"\ncolour = 1', "notify.webhooks[0].colour", "unknown key"),
        ('url = "env:HOOK_NOT_SET"', "notify.webhooks[0].url", "is not set"),
        ('url = "env:HOOK_JUNK"', "notify.webhooks[0].url", "not an https:// URL"),
    ],
)
def test_a_bad_webhook_is_a_config_error_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, where: str, says: str
) -> None:
    monkeypatch.setenv("HOOK_PLAIN", f"http://hooks.example.com/x?{KEY}")
    monkeypatch.setenv("HOOK_OK", f"https://hooks.example.com/x?{KEY}")
    monkeypatch.setenv("HOOK_JUNK", f"ftp:/{KEY}")
    with pytest.raises(ConfigError) as info:
        load_job(_job(tmp_path, f"[[notify.webhooks]]\n{table}\n"))
    assert info.value.where == where and says in str(info.value)
    assert KEY not in str(info.value)  # the message never repeats the URL


def test_plain_http_is_accepted_to_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK", "http://127.0.0.1:9/hook")
    cfg = load_job(_job(tmp_path, '[[notify.webhooks]]\nurl = "env:HOOK"\n'))
    assert cfg.notify.webhooks[0].name == "webhook1"
    # a job read without its secrets (status, report) does not need the variable
    monkeypatch.delenv("HOOK")
    assert load_job(tmp_path / "job.toml", resolve_secrets=False).notify.webhooks


# -- the formats -------------------------------------------------------------------------------
EVENT = Event(
    "pair.failed",
    "wave1",
    "2026-12-04T19:00:00Z",
    {"pair": "a->b", "error": "mailbox gone", "error_type": "MailboxNotFound", "copied": 3},
)


def test_generic_is_the_event_and_its_fields() -> None:
    assert generic(EVENT) == {
        "event": "pair.failed",
        "job": "wave1",
        "time": "2026-12-04T19:00:00Z",
        "pair": "a->b",
        "error": "mailbox gone",
        "error_type": "MailboxNotFound",
        "copied": 3,
    }


def test_teams_is_an_adaptive_card_message() -> None:
    msg = teams(EVENT)
    assert msg["type"] == "message"
    (att,) = msg["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == "wave1: pair a->b failed"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["error"] == "mailbox gone" and facts["copied"] == "3"
    json.dumps(msg)  # plain JSON


def test_slack_is_text_and_blocks_within_slack_s_limits() -> None:
    many = Event("pass.finished", "j", "t", {f"k{i}": "v" * 5000 for i in range(30)})
    msg = slack(many)
    assert msg["text"].startswith("j: pass")
    header, context, section = msg["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert context["type"] == "context"
    assert len(section["fields"]) <= 10 and all(len(f["text"]) <= 2000 for f in section["fields"])
    plain = body(EVENT, "slack")
    assert plain["blocks"][2]["fields"][0]["text"] == "*pair*\na-&gt;b"  # mrkdwn's markup
    assert plain["text"] == "wave1: pair a-&gt;b failed"
    assert plain["blocks"][0]["text"]["text"] == "wave1: pair a->b failed"  # plain_text


# -- retries and stalls (pure) -------------------------------------------------------------------
def test_retry_backs_off_with_jitter_within_its_bounds() -> None:
    p = Retry(attempts=5, base_s=1, cap_s=4, within_s=20)
    low, high = (lambda: 0.0), (lambda: 1.0)
    assert [next_wait(p, a, 500, None, 0, low) for a in (1, 2, 3, 4)] == [0.5, 1, 2, 2]
    assert [next_wait(p, a, None, None, 0, high) for a in (1, 2, 3, 4)] == [1, 2, 4, 4]
    assert next_wait(p, 5, 500, None, 0, low) is None  # the attempts are used up
    assert next_wait(p, 1, 500, None, 19.9, low) is None  # it would end past within_s
    for final in (400, 401, 403, 404, 410):
        assert next_wait(p, 1, final, None, 0, low) is None
    assert next_wait(p, 1, 429, 7.5, 0, low) == 7.5  # Retry-After obeyed within the bound
    assert next_wait(p, 1, 429, 25, 0, low) is None  # …not past it
    assert next_wait(p, 1, 429, None, 0, low) == 0.5


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("Fri, 04 Dec 2026 19:00:10 GMT", now=1796410800.0) == 10
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_stall_is_announced_once_and_again_only_after_progress() -> None:
    w = StallWatch(after_s=10)
    seen = [
        w.observe(t, progress, unfinished)
        for t, progress, unfinished in [
            (0, (1,), True),
            (9, (1,), True),
            (10, (1,), True),  # stalled: once
            (30, (1,), True),
            (99, (1,), True),
            (100, (2,), True),  # progress resumed
            (105, (2,), True),
            (110, (2,), True),  # a second stall
            (200, (2,), False),  # nothing unfinished: no stall
            (300, (2,), False),
        ]
    ]
    assert seen == [False, False, True, False, False, False, False, True, False, False]


# -- the sender ----------------------------------------------------------------------------------
def _notifier(rec_url: str, *, flush_s: float = 10, queue: int = 100, **retry: Any) -> Notifier:
    hook = Webhook("ops", Secret(rec_url, "env:HOOK"))
    cfg = NotifyConfig(webhooks=(hook,), flush_timeout_s=flush_s, queue_size=queue)
    policy = Retry(**{"base_s": 0.05, "cap_s": 0.2, "within_s": 10, "timeout_s": 5, **retry})
    return Notifier(cfg, "job1", retry=policy)


async def test_a_500_is_retried_and_delivered_once(log_lines: io.StringIO) -> None:
    async with receiver() as rec:
        rec.script["/h"] = [500, 500, 200]
        async with running(_notifier(rec.url(f"/h?{KEY}"))) as n:
            n.emit("pass.finished", {"pass": 1})
        assert [r.body["event"] for r in rec.at("/h")] == ["pass.finished"] * 3
        assert n.sent == 1 and n.unsent == 0
    failed = logged(log_lines, "notify.attempt_failed")
    assert [(f["attempt"], f["status"]) for f in failed] == [(1, 500), (2, 500)]
    (sent,) = logged(log_lines, "notify.sent")
    assert (sent["attempt"], sent["status"], sent["webhook"]) == (3, 200, "ops")
    assert sent["host"] == "127.0.0.1"
    assert KEY not in log_lines.getvalue() and "/h" not in log_lines.getvalue()


async def test_a_429_s_retry_after_is_obeyed() -> None:
    async with receiver() as rec:
        rec.script["/h"] = [(429, 0.4), 200]
        async with running(_notifier(rec.url("/h"))) as n:
            n.emit("job.stalled", {})
        first, second = rec.at("/h")
        assert second.at - first.at >= 0.38 and n.sent == 1


async def test_a_final_answer_is_not_retried(log_lines: io.StringIO) -> None:
    async with receiver() as rec:
        rec.script["/h"] = [404]
        async with running(_notifier(rec.url("/h"))) as n:
            n.emit("pass.finished", {})
        assert len(rec.at("/h")) == 1 and n.unsent == 1
    assert logged(log_lines, "notify.gave_up")[0]["webhook"] == "ops"


async def test_a_hanging_receiver_never_blocks_and_the_flush_is_bounded(
    log_lines: io.StringIO,
) -> None:
    async with receiver() as rec:
        rec.script["/h"] = ["hang"] * 1000
        started = time.monotonic()
        async with running(_notifier(rec.url("/h"), flush_s=1, queue=10, timeout_s=60)) as n:
            t0 = time.monotonic()
            for i in range(500):
                n.emit("pair.failed", {"i": i})
            emitting = time.monotonic() - t0
        took = time.monotonic() - started
    assert emitting < 0.5  # 500 events queued (or dropped) without waiting
    assert n.dropped >= 500 - 10 - 1  # the queue holds 10 (one more in the sender's hands)
    assert took < 1 + 3  # the flush gave up after its 1 s (3 s of slack for a loaded host)
    assert logged(log_lines, "notify.flush_cut_short")[0]["unsent"] >= 1
    assert logged(log_lines, "notify.dropped")[0]["reason"] == "queue full"


async def test_a_receiver_that_is_down_costs_the_run_at_most_the_flush(
    log_lines: io.StringIO,
) -> None:
    async with receiver() as rec:
        url = rec.url("/h")
    started = time.monotonic()  # the receiver is gone: connections are refused
    async with running(_notifier(url, flush_s=1, within_s=60, base_s=0.2)) as n:
        n.emit("pass.finished", {})
    assert time.monotonic() - started < 1 + 3
    failed = logged(log_lines, "notify.attempt_failed")
    assert failed and failed[0]["status"] is None and "Connect" in failed[0]["error"]


async def test_without_webhooks_nothing_runs() -> None:
    n = Notifier(NotifyConfig(), "job1")
    async with running(n):
        n.emit("pass.finished", {})
    assert n.sent == n.dropped == 0


async def test_webhooks_take_the_job_s_proxy() -> None:
    from copyengine.network import Proxy, Route
    from tests.proxy import CountingProxy

    async with receiver() as rec, CountingProxy(credentials=("svc", "pw")) as proxy:
        via = Proxy("127.0.0.1", proxy.port, "[network] proxy", "svc", Secret("pw", "env:PW"))
        async with running(_notifier(rec.url("/h")), Route(http=via)) as n:
            n.emit("pass.finished", {})
        assert n.sent == 1 and len(rec.at("/h")) == 1
        assert [(m, p) for m, _, p in proxy.requests] == [("POST", "/h")]
        assert proxy.refused == 0  # it sent the proxy's credentials
