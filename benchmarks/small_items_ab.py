"""An A/B of the engine against a git revision on small items (a diagnostic, not a
scenario): the ``growth`` job at 30,000 items of 20 KB over 10 pairs, the two engines
alternating in one emulator, ``--rounds`` times each. Prints items/s and engine CPU per
1,000 items per run.

    python -m benchmarks.small_items_ab --base 0ea9055
"""

from __future__ import annotations

import argparse

from benchmarks.__main__ import SCENARIOS
from benchmarks.common import emulator_process
from benchmarks.harness import BASE_PREFIX, Control, Scenario, emulator_toml, run_once


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.small_items_ab")
    p.add_argument("--base", required=True, help="the git revision to compare with")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    s = Scenario(**{**SCENARIOS["growth"].__dict__, "items_per_mailbox": 3000})
    with emulator_process(emulator_toml(s), timeout=900) as (info, _pid):
        ctl = Control(info)
        for k in range(a.rounds):
            for j, contender in enumerate(("copyengine", BASE_PREFIX + a.base)):
                r = run_once(s, info, ctl, contender, f"ab{k}{j}", s.pairs)
                print(
                    f"{contender:24s} round {k + 1}: {r['items_per_s']:8.1f} items/s, "
                    f"{r['cpu_s_per_1000_items']:.3f} s CPU per 1,000 items",
                    flush=True,
                )


if __name__ == "__main__":
    main()
