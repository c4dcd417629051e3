"""``stricter``: the service gives less than the job's ``[limits]`` say.

The emulator runs the time-scaled Exchange profile (x60: a 2.5 MB upload budget per 5 s
window, 167 requests per 10 s, per mailbox) while the job is configured with budgets 2, 10
and 60 times larger (the service gives 1/2, 1/10, 1/60 of them), first alone, then with
another writer in every target mailbox taking half of its upload budget (the emulator's
``background_upload``). Per variant, one run of ``PAIRS`` pairs; against the real budget:

- items/s as a share of what the real budget allows: the shortest job time any client could
  reach with the upload budget left to it (``upload_bound_s``: whole windows, an item larger
  than the budget a window of its own), over the time the job took (target >= 80%);
- the share of requests answered 429 (target < 5%);
- the longest span with no import answered while the job ran, from its first import to its
  last, in service time (x60), against the issue's "no 30-second span at 0 MB/s while
  items are ready", taken literally; and the same after the first window. A client that
  does not know the service's budget fills what it believes is its window, is refused,
  and the service's Retry-After holds the mailbox until that window's bytes leave it, up
  to a whole window: only the spans after the first window show what the learning does.
  Spans are measured from each import's answer time as the emulator saw it (its
  ``/stats/imports``), not from the harness's counters, sampled every 0.25 s (15 service
  s: a span across two samples read 31-32 s). Per span, the target mailboxes with imports
  still to come, and the longest an even client would have waited there: one sending each
  mailbox's bodies at the rate the service gives it (the budget less the other writer's
  share: with the writer, a 200 KB body every 48 service s), the soonest of those
  mailboxes' next bodies over that rate. A span no longer is physical (the job's tail,
  one or two mailboxes left, mostly); the longest that is not is the engine's own.
  That first span is physical for a client that does not know the service's budget. One
  that loses nothing when the service gives what is configured (1/1) sends at once what
  its last window will carry (``R mod L``, the burst bound's schedule); where that is
  more than the service gives (all but about 1 in ``k`` mailboxes at 1/``k``), the
  service refuses it within the burst and the Retry-After holds the mailbox until those
  first bytes leave: about a window. One that sends its first window evenly at the
  configured rate instead (``even_first_window_s``; up to a window later at 1/1) is
  refused once it has sent what the service leaves it, ``W (1 - b) / k`` into the window
  (``b``: the other writer's share, which holds ``b`` of the window throughout: its writes
  a window old leave as its new ones come), and waits until its own first bytes leave
  (what the other writer's leave it retakes at once): ``W (1 - (1 - b) / k)`` (x60: 150,
  270 and 295 service s at 1/2, 1/10, 1/60 alone; 150, 225, 285 and 298 s at 1/1, 1/2,
  1/10, 1/60 with the other writer). Under 30 s only with a first window sent at most a
  ninth above what the service leaves, that is by knowing the budget within a tenth. The documented ``[limits]`` give the service's
  own rate over a longer window: 0 s for the even client.
  A sliding window gives its budget back when what filled it leaves it, so pairs that
  start together fill their windows together and wait together: the reference run (the
  service giving what is configured, ``1/1``, with the same other writer) shows that
  rhythm of the window itself. A budget the service cut, sent at an even rate instead,
  had 30-47 s without an import after the first window alone (the results' README, issue
  26, "an even rate"), but not beside the emulator's other writer as it was until
  2026-12-05, which wrote only when one of our requests came and then took all it was owed
  in one piece (the results' README, issue 26, "a cut budget shaped"). It writes on its own
  clock now (``emulator.throttle.Background``): a write every twentieth of the window,
  refused while the window has no room for it, owed a window's share at most.

``documented``: the job under Exchange's documented ``[limits]`` (the defaults: 150 MB per
5 minutes) against the same time-scaled service, the issue's own case: the service gives
the same rate over a window 60 times shorter; ``documented:0.5``, the same with the other
writer (``CE_STRICTER_VARIANTS=documented:0.5``): a window far shorter than configured
and a writer whose Retry-Afters show less of it still (2% of the real budget before
``pacing.step.Budgets._widened_under_shown``). With ``--base REV`` every variant runs the
engine at REV too, in the same run (the A/B that a shared, noisy machine needs).
"""

