"""``status`` and ``status --pair`` say each pair's budget in effect (issue 26, the review's
finding 8): kept in the state with the pair's statistics of its pass, the same as the log's
``job.finished`` and the report say it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from copyengine.report import budget_said
from copyengine.state.pairpasses import PairPass, budget_of, hints_of, latest_budget
from tests.jobs import cli, demo_job

ADELE, BIANCA = "adele@contoso.example", "bianca@contoso.example"


def _throttled_job(where: Path) -> Path:
    """The shipped example, four pairs of 15 items, against the emulator's time-scaled
    profile (x300: 0.5 MB per 1 s window) under the documented [limits]: throttled."""
    job = demo_job(where)
    text = job.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^profile = "exchange" ', 'profile = "exchange-fast"', text)
    text = text.replace("# time_scale = 60", "time_scale = 300")
    text = re.sub(r"items = \d+,", "items = 15,", text)
    text = re.sub(r'(?m)^log_format = "auto"', 'log_format = "json"', text)
    job.write_text(text, encoding="utf-8")
    return job


@pytest.mark.timeout(240)
def test_status_says_the_budget_in_effect_of_a_throttled_run(tmp_path: Path) -> None:
    job = _throttled_job(tmp_path)
    done = cli("run", str(job), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    finished = next(
        json.loads(line)
        for line in done.stderr.splitlines()
        if line.startswith("{") and '"job.finished"' in line
    )
    budgets = finished["budget_in_effect"]
    assert budgets, "the run was not throttled: nothing to show"
    report = json.loads((tmp_path / ".copyengine" / "config.example.report.json").read_text())
    by_pair = {f"{p['source']}->{p['target']}": p["budget_in_effect"] for p in report["pairs"]}
    assert {k: v for k, v in by_pair.items() if v} == budgets
    st = cli("status", str(job), "--json", cwd=tmp_path)
    assert st.returncode == 0, st.stderr
    shown = {p["pair"]: p["budget_in_effect"] for p in json.loads(st.stdout)["pairs"]}
    assert shown == by_pair  # every pair: the cut ones as job.finished, the others {}
    text = cli("status", str(job), cwd=tmp_path).stdout
    for budget in by_pair.values():
        assert f"budget in effect (pass 1): {budget_said(budget)}" in text, text
    for source in (ADELE, BIANCA):
        entry = json.loads(cli("status", str(job), "--pair", source, "--json", cwd=tmp_path).stdout)
        (one,) = entry["pairs"]
        key = f"{source}->{one['target']}"
        assert one["budget_in_effect"] == by_pair[key] and one["budget_pass"] == 1
        said = cli("status", str(job), "--pair", source, cwd=tmp_path).stdout
        assert f"budget in effect (pass 1): {budget_said(by_pair[key])}" in " ".join(said.split())


def test_the_budget_is_kept_in_the_hints_json_and_old_rows_read_as_before() -> None:
    """No column of its own: beside the advice in the ``hints`` JSON; a row an engine of
    schema 8 wrote (a list, or nothing) reads as it did, and says no budget."""
    up = {"mailbox": "b@f", "limit": "upload", "share": 0.1, "value": 15.0}
    row = PairPass(1, "p", "r", "first", "done", hints=(up,), budget={"target": {"upload": 0.1}})
    text = row.row()[-1]
    assert hints_of(text) == (up,) and budget_of(text) == {"target": {"upload": 0.1}}
    assert hints_of('[{"mailbox": "m"}]') == ({"mailbox": "m"},) and budget_of("[]") is None
    assert budget_of(None) is None and hints_of(None) is None
    whole = PairPass(2, "p", "r", "delta", "done", hints=(), budget={}).row()[-1]
    assert budget_of(whole) == {}  # said: all of [limits]
    assert latest_budget([(1, {"target": {"upload": 0.1}}), (2, None)]) == (
        1,
        {"target": {"upload": 0.1}},
    )
    assert latest_budget([(1, {"target": {"upload": 0.1}}), (2, {})]) == (2, {})
    assert budget_said({}) == "all of [limits]"
    assert budget_said({"target": {"upload": 0.5}}) == "target upload 1/2 of [limits]"
