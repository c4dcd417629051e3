"""Inline SVG line charts for the HTML report: a cumulative series of the run's timeline
drawn as a rate per interval, with both axes drawn, ticked and labelled (time, and the
rate's unit). No script, no external resource."""

from __future__ import annotations

import math
from html import escape
from itertools import pairwise
from typing import Any

WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 30, 48


def nice_top(peak: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``peak`` (1 for none)."""
    if peak <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(peak))
    return float(next(m * base for m in (1, 2, 5, 10) if m * base >= peak))


def _tick(v: float) -> str:
    """A tick's label: ``0``, ``0.25``, ``2.5``, ``1,200``."""
    return f"{v:,.0f}" if v >= 10 or v == int(v) else f"{v:,.2f}".rstrip("0").rstrip(".")


def rates(timeline: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """(seconds since the start, ``key`` per second over the interval that ends then)."""
    pts: list[tuple[float, float]] = [(float(timeline[0]["t"]), 0.0)]
    for a, b in pairwise(timeline):
        dt = b["t"] - a["t"]
        if dt > 0:
            pts.append((float(b["t"]), max(0.0, (b[key] - a[key]) / dt)))
    return pts


def ticks(span: float, at_most: int = 6) -> list[float]:
    """Round values from 0 to at least ``span``: 0, step, 2 step, ... with a step of 1, 2 or
    5 times a power of ten, at most ``at_most`` of them past 0."""
    step = nice_top(span / (at_most - 1)) if span > 0 else 1.0
    count = max(1, math.ceil(span / step - 1e-9))
    return [step * k for k in range(count + 1)]


def _axes(span: float, top: float, yticks: list[float], unit: str) -> list[str]:
    """Both axes with their ticks, grid lines and titles (``span`` seconds wide)."""
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    scale, tunit = (60.0, "min") if span > 300 else (1.0, "s")
    out = [
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#57606a"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#57606a"/>',
    ]
    for v in yticks:
        y = y0 - (y0 - y1) * v / top
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eaeef2"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{_tick(v)}</text>'
        )
    for t in (t for t in ticks(span / scale) if t * scale <= span + 1e-9):
        x = x0 + (x1 - x0) * t * scale / (span or 1.0)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 5}" stroke="#57606a"/>')
        out.append(
            f'<text x="{x:.1f}" y="{y0 + 18}" font-size="11" text-anchor="middle">{_tick(t)}</text>'
        )
    out.append(
        f'<text x="{(x0 + x1) / 2:.0f}" y="{HEIGHT - 8}" font-size="12" text-anchor="middle">'
        f"time since the run started ({tunit})</text>"
    )
    out.append(
        f'<text x="16" y="{(y0 + y1) / 2:.0f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {(y0 + y1) / 2:.0f})">{escape(unit)}</text>'
    )
    return out


def chart(timeline: list[dict[str, Any]], key: str, title: str, unit: str) -> str:
    """A line chart of ``key``'s rate over the run, or a sentence when there is too little."""
    if len(timeline) < 2:
        return f'<p class="muted">{escape(title)}: the run was too short to chart.</p>'
    pts = rates(timeline, key)
    t0, t1 = pts[0][0], pts[-1][0]
    span = (t1 - t0) or 1.0
    peak = max(v for _, v in pts)
    yticks = ticks(peak, 5) if peak > 0 else [0.0, 0.25, 0.5, 0.75, 1.0]
    top = yticks[-1]
    xs = [LEFT + (t - t0) / span * (WIDTH - LEFT - RIGHT) for t, _ in pts]
    ys = [HEIGHT - BOTTOM - v / top * (HEIGHT - BOTTOM - TOP) for _, v in pts]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return "".join(
        [
            f'<svg role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}">',
            f'<text x="{LEFT}" y="18" font-size="13" font-weight="600">{escape(title)} '
            f"(peak {peak:,.1f} {escape(unit)})</text>",
            *_axes(t1 - t0, top, yticks, unit),
            f'<polyline fill="none" stroke="#0969da" stroke-width="2" points="{line}"/>',
            "</svg>",
        ]
    )