from __future__ import annotations

import heapq
import itertools
import os
import time
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.common import stamp
from benchmarks.harness import (
    BASE_PREFIX,
    TIME_SCALED_LIMITS,
    Control,
    Scenario,
    run_scenario,
    upload_bound_s,
)
from copyengine.emulator.throttle import Limits

RATIOS = (1, 2, 10, 60)  # 1: the reference, the service giving what is configured
DOCUMENTED = 0  # the ratio of the variant under the documented (default) [limits]
VARIANTS = [(r, bg) for bg in (0.0, 0.5) for r in RATIOS] + [(DOCUMENTED, bg) for bg in (0.0, 0.5)]
# the documented [limits], the service's request window 1 s at 20 requests per mailbox (a
# little over [limits]' average, 10,000 per 600 s), shorter than any the pacer keeps a
# budget over (``learn.Aimd.shortest_window``: 6 s): the service's request limit, not its
# upload budget, is the one stricter than configured. Named only (``CE_STRICTER_VARIANTS=
# requests1s``), not in the recorded set
REQUESTS_1S = -1
SERVICE_REQUESTS_1S = {"requests": 20, "request_window": 1.0}
NAMED = {"documented": DOCUMENTED, "requests1s": REQUESTS_1S}
PAIRS = 8
ITEMS = 250
# items well under the service's budget (the largest a twelfth of it, as a 12 MB item is of
# Exchange's 150 MB): with another writer always in the window, a body larger than what is
# left could never pass
SIZES: dict[str, Any] = {"distribution": "realistic", "max": 200_000}
TIME_SCALE = 60.0
SPAN_S = 30.0  # service time
TARGET = (
    "with the service giving 1/2, 1/10 and 1/60 of the configured budgets, alone and with "
    "another writer taking half of each target's upload budget: items/s >= 80% of what the "
    "real budget allows, 429 share < 5%, no 30-second span (service time) at 0 MB/s while "
    "items are ready"
)


def chosen(wanted: str | None = None) -> list[tuple[int, float]]:
    """The variants to run: all, or those ``CE_STRICTER_VARIANTS`` names (diagnostics, not
    for ``--record``): ``"2,10:0.5,documented"`` is 1/2 alone, 1/10 with the other writer
    taking half, and the documented ``[limits]``."""
    wanted = os.environ.get("CE_STRICTER_VARIANTS") if wanted is None else wanted
    if not wanted:
        return list(VARIANTS)
    out = []
    for raw in wanted.split(","):
        ratio, _, bg = raw.strip().partition(":")
        try:
            v = (NAMED[ratio] if ratio in NAMED else int(ratio), float(bg or 0.0))
        except ValueError:
            v = (-2, -1.0)
        if v not in VARIANTS and v[0] != REQUESTS_1S:
            known = ", ".join(
                f"{'documented' if r == DOCUMENTED else r}{f':{b:g}' if b else ''}"
                for r, b in VARIANTS
            )
            raise SystemExit(f"CE_STRICTER_VARIANTS: no variant {raw.strip()!r} (known: {known})")
        out.append(v)
    return out


def even_first_window_s(ratio: int, background: float) -> float:
    """Service seconds at 0 MB/s in the first window for a client that does not know the
    service's budget and sends its first window evenly at the configured rate (the
    module's docstring: a client that loses nothing at 1/1 waits about a window); 0 when
    that rate is the service's."""
    k = 1 if ratio in (DOCUMENTED, REQUESTS_1S) else ratio
    window = Limits.profile("exchange-fast", TIME_SCALE).upload_window * TIME_SCALE
    return max(0.0, window * (1 - (1 - background) / k))


def label(ratio: int) -> str:
    if ratio == REQUESTS_1S:
        return "documented [limits], 20 requests per 1 s"
    return "documented [limits]" if ratio == DOCUMENTED else f"1/{ratio}"


