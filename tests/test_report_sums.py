"""A pair's sums over its folders (``PairStats.total``): a finished pair's are kept, since the
job's progress and timeline ask for them every second for every pair (issue 26: a thousand
pairs of twenty folders each), and they never go stale."""

from __future__ import annotations

from typing import Any

from copyengine.report import JobStats, PairStats, PairStatus


def _pair(folders: int = 20) -> PairStats:
    st = PairStats("s@contoso.example", "t@fabrikam.example")
    for i in range(folders):
        fs = st.folder(f"/f{i}")
        fs.copied, fs.copied_bytes, fs.source_items = i, 10 * i, i + 1
    return st


def test_a_running_pair_sums_what_its_folders_hold_now() -> None:
    st = _pair()
    st.status = PairStatus.RUNNING
    assert st.total("copied") == sum(range(20))
    st.folders["/f0"].copied += 5
    assert st.total("copied") == sum(range(20)) + 5


def test_a_finished_pair_keeps_its_sums_until_it_runs_again() -> None:
    st = _pair()
    st.status, st.finished = PairStatus.DONE, 12.0
    assert st.total("copied") == sum(range(20))
    assert st.total("copied_bytes") == 10 * sum(range(20))
    assert st.done_items == sum(range(20))
    st._sums = (st._sums[0], {"copied": -1}) if st._sums else None
    assert st.total("copied") == -1  # kept: not summed again
    # a held pair continues: it is summed anew, and again after it finished once more
    st.continued()
    assert st.total("copied") == sum(range(20))
    st.status = PairStatus.RUNNING
    st.folders["/f1"].copied += 1
    assert st.total("copied") == sum(range(20)) + 1
    st.status, st.finished = PairStatus.DONE, 20.0
    assert st.total("copied") == sum(range(20)) + 1


def test_a_failed_pair_and_a_new_finish_are_summed_afresh() -> None:
    st = _pair()
    st.status, st.finished = PairStatus.FAILED, 3.0
    assert st.total("source_items") == sum(range(1, 21))
    st.status, st.finished = PairStatus.DONE, 4.0  # another go of the pair in a worker
    st.folders["/f2"].source_items += 2
    assert st.total("source_items") == sum(range(1, 21)) + 2


def test_the_job_totals_add_up_running_and_finished_pairs() -> None:
    job = JobStats()
    for k, status in enumerate((PairStatus.DONE, PairStatus.RUNNING, PairStatus.FAILED)):
        st = job.pairs[f"p{k}"] = _pair(5)
        st.status, st.finished = status, (None if status is PairStatus.RUNNING else 1.0)
    assert job.total("copied") == 3 * sum(range(5))
    job.pairs["p1"].folders["/f0"].copied += 7
    assert job.total("copied") == 3 * sum(range(5)) + 7
    assert job.totals()["copied"] == 3 * sum(range(5)) + 7


def _outcomes(st: PairStats) -> None:
    for i, fs in enumerate(st.folders.values()):
        fs.moved_in, fs.updated, fs.already_present = i % 3, i % 2, 1
        fs.skipped["too_large"] += i % 4
        fs.failed.extend({"id": f"x{i}-{j}"} for j in range(i % 3))


def _done_by_parts(st: PairStats) -> int:
    return (
        st.total("copied")
        + st.total("moved_in")
        + st.total("updated")
        + st.total("already_present")
        + st.skipped
        + st.failed
    )


def test_done_items_counts_every_final_outcome_running_or_finished() -> None:
    st = _pair()
    _outcomes(st)
    st.status = PairStatus.RUNNING
    assert st.done_items == _done_by_parts(st) > sum(range(20))
    st.folders["/f3"].skipped["too_large"] += 2
    st.folders["/f4"].failed.append({"id": "late"})
    assert st.done_items == _done_by_parts(st)
    st.status, st.finished = PairStatus.DONE, 9.0
    done = st.done_items
    assert done == _done_by_parts(st)
    assert st.not_done == max(0, st.total("source_items") - done)


def test_the_timeline_sample_sums_every_pair() -> None:
    job = JobStats()
    for k, status in enumerate((PairStatus.DONE, PairStatus.RUNNING)):
        st = job.pairs[f"p{k}"] = _pair(4)
        st.status, st.finished = status, (None if status is PairStatus.RUNNING else 1.0)
    job.sample()
    _, copied, nbytes, throttled = job.timeline[-1]
    assert (copied, nbytes) == (job.total("copied"), job.total("copied_bytes"))
    assert throttled == sum(p.throttled for p in job.pairs.values())


def test_the_report_json_is_what_json_dumps_wrote() -> None:
    import json

    from copyengine.report import report_json

    job = JobStats()
    for k in range(3):
        st = job.pairs[f"p{k}"] = _pair(3)
        _outcomes(st)
        st.status, st.finished = PairStatus.DONE, 2.0
        st.notes.append("a note with é and \u2028 in it")
    report = job.as_dict()
    report["ratio"], report["tiny"] = 0.25, 1e-05
    old = json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")
    assert json.loads(report_json(report)) == json.loads(old)
    del report["tiny"]  # spelled 0.00001 by orjson: the same number; else byte for byte
    assert report_json(report) == json.dumps(report, indent=2, ensure_ascii=False).encode()
    # what orjson refuses (a key not a string) is written by json, as before
    odd: dict[Any, Any] = {1: [2]}
    assert report_json(odd) == json.dumps(odd, indent=2).encode()


def test_the_job_totals_count_as_the_pairs_do_one_by_one() -> None:
    job = JobStats()
    for k, status in enumerate((PairStatus.DONE, PairStatus.RUNNING, PairStatus.FAILED)):
        st = job.pairs[f"p{k}"] = _pair(6)
        _outcomes(st)
        st.folders["/f5"].unknown.append({"id": f"u{k}"})
        st.folders["/f1"].source_items += 40 * k  # some pairs with items not done
        st.status, st.finished = status, (None if status is PairStatus.RUNNING else 1.0)
    pairs = job.pairs.values()
    t = job.totals()
    assert t["source_items"] == sum(p.total("source_items") for p in pairs)
    assert t["source_bytes"] == sum(p.total("source_bytes") for p in pairs)
    assert t["already_present"] == sum(p.total("already_present") for p in pairs)
    assert t["skipped"] == sum(p.skipped for p in pairs) > 0
    assert t["failed"] == sum(p.failed for p in pairs) > 0
    assert t["unknown"] == sum(p.unknown for p in pairs) == 3
    assert t["not_done"] == sum(max(0, p.total("source_items") - _done_by_parts(p)) for p in pairs)
    assert t["not_done"] > 0
