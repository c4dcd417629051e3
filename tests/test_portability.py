"""Windows as far as it can be proved on Linux.

The demo job runs, and its lock holds, in an interpreter where what Windows lacks is gone:
``fcntl``, ``termios``, ``resource``, ``pwd`` and ``grp`` cannot be imported, the event
loop's ``add_signal_handler`` raises NotImplementedError as Windows' loops do, ``os`` has no
``killpg``, ``setsid``, ``fork``, ``pread`` or ``pwrite``, ``signal`` no SIGUSR1 or SIGHUP,
and ``subprocess.Popen`` refuses ``preexec_fn`` and ``start_new_session`` as it does on
Windows. The simulation is a ``sitecustomize`` module on PYTHONPATH, so the embedded
emulator's process runs under it too.

What this cannot prove: the Windows locking call itself (filelock's ``msvcrt.locking``; here
filelock falls back to its lock by exclusive creation, since neither fcntl nor msvcrt is
there), console Ctrl-C / Ctrl-Break delivery, ``CREATE_NEW_PROCESS_GROUP``, and drive-letter
paths opened for real (their parsing is tested with ``PureWindowsPath``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from copyengine.config import load_job
from copyengine.emulator.process import detach_options
from copyengine.errors import ConfigError
from copyengine.exitcodes import ExitCode
from copyengine.paths import job_path
from copyengine.pipeline.job import abort_hint
from copyengine.stopsignals import STOP_SIGNALS, handling, receiving
from tests.test_config import GOOD

ROOT = Path(__file__).parent.parent
RUN = ("run", "config.example.toml", "--no-progress")

SIMULATION = '''
"""Windows as copyengine sees it, simulated on POSIX (tests/test_portability.py)."""
import importlib.abc
import os
import signal
import sys

BLOCKED = {"fcntl", "termios", "resource", "pwd", "grp"}


class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (simulated Windows)", name=name)
        return None


for _m in BLOCKED:
    sys.modules.pop(_m, None)
sys.meta_path.insert(0, _Blocked())

import asyncio.unix_events  # noqa: E402  (after the blocker: subprocess finds no fcntl)
import subprocess  # noqa: E402


def _no_signal_handlers(self, *args, **kwargs):
    raise NotImplementedError  # as Windows' ProactorEventLoop and SelectorEventLoop do


asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = _no_signal_handlers
asyncio.unix_events._UnixSelectorEventLoop.remove_signal_handler = _no_signal_handlers
for _name in ("killpg", "setsid", "setpgid", "getpgid", "fork", "forkpty", "pread", "pwrite"):
    if hasattr(os, _name):
        delattr(os, _name)
for _name in ("SIGUSR1", "SIGUSR2", "SIGHUP", "SIGQUIT", "SIGALRM"):
    if hasattr(signal, _name):
        delattr(signal, _name)

_popen_init = subprocess.Popen.__init__


def _windows_popen(self, *args, **kwargs):
    for key in ("preexec_fn", "start_new_session", "process_group", "pass_fds"):
        if kwargs.get(key) not in (None, False, -1, ()):
            raise ValueError(f"{key} is not supported on Windows (simulated)")
    _popen_init(self, *args, **kwargs)


subprocess.Popen.__init__ = _windows_popen
'''

HOLDER = """
import sys
from pathlib import Path

import anyio

from copyengine.config import load_job
from copyengine.wiring import store


async def main() -> None:
    st = store(load_job(Path(sys.argv[1])))
    await st.open()
    print("held", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.read)
    await st.close()