def scenario(ratio: int, background: float, base: str | None = None) -> Scenario:
    scaled = TIME_SCALED_LIMITS
    if ratio in (DOCUMENTED, REQUESTS_1S):
        limits: dict[str, Any] = {}  # the engine's defaults: Exchange's documented limits
    else:
        limits = {
            **scaled,
            "requests_per_window": scaled["requests_per_window"] * ratio,
            "upload_mb_per_window": scaled["upload_mb_per_window"] * ratio,
        }
    what = (
        "the job under the documented [limits], the service's windows 60 times shorter"
        if ratio in (DOCUMENTED, REQUESTS_1S)
        else f"the service gives 1/{ratio} of the configured budgets"
    )
    if ratio == REQUESTS_1S:
        what += ", its request window 1 s (20 requests per mailbox)"
    return Scenario(
        "stricter",
        what
        + (f", another writer takes {background:.0%} of each upload budget" if background else ""),
        pairs=PAIRS,
        items_per_mailbox=ITEMS,
        sizes=SIZES,
        profile="exchange-fast",
        time_scale=TIME_SCALE,
        repeats=1,
        warmup=False,
        limits=limits,
        emulator_limits=dict(SERVICE_REQUESTS_1S) if ratio == REQUESTS_1S else {},
        background_upload=background,
        answers=True,
        timeout=900,
        contenders=("copyengine",) + ((f"{BASE_PREFIX}{base}",) if base else ()),
    )


def bound_seconds(s: Scenario, ctl: Control) -> float:
    """The shortest job time any client could reach with the upload budget the other
    writer leaves it (as ``__main__.ceiling_seconds``: the slowest target mailbox)."""
    lim = Limits.profile(s.profile, s.time_scale)
    assert lim.upload_bytes
    left = replace(lim, upload_bytes=int(lim.upload_bytes * (1 - s.background_upload)))
    assert left.upload_bytes
    worst = 0.0
    for i in range(1, s.pairs + 1):
        snap = ctl.snapshot(f"src{i:04d}@source.example")
        bodies = [row["dataLength"] + 120 for row in snap["items"]]
        small = sum(b for b in bodies if b <= left.upload_bytes)
        over = sum(1 for b in bodies if b > left.upload_bytes)
        worst = max(worst, upload_bound_s(left, small, over))
    return worst


@dataclass(frozen=True, slots=True)
class Span:
    """A span between two consecutive imports of the job (any target mailbox), wall time."""

    seconds: float
    at: float  # seconds after the job's first import when it began
    answered: int  # imports answered by then
    left: int  # target mailboxes with imports still to come
    # the longest any client sending every mailbox's bodies evenly at the rate the service
    # gives it could have waited here: the soonest of the mailboxes left's next body over
    # that rate (a span no longer than this is physical, not the engine's)
    even_s: float

    @property
    def physical(self) -> bool:
        return self.seconds <= self.even_s


def spans(imports: dict[str, list[list[float]]], rate: float) -> list[Span]:
    """Every span between consecutive imports, from the job's first to its last, in order,
    from each import's answer time (the emulator's ``/stats/imports``: per target mailbox,
    ``[t, body bytes]`` in the order answered), with ``rate`` the bytes per second the
    service gives one mailbox (its upload budget less the other writer's share)."""
    merged = sorted((t, m, i) for m, rows in imports.items() for i, (t, _) in enumerate(rows))
    if not merged:
        return []
    t0 = merged[0][0]
    # each mailbox with imports to come, by its next body: (bytes, mailbox, index), an
    # entry dropped once its import is answered (a fleet's thousands of mailboxes: not a
    # scan of them per span)
    nexts = [(rows[0][1], m, 0) for m, rows in imports.items() if rows]
    heapq.heapify(nexts)
    left = len(nexts)
    taken = dict.fromkeys(imports, 0)  # per mailbox: its imports answered so far
    out = []
    for k, ((t, m, i), (nxt, _, _)) in enumerate(itertools.pairwise(merged), start=1):
        taken[m] = i + 1
        if i + 1 < len(imports[m]):
            heapq.heappush(nexts, (imports[m][i + 1][1], m, i + 1))
        else:
            left -= 1
        while nexts and nexts[0][2] < taken[nexts[0][1]]:
            heapq.heappop(nexts)
        even = nexts[0][0] / rate if nexts and rate > 0 else 0.0
        out.append(Span(nxt - t, t - t0, k, left, even))
    return out


