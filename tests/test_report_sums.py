"""A pair's sums over its folders (``PairStats.total``): a finished pair's are kept, since the
job's progress and timeline ask for them every second for every pair (issue 26: a thousand
pairs of twenty folders each), and they never go stale."""

from __future__ import annotations

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