anyio.run(main)
"""


@pytest.fixture
def windows_like(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess that runs under the simulation."""
    sim = tmp_path / "simulated-windows"
    sim.mkdir()
    (sim / "sitecustomize.py").write_text(SIMULATION, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(sim), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("COPYENGINE_DEBUG", None)
    return env


def _py(env: dict[str, str], *args: str, cwd: Path, timeout: float = 240) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_simulation_takes_away_what_windows_lacks(
    windows_like: dict[str, str], tmp_path: Path
) -> None:
    probe = (
        "import asyncio, os, signal, subprocess\n"
        "for m in ('fcntl', 'termios', 'resource', 'pwd', 'grp'):\n"
        "    try:\n"
        "        __import__(m)\n"
        "    except ModuleNotFoundError:\n"
        "        print('no', m)\n"
        "loop = asyncio.new_event_loop()\n"
        "try:\n"
        "    loop.add_signal_handler(signal.SIGINT, print)\n"
        "except NotImplementedError:\n"
        "    print('no add_signal_handler')\n"
        "loop.close()\n"
        "print(hasattr(os, 'killpg'), hasattr(os, 'setsid'), hasattr(signal, 'SIGUSR1'))\n"
        "try:\n"
        "    subprocess.Popen(['true'], start_new_session=True)\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    code, out = _py(windows_like, "-c", probe, cwd=tmp_path, timeout=60)
    assert code == 0, out
    for m in ("fcntl", "termios", "resource", "pwd", "grp"):
        assert f"no {m}" in out
    assert "no add_signal_handler" in out
    assert "False False False" in out
    assert "start_new_session is not supported on Windows" in out


def test_the_demo_runs_and_its_lock_holds_without_posix_only_modules(
    windows_like: dict[str, str], tmp_path: Path
) -> None:
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.example.toml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    run = ("-m", "copyengine", *RUN)
    code, out = _py(windows_like, *run, "--log-format", "json", cwd=tmp_path)
    assert code == ExitCode.OK, out[-3000:]
    report = json.loads((tmp_path / ".copyengine/config.example.report.json").read_text())
    assert report["totals"]["copied"] >= 2000 and report["totals"]["failed"] == 0
    assert "Traceback" not in out
    # another process holds the job's lock: the run is refused with the lock's exit code
    (tmp_path / "hold.py").write_text(HOLDER, encoding="utf-8")
    holder = subprocess.Popen(
        [sys.executable, "hold.py", "config.example.toml"],
        cwd=tmp_path,
        env=windows_like,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, out = _py(windows_like, *run, cwd=tmp_path)
        assert code == ExitCode.LOCKED, out[-3000:]
        assert "another run of this job is in progress" in out and f"pid {holder.pid}" in out
        assert "Traceback" not in out
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(30) == 0, holder.stderr.read() if holder.stderr else ""
    # released: the next pass runs (a delta that finds nothing new)
    code, out = _py(windows_like, *run, cwd=tmp_path)
    assert code == ExitCode.OK, out[-3000:]
    report = json.loads((tmp_path / ".copyengine/config.example.report.json").read_text())
    assert report["pass"]["kind"] == "delta" and report["totals"]["copied"] == 0


PARENT = """
import json
import sys
import time
from pathlib import Path

from copyengine.emulator.process import emulator_process

with emulator_process(Path(sys.argv[1]), Path(sys.argv[2])) as (info, pid):
    print(json.dumps({"control_url": info["control_url"], "pid": pid}), flush=True)
    time.sleep(120)
"""


def _emulator_file(tmp_path: Path) -> Path:
    conf = tmp_path / "emu.toml"
    conf.write_text(
        '[emulator]\nprofile = "unlimited"\ntls = false\n\n[[tenants]]\nname = "c"\n'
        'domain = "c.example"\napps = [{ client_id = "a", secret = "s" }]\n',
        encoding="utf-8",
    )
    return conf


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_the_emulator_dies_with_its_job_without_preexec_fn(
    windows_like: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "parent.py").write_text(PARENT, encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, "parent.py", str(_emulator_file(tmp_path)), str(tmp_path / "r.json")],
        cwd=tmp_path,
        env=windows_like,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, "the parent did not start its emulator"
        stats = json.loads(line)["control_url"] + "/stats"
        assert _answers(stats)
    finally:
        parent.kill()  # no cleanup runs: the system closes its end of the emulator's stdin
        parent.wait()
    for _ in range(150):  # 15 s at most
        if not _answers(stats):
            break
        time.sleep(0.1)
    assert not _answers(stats), "the emulator outlived its job"


def test_ctrl_c_drains_the_demo_where_the_loop_has_no_signal_handlers(
    windows_like: dict[str, str], tmp_path: Path
) -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    slow = text.replace("# limits = { latency_base = 0.0 }", "limits = { latency_base = 0.2 }")
    assert slow != text
    (tmp_path / "config.example.toml").write_text(slow, encoding="utf-8")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    proc = subprocess.Popen(
        [sys.executable, "-m", "copyengine", *RUN, "--log-format", "json"],
        cwd=tmp_path,
        env=windows_like,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        for line in proc.stderr:
            seen.append(line)
            if '"event":"job.started"' in line:
                break
        else:
            pytest.fail("no job.started: " + "".join(seen)[-2000:])
        proc.send_signal(signal.SIGINT)  # Ctrl-C, through signal.signal and the loop
        rest = proc.stderr.read()
        assert proc.wait(120) == ExitCode.INTERRUPTED, rest[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert '"event":"job.draining"' in rest and '"signal":"SIGINT"' in rest
    report = json.loads((tmp_path / ".copyengine/config.example.report.json").read_text())
    assert report["exit_code"] == ExitCode.INTERRUPTED


# -- Ctrl-C without add_signal_handler --------------------------------------------------------
@pytest.mark.anyio
async def test_stop_signals_reach_the_loop_where_it_cannot_add_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()

    def refuse(*args: object, **kwargs: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", refuse)
    before = signal.getsignal(signal.SIGINT)
    with receiving(STOP_SIGNALS) as signals:
        assert signal.getsignal(signal.SIGINT) is not before  # the C-level handler
        signal.raise_signal(signal.SIGINT)
        async for sig in signals:
            assert sig == signal.SIGINT
            break
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.anyio
@pytest.mark.skipif(sys.platform == "win32", reason="Windows' loops have no signal handlers")
async def test_on_posix_the_loop_handles_the_signals_itself() -> None:
    got: list[int] = []
    before = signal.getsignal(signal.SIGTERM)
    with handling(got.append, [signal.SIGTERM]):
        signal.raise_signal(signal.SIGTERM)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
    assert got == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == before


def test_stop_signals_are_the_ones_the_platform_has() -> None:
    names = {s.name for s in STOP_SIGNALS}
    assert {"SIGINT", "SIGTERM"} <= names
    assert ("SIGBREAK" in names) == hasattr(signal, "SIGBREAK")


def test_the_drain_says_how_to_abort_in_the_words_of_the_stop_that_began_it() -> None:
    """A service manager's SIGTERM is sent again, not pressed as Ctrl-C."""
    assert abort_hint(signal.SIGINT) == "press Ctrl-C again to abort"
    assert abort_hint(signal.SIGTERM) == "send SIGTERM again to abort"
    if hasattr(signal, "SIGBREAK"):
        assert abort_hint(signal.SIGBREAK) == "press Ctrl-Break again to abort"


# -- the emulator's process -------------------------------------------------------------------
def test_the_emulator_is_detached_without_setsid(monkeypatch: pytest.MonkeyPatch) -> None:
    assert detach_options() == {"start_new_session": True}
    monkeypatch.delattr(os, "setsid")
    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200, raising=False)
    assert detach_options() == {"creationflags": 0x200}


def test_a_jobs_emulator_ignores_ctrl_c_and_stops_when_its_input_closes(tmp_path: Path) -> None:
    conf = _emulator_file(tmp_path)
    ready = tmp_path / "ready.json"
    serve = ("emulator", "serve", "--config", str(conf), "--ready-file", str(ready))
    proc = subprocess.Popen(
        [sys.executable, "-m", "copyengine", *serve, "--stop-on-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):  # 60 s at most
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), proc.stderr.read() if proc.stderr else ""
        control = json.loads(ready.read_text())["control_url"]
        proc.send_signal(signal.SIGINT)  # the terminal's Ctrl-C: the job's, not the service's
        assert _answers(control + "/stats")
        assert proc.poll() is None
        assert proc.stdin is not None
        proc.stdin.close()  # what the job does when it ends, or the system when it dies
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- Windows paths in the job file ------------------------------------------------------------
def test_windows_paths_in_a_job_file_are_paths_on_windows() -> None:
    raw = tomllib.loads(
        "[job]\nstate = 'C:\\migr\\state.sqlite'\nreport = \"C:\\\\migr\\\\report.json\"\n"
        'pairs_csv = "lists\\\\wave1.csv"\n'
    )["job"]
    # a literal string and a basic one with escaped backslashes: the same kind of path
    assert raw["state"] == "C:\\migr\\state.sqlite" and raw["report"] == "C:\\migr\\report.json"
    base = PureWindowsPath("D:\\jobs\\wave1")
    assert job_path(raw["state"], "job.state", base) == PureWindowsPath("C:/migr/state.sqlite")
    assert job_path(raw["pairs_csv"], "pairs_csv", base) == PureWindowsPath(
        "D:/jobs/wave1/lists/wave1.csv"
    )
    assert job_path("lists/wave1.csv", "pairs_csv", base) == base / "lists" / "wave1.csv"
    unc = job_path("\\\\fs01\\migr\\wave1.csv", "pairs_csv", base)
    assert unc.anchor == "\\\\fs01\\migr\\"
    assert job_path("\\migr\\s.sqlite", "job.state", base) == PureWindowsPath("D:/migr/s.sqlite")
    # the same file read on POSIX: / separates, // is a POSIX path, a drive letter is refused
    posix = PurePosixPath("/srv/jobs")
    assert job_path("lists/wave1.csv", "pairs_csv", posix) == posix / "lists/wave1.csv"
    assert job_path("//srv/x", "pairs_csv", posix) == PurePosixPath("//srv/x")
    with pytest.raises(ConfigError, match=r"job\.state: .*is a Windows path"):
        job_path(raw["state"], "job.state", posix)


def _job(d: Path, top: str, state: str) -> Path:
    """test_config's job file, with keys before its tables and its own state."""
    (d / "secret.txt").write_text("other-secret\n")
    job = d / "wave1.toml"
    job.write_text(f"{top}\n[job]\nstate = {state}\n{GOOD}", encoding="utf-8")
    return job


@pytest.mark.skipif(os.name == "nt", reason="on Windows a drive path is this host's")
def test_a_windows_drive_path_on_this_host_is_refused_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_TEST_SECRET", "s")
    job = _job(tmp_path, "", "'C:\\migr\\state.sqlite'")
    with pytest.raises(ConfigError, match=r"job\.state: C:\\migr\\state\.sqlite is a Windows"):
        load_job(job)
    assert not list(tmp_path.glob("C:*"))  # no file called C:\migr\... beside the job


def test_relative_paths_are_read_next_to_the_job_file_with_the_hosts_separator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_TEST_SECRET", "s")
    jobs = tmp_path / "jobs"
    (jobs / "lists").mkdir(parents=True)
    (jobs / "lists" / "wave1.csv").write_text(
        "source,target\nb@contoso.example,b@fabrikam.example\n"
    )
    listed = os.path.join("lists", "wave1.csv")  # lists\wave1.csv on Windows
    state = os.path.join("state", "wave1.sqlite")
    job = _job(jobs, f"pairs_csv = {json.dumps(listed)}", json.dumps(state))
    monkeypatch.chdir(tmp_path)  # not the job's folder
    cfg = load_job(job)
    assert [p.source for p in cfg.pairs] == ["a@contoso.example", "b@contoso.example"]
    assert cfg.state_path == jobs.resolve() / "state" / "wave1.sqlite"
    if os.sep == "/":  # a Windows separator on POSIX: the error says so
        _job(jobs, 'pairs_csv = "lists\\\\wave1.csv"', json.dumps(state))
        with pytest.raises(ConfigError, match=r"separates folders only on Windows: use /"):
            load_job(job)