def longest(all_spans: list[Span], after: float = 0.0, engine: bool = False) -> float:
    """Seconds (wall) of the longest span that begins ``after`` seconds or more after the
    job's first import (``engine``: only those the even rate does not explain)."""
    return max(
        (s.seconds for s in all_spans if s.at >= after and not (engine and s.physical)),
        default=0.0,
    )


def longest_spans(all_spans: list[Span], after: float, n: int = 5) -> list[Span]:
    """The ``n`` longest spans that begin ``after`` seconds or more after the first
    import, longest first."""
    return sorted((s for s in all_spans if s.at >= after), key=lambda s: -s.seconds)[:n]


def measure(s: Scenario, res: dict[str, Any], contender: str) -> dict[str, Any]:
    """One contender's figures in one variant."""
    runs = res["runs"][contender]
    duration = min(r["duration_s"] for r in runs)
    bound = res["extra"]["ceiling_s"]
    lim = Limits.profile(s.profile, s.time_scale)
    assert lim.upload_bytes
    window = lim.upload_window
    answers = res["answers"][contender]
    if answers["dropped"]:
        raise RuntimeError(f"the emulator dropped {answers['dropped']} import answer times")
    rate = lim.upload_bytes * (1 - s.background_upload) / window
    job = spans(answers["imports"], rate)
    return {
        "items_per_s": max(r["items_per_s"] for r in runs),
        "duration_s": duration,
        "share_of_real_budget": round(bound / duration, 3),
        "share_429": max(r["share_429"] for r in runs),
        "throttled_429": max(r["throttled_429"] for r in runs),
        "longest_idle_service_s": round(longest(job) * TIME_SCALE, 1),
        "longest_idle_after_first_window_s": round(longest(job, window) * TIME_SCALE, 1),
        # the longest after the first window that a client sending evenly at the service's
        # rate would not have had there too: the engine's own
        "longest_engine_idle_after_first_window_s": round(
            longest(job, window, engine=True) * TIME_SCALE, 1
        ),
        # where the longest fall: service s, wall s after the first import, imports answered
        # by then, target mailboxes left, and the even client's longest wait there (service s)
        "longest_spans_after_first_window": [
            {
                "service_s": round(x.seconds * TIME_SCALE, 1),
                "at_wall_s": round(x.at, 2),
                "answered": x.answered,
                "mailboxes_left": x.left,
                "even_service_s": round(x.even_s * TIME_SCALE, 1),
                "physical": x.physical,
            }
            for x in longest_spans(job, window)
        ],
    }


def run(repeats: int | None = None, base: str | None = None) -> dict[str, Any]:
    t_start = time.time()
    variants = []
    for ratio, bg in chosen():
        s = scenario(ratio, bg, base)
        print(f"== stricter: {s.description}", flush=True)
        res = run_scenario(s, repeats or 1, ceiling=bound_seconds)
        variants.append(
            {
                "ratio": ratio,
                "background": bg,
                **measure(s, res, "copyengine"),
                "bound_s": res["extra"]["ceiling_s"],
                "even_first_window_s": even_first_window_s(ratio, bg),
                "base": measure(s, res, s.contenders[1]) if base else None,
                "integrity": res["integrity"],
                "command_parameters": {"limits": s.limits, "background_upload": bg},
            }
        )
        print(f"  {variants[-1]}", flush=True)
    return {
        "scenario": "stricter",
        "description": "the service gives less than the configured [limits] (emulator "
        f"exchange-fast x{TIME_SCALE:g}); {PAIRS} pairs of {ITEMS} items (realistic sizes "
        f"up to {SIZES['max'] // 1000} KB) per variant",
        "command": "python -m benchmarks run stricter" + (f" --base {base}" if base else ""),
        "base": base,
        **stamp(t_start),
        "variants": variants,
        "verdict": verdicts(variants),
    }


