"""The ``[emulator]`` keys of issue 26, written wrong (review finding 11): each is refused at
load with exit 3, the message naming the wrong key, what it takes, and (for a mailbox in the
list) the mailbox's UPN, not only its position; no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from copyengine.cli import main
from copyengine.config import load_job
from copyengine.errors import ConfigError
from copyengine.exitcodes import ExitCode
from tests.jobs import cli, demo_job
from tests.test_config import GOOD

DORA = "dora@contoso.example"


def _mailbox(archive: str) -> str:
    """An ``[emulator]`` table whose fifth mailbox (dora) has ``archive = ARCHIVE``."""
    boxes = [f'{{ upn = "m{i}@contoso.example", items = 5 }}' for i in range(4)]
    boxes.append(f'{{ upn = "{DORA}", items = 5, archive = {archive} }}')
    return "\n[emulator]\nmailboxes = [\n  " + ",\n  ".join(boxes) + ",\n]\n"


CASES: list[tuple[str, str, str, list[str]]] = [
    ("every as a string", _mailbox('{ expanded = { every = "2" } }'), "emulator.mailboxes[4]",
     ["expanded.every: a whole number >= 1", "not '2'", f"(mailbox {DORA})"]),
    ("every as a fraction", _mailbox("{ expanded = { every = 2.5 } }"), "emulator.mailboxes[4]",
     ["expanded.every: a whole number >= 1", "not 2.5"]),
    ("every as a boolean", _mailbox("{ expanded = { every = true } }"), "emulator.mailboxes[4]",
     ["expanded.every: a whole number >= 1", "not True"]),
    ("every = 0 names every", _mailbox("{ expanded = { every = 0 } }"), "emulator.mailboxes[4]",
     ["expanded.every: a whole number >= 1", "not 0"]),
    ("session_uploads = -1 names session_uploads",
     _mailbox("{ expanded = { session_uploads = -1 } }"), "emulator.mailboxes[4]",
     ["expanded.session_uploads: a whole number >= 0", "not -1"]),
    ("session_uploads as a string", _mailbox('{ expanded = { session_uploads = "7" } }'),
     "emulator.mailboxes[4]", ["expanded.session_uploads: a whole number >= 0", "not '7'"]),
    ("expanded neither true nor a table", _mailbox('{ expanded = "yes" }'),
     "emulator.mailboxes[4]",
     ["true, or a table (folders, every, session_uploads, redirect_base)", f"(mailbox {DORA})"]),
    ("another mailbox's error names its UPN", _mailbox("{ expanded = { nope = 1 } }"),
     "emulator.mailboxes[4]", ["unknown key 'nope'", f"(mailbox {DORA})"]),
    ("background_upload without share",
     '\n[emulator]\nbackground_upload = { mailboxes = ["MBX:x"] }\n',
     "emulator.background_upload", ["share is required", "from 0 to below 1"]),
    ("background_upload as a boolean", "\n[emulator]\nbackground_upload = true\n",
     "emulator.background_upload", ["must be a number or a table, not a boolean"]),
    ("background_upload as a string", '\n[emulator]\nbackground_upload = "half"\n',
     "emulator.background_upload", ["must be a number or a table, not a string"]),
]  # fmt: skip


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CE_TEST_SECRET", "s3cret-value")
    (tmp_path / "secret.txt").write_text("other-secret\n")
    return tmp_path


@pytest.mark.parametrize(
    ("table", "where", "said"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_wrong_emulator_key_is_named_and_exits_3(
    job: Path, table: str, where: str, said: list[str]
) -> None:
    path = job / "job.toml"
    path.write_text(GOOD + table, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert exc.value.where == where, str(exc.value)
    for words in said:
        assert words in str(exc.value), str(exc.value)
    assert "a number or an integer" not in str(exc.value)
    result = CliRunner().invoke(main, ["plan", str(path)])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "Traceback" not in result.output and said[0] in result.output


def test_a_mailbox_of_no_emulated_tenant_is_named_by_its_upn(tmp_path: Path) -> None:
    job = demo_job(tmp_path)
    text = job.read_text(encoding="utf-8")
    new = text.replace('upn = "dora@contoso.example"', 'upn = "dora@nowhere.example"', 1)
    assert new != text
    job.write_text(new, encoding="utf-8")
    done = cli("plan", job.name, cwd=tmp_path, timeout=60)
    assert done.returncode == ExitCode.CONFIG, done.stderr[-2000:]
    assert "emulator.mailboxes[" in done.stderr and "dora@nowhere.example" in done.stderr
    assert "Traceback" not in done.stderr
