"""PNG charts where a picture says more: throughput over time (429s marked) and memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chart(res: dict[str, Any], results: Path) -> None:
    """``<scenario>.png`` in ``results`` (nothing without matplotlib, the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the bench extra is not installed: tables only
        return
    samples = res.get("samples") or {}
    if not samples:
        return
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=False)
    for name, rows in samples.items():
        if len(rows) < 3:
            continue
        t = [r[0] for r in rows]
        rate = [0.0] + [
            (rows[k][2] - rows[k - 1][2]) / max(1e-6, rows[k][0] - rows[k - 1][0])
            for k in range(1, len(rows))
        ]
        ax1.plot(t, rate, label=f"{name} imports/s", linewidth=1)
        thr = [(rows[k][0], rate[k]) for k in range(1, len(rows)) if rows[k][3] > rows[k - 1][3]]
        if thr:
            ax1.scatter(
                [x for x, _ in thr],
                [y for _, y in thr],
                marker="x",
                color="red",
                s=18,
                label=f"{name}: 429 answered",
                zorder=3,
            )
        ax2.plot(t, [r[1] for r in rows], label=f"{name} RSS MiB", linewidth=1)
    ax1.set_title(f"{res['scenario']}: throughput over time (last run of each contender)")
    ax1.set_xlabel("seconds")
    ax1.set_ylabel("items imported / s")
    ax1.legend(fontsize=7)
    ax2.set_title("engine memory over time")
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("RSS MiB")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(results / f"{res['scenario']}.png", dpi=90)
    plt.close(fig)