def verdicts(variants: list[dict[str, Any]]) -> list[str]:
    out = []
    for v in variants:
        # the window's own rhythm: the reference run with the same other writer
        ref = next(
            (r for r in variants if r["ratio"] == 1 and r["background"] == v["background"]), None
        )
        rhythm = f"; the 1/1 reference's {ref['longest_idle_service_s']:.0f} s" if ref else ""
        rate_ok = (
            v["share_of_real_budget"] >= 0.8
            and v["share_429"] < 0.05
            and v["integrity"]["lost"] == 0
            and v["integrity"]["duplicated"] == 0
        )
        idle = v["longest_idle_service_s"]
        later = v["longest_idle_after_first_window_s"]
        base = v.get("base")
        against = (
            f"; the base: {base['share_of_real_budget']:.0%}, 429 share "
            f"{base['share_429']:.2%}, longest span {base['longest_idle_service_s']:.0f} s, "
            f"after the first window {base['longest_idle_after_first_window_s']:.0f} s"
            f"{where(base)}"
            if base
            else ""
        )
        out.append(
            f"{label(v['ratio'])}{' + another writer' if v['background'] else ''}: "
            f"{v['share_of_real_budget']:.0%} of the real budget, 429 share "
            f"{v['share_429']:.2%}: {'met' if rate_ok else 'MISSED'}; longest span without "
            f"an import {idle:.0f} s (target 30 s: {'met' if idle <= SPAN_S else 'MISSED'}), "
            f"after the first window {later:.0f} s "
            f"({'met' if later <= SPAN_S else 'MISSED'}{rhythm}{where(v)}); "
            f"the first window sent evenly at the configured rate would still wait "
            f"{even_first_window_s(v['ratio'], v['background']):.0f} s"
            f"{against}"
        )
    return out


def where(v: dict[str, Any]) -> str:
    """Where the longest span after the first window falls, and the longest that a client
    sending evenly at the service's rate would not have had (the engine's own)."""
    top = v.get("longest_spans_after_first_window") or []
    if not top or not isinstance(top[0], dict):
        return ""
    x = top[0]
    engine = v["longest_engine_idle_after_first_window_s"]
    whose = "physical" if x["physical"] else "the engine's"
    return (
        f"; at {x['answered']} imports with {x['mailboxes_left']} target mailbox"
        f"{'es' if x['mailboxes_left'] != 1 else ''} left, where an even client waits up to "
        f"{x['even_service_s']:.0f} s: {whose}; "
        f"the longest the even rate does not explain {engine:.0f} s "
        f"({'met' if engine <= SPAN_S else 'MISSED'})"
    )


def table(res: dict[str, Any]) -> str:
    m = res["machine"]
    base = res.get("base")
    head = (
        "| service gives | other writer | engine | items/s | job s | bound s | % of real budget "
        "| 429 share | longest idle (service s) | after the first window | of which the engine's "
        "| lost / dup |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for v in res["variants"]:
        for name, f in (("copyengine", v), (f"copyengine@{base}", v.get("base"))):
            if f is None:
                continue
            rows.append(
                f"| {label(v['ratio'])} | {v['background']:.0%} | {name} | {f['items_per_s']} | "
                f"{f['duration_s']:.1f} | {v['bound_s']:.1f} | "
                f"{f['share_of_real_budget']:.0%} | {f['share_429']:.2%} | "
                f"{f['longest_idle_service_s']:.0f} | "
                f"{f.get('longest_idle_after_first_window_s', 0):.0f} | "
                f"{f.get('longest_engine_idle_after_first_window_s', 0):.0f} | "
                f"{v['integrity']['lost']} / {v['integrity']['duplicated']} |"
            )
    verdict = "\n".join(f"- {v}" for v in res["verdict"])
    return (
        f"### stricter\n\n{res['description']}. Command: `{res['command']}` "
        f"({res['date']} UTC, {m['cores']} cores, {m['cpu']}, Python {m['python']}).\n\n"
        f"{head}" + "\n".join(rows) + f"\n\nTarget: {TARGET}.\n\n{verdict}\n"
    )
