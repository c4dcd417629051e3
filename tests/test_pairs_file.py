"""The pairs file as Excel and the migration tools write it (issue 24): each dialect fed as
the bytes those programs save, waves selected by ``--wave`` end to end, and every refusal
naming ``file:line`` (and the column) and what to do."""

from __future__ import annotations

import codecs
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from copyengine.cli import main
from copyengine.config import JobConfig, load_job, select_pairs
from copyengine.errors import ConfigError
from copyengine.exitcodes import ExitCode
from copyengine.pairsfile import letter, wave_label
from copyengine.wiring import doctor, run_job
from tests.jobs import assert_exact, write_job
from tests.test_config import GOOD as WITH_A_PAIR

# the tenants of tests/test_config.py's job, without its pair
GOOD = WITH_A_PAIR.split("\n[[pairs]]")[0]
CSV_JOB = 'pairs_csv = "pairs.csv"\n'


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CE_TEST_SECRET", "s3cret-value")
    (tmp_path / "secret.txt").write_text("other-secret\n")
    return tmp_path


def _load(d: Path, data: bytes, head: str = CSV_JOB, tail: str = "") -> JobConfig:
    (d / "pairs.csv").write_bytes(data)
    path = d / "job.toml"
    path.write_text(head + GOOD + tail, encoding="utf-8")
    return load_job(path)


def _refused(d: Path, data: bytes, head: str = CSV_JOB, tail: str = "") -> str:
    with pytest.raises(ConfigError) as exc:
        _load(d, data, head, tail)
    return str(exc.value)


def _pairs(cfg: JobConfig) -> list[tuple[str, str]]:
    return [(p.source, p.target) for p in cfg.pairs]


# -- what Excel writes -----------------------------------------------------------------------
def test_csv_utf8_as_excel_saves_it(job: Path) -> None:
    # "CSV UTF-8 (Comma delimited)": a BOM, commas, CRLF, a quoted field where one holds a comma
    rows = (
        'Source,Target,Name\r\nmüller@contoso.example,mueller@fabrikam.example,"Müller, Hans"\r\n'
    )
    cfg = _load(job, codecs.BOM_UTF8 + rows.encode("utf-8"))
    assert _pairs(cfg) == [("müller@contoso.example", "mueller@fabrikam.example")]


def test_semicolon_cp1252_from_a_european_excel_with_the_declared_encoding(job: Path) -> None:
    # "CSV (Comma delimited)" on a German Windows: ';', Windows-1252, CRLF, and Excel's blank
    # row as a run of separators; the booleans in the locale's words
    rows = (
        "Source Email;Destination Email;Abteilung;Archive\r\n"
        "müller@contoso.example;mueller@fabrikam.example;Einkauf;WAHR\r\n"
        ";;;\r\n"
        "zoë@contoso.example;zoe@fabrikam.example;Verkauf;FALSCH\r\n"
    )
    cfg = _load(job, rows.encode("cp1252"), CSV_JOB + 'pairs_encoding = "cp1252"\n')
    assert _pairs(cfg) == [
        ("müller@contoso.example", "mueller@fabrikam.example"),
        ("zoë@contoso.example", "zoe@fabrikam.example"),
    ]
    assert [p.archive for p in cfg.pairs] == [True, False]
    assert [p.origin for p in cfg.pairs] == [f"{job / 'pairs.csv'}:2", f"{job / 'pairs.csv'}:4"]


def test_the_same_file_without_the_declared_encoding_is_refused_at_its_line(job: Path) -> None:
    rows = "Source;Target\r\nb@contoso.example;b@fabrikam.example\r\nmüller@contoso.example;m@fabrikam.example\r\n"
    path = job / "job.toml"
    (job / "pairs.csv").write_bytes(rows.encode("cp1252"))
    path.write_text(CSV_JOB + GOOD, encoding="utf-8")
    result = CliRunner().invoke(main, ["plan", str(path)])
    assert result.exit_code == ExitCode.CONFIG and "Traceback" not in result.output
    assert "pairs.csv:3: is not UTF-8 text (byte 0xFC at line 3, column 2)" in result.output
    assert 'pairs_encoding = "cp1252"' in result.output and "CSV UTF-8" in result.output


def test_unicode_text_is_utf16_with_tabs(job: Path) -> None:
    # "Unicode Text (*.txt)": UTF-16 LE with its BOM, tab-separated, CRLF
    rows = "source\ttarget\twave\r\nzoë@contoso.example\tzoë@fabrikam.example\t1\r\n"
    cfg = _load(job, codecs.BOM_UTF16_LE + rows.encode("utf-16-le"))
    assert _pairs(cfg) == [("zoë@contoso.example", "zoë@fabrikam.example")]
    assert cfg.pairs[0].wave == "1"
    big_endian = _load(job, codecs.BOM_UTF16_BE + rows.encode("utf-16-be"))
    assert _pairs(big_endian) == _pairs(cfg)


def test_utf16_without_its_mark_is_named_not_misread(job: Path) -> None:
    rows = "source\ttarget\r\na@contoso.example\ta@fabrikam.example\r\n".encode("utf-16-le")
    message = _refused(job, rows)
    assert "pairs.csv:1: holds NUL bytes" in message and "Unicode Text" in message
    cfg = _load(job, rows, CSV_JOB + 'pairs_encoding = "utf-16-le"\n')
    assert _pairs(cfg) == [("a@contoso.example", "a@fabrikam.example")]


def test_migrationwiz_bulk_add_file_with_its_extra_columns(job: Path) -> None:
    rows = (
        "Source Email,Source Login Name,Source Password,Destination Email,"
        "Destination Login Name,Destination Password,Flags\r\n"
        "adele@contoso.example,,,adele@fabrikam.example,,,0\r\n"
        "bianca@contoso.example,bianca,,bianca@fabrikam.example,,,0\r\n"
    )
    cfg = _load(job, rows.encode("utf-8"))
    assert _pairs(cfg) == [
        ("adele@contoso.example", "adele@fabrikam.example"),
        ("bianca@contoso.example", "bianca@fabrikam.example"),
    ]


def test_quest_and_power365_headers(job: Path) -> None:
    rows = "Source UPN,Target UPN,Migration Wave,Profile Name\nj@contoso.example,j@fabrikam.example,Wave 02,Std\n"
    cfg = _load(job, rows.encode())
    assert _pairs(cfg) == [("j@contoso.example", "j@fabrikam.example")]
    assert cfg.pairs[0].wave == "2"
    # Quest's mapping file names the attribute of each side: the same name twice
    same = _load(
        job, b"userPrincipalName,userPrincipalName\nj@contoso.example,j@fabrikam.example\n"
    )
    assert _pairs(same) == _pairs(cfg)


def test_microsoft_migration_batch_file(job: Path) -> None:
    # Export-Csv -Encoding UTF8 -NoTypeInformation: a BOM, every field quoted; EmailAddress is
    # the mailbox being moved (the source); the target in a column of its own
    rows = '"EmailAddress","TargetAddress"\r\n"adele@contoso.example","adele@fabrikam.example"\r\n'
    cfg = _load(job, codecs.BOM_UTF8 + rows.encode())
    assert _pairs(cfg) == [("adele@contoso.example", "adele@fabrikam.example")]
    only = _refused(job, codecs.BOM_UTF8 + b'"EmailAddress"\r\n"adele@contoso.example"\r\n')
    assert "pairs.csv:1: the header row names no target column (found: EmailAddress)" in only
    assert "add a column Target" in only


def test_a_file_without_a_header_is_read_as_before(job: Path) -> None:
    cfg = _load(job, b"# our pilot\r\na@contoso.example,a@fabrikam.example\r\n\r\n")
    assert _pairs(cfg) == [("a@contoso.example", "a@fabrikam.example")]
    assert _pairs(_load(job, b"a@contoso.example;a@fabrikam.example\n")) == _pairs(cfg)
    assert _pairs(_load(job, b"sep=;\na@contoso.example;a@fabrikam.example\n")) == _pairs(cfg)


def test_line_ends_quoted_line_breaks_and_padding(job: Path) -> None:
    # CR alone (old Mac Excel), a line break inside a quoted note, cells padded by Excel
    rows = 'Source,Target,Note\r"a@contoso.example",a@fabrikam.example,"two\nlines"\rb@contoso.example,b@fabrikam.example,\r'
    cfg = _load(job, rows.encode())
    assert _pairs(cfg) == [
        ("a@contoso.example", "a@fabrikam.example"),
        ("b@contoso.example", "b@fabrikam.example"),
    ]
    assert cfg.pairs[1].origin.endswith("pairs.csv:4")  # the quoted break is a line of its own
    padded = _load(job, b"a@contoso.example,a@fabrikam.example,,\r\n")
    assert _pairs(padded) == [("a@contoso.example", "a@fabrikam.example")]


def test_windows_paths_and_crlf_in_the_csv_do_not_break_it(job: Path) -> None:
    rows = (
        "Source,Target,PST\r\n"
        "a@contoso.example,a@fabrikam.example,C:\\Users\\adm\\a.pst\r\n"
        'b@contoso.example,b@fabrikam.example,"\\\\srv\\share\\b ""old"".pst"\r\n'
    )
    cfg = _load(job, rows.encode())
    assert _pairs(cfg) == [
        ("a@contoso.example", "a@fabrikam.example"),
        ("b@contoso.example", "b@fabrikam.example"),
    ]


def test_delimiter_is_decided_by_the_first_row_deterministically(job: Path) -> None:
    # the most columns win (a comma inside a quoted header does not count); a tie goes to
    # tab, then semicolon, then comma
    rows = 'Source;Target;"Name, first"\n"a@contoso.example";a@fabrikam.example;"Vance, A"\n'
    assert _pairs(_load(job, rows.encode())) == [("a@contoso.example", "a@fabrikam.example")]
    tie = "Source;Target;Note,a,b\nb@contoso.example;b@fabrikam.example;x,y,z\n"
    assert _pairs(_load(job, tie.encode())) == [("b@contoso.example", "b@fabrikam.example")]


# -- waves -----------------------------------------------------------------------------------
WAVES = (
    "Source,Target,Batch,Archive\n"
    "a@contoso.example,a@fabrikam.example,Wave 1,yes\n"
    "b@contoso.example,b@fabrikam.example,wave-01,\n"
    "c@contoso.example,c@fabrikam.example,2,0\n"
    "d@contoso.example,d@fabrikam.example,Pilot,\n"
    "e@contoso.example,e@fabrikam.example,,\n"
)
TOML_WAVE = '\n[[pairs]]\nsource = "f@contoso.example"\ntarget = "f@fabrikam.example"\nwave = 2\n'


def test_a_wave_column_and_the_toml_wave_mean_the_same(job: Path) -> None:
    cfg = _load(job, WAVES.encode(), tail=TOML_WAVE)
    assert [p.wave for p in cfg.pairs] == ["2", "1", "1", "2", "pilot", ""]
    assert [p.archive for p in cfg.pairs] == [False, True, False, False, False, False]

    def sources(*waves: str, only: tuple[str, ...] = ()) -> list[str]:
        chosen = select_pairs(cfg, only, waves)
        assert chosen is not None
        return [p.source[0] for p in chosen]

    assert sources("1") == ["a", "b"]
    assert sources("2") == ["f", "c"]
    assert sources("WAVE 2", "pilot") == ["f", "c", "d"]
    assert sources("2", only=("c@fabrikam.example",)) == ["c"]
    assert select_pairs(cfg, (), ()) is None
    with pytest.raises(
        ConfigError, match=r"--wave 3: no pair is in this wave \(the job's waves: 1, 2, pilot\)"
    ):
        select_pairs(cfg, (), ("3",))
    with pytest.raises(
        ConfigError, match=r"--pair a@contoso.example: its pair is in none of the waves"
    ):
        select_pairs(cfg, ("a@contoso.example",), ("2",))
    with pytest.raises(ConfigError, match=r"--wave: give a wave"):
        select_pairs(cfg, (), (" ",))
    flat = _load(job, b"a@contoso.example,a@fabrikam.example\n")
    with pytest.raises(
        ConfigError, match=r"--wave 1: no pair is in this wave \(no pair has a wave"
    ):
        select_pairs(flat, (), ("1",))


def test_wave_labels() -> None:
    assert wave_label("Wave 01") == wave_label("wave1") == wave_label(1) == "1"
    assert wave_label(" Batch  Pilot ") == "pilot" and wave_label("Wavefront") == "wavefront"
    assert wave_label("") == "" and [letter(i) for i in (0, 25, 26, 27)] == ["A", "Z", "AA", "AB"]


# -- refusals: file:line, the column, what to do -----------------------------------------------
REFUSALS = [
    (
        b"x@contoso.example\n",
        ":1: expected: source,target (two columns separated by a comma, semicolon or tab); this "
        "row has one column (the file's first row holds no comma, semicolon or tab)",
    ),
    (
        b"a@contoso.example,a@fabrikam.example\nc@contoso.example;c@fabrikam.example\n",
        ":2: expected: source,target (two columns separated by a comma, semicolon or tab); this "
        "row has one column when split by the file's delimiter, comma",
    ),
    (
        b"a@contoso.example,a@fabrikam.example,1\n",
        ":1: expected 2 columns (source,target), found 3: the file has no header row",
    ),
    (
        b"Name,Department\na@contoso.example,IT\n",
        ":1: the header row names no source column (found: Name, Department); name it source",
    ),
    (
        b"Source Email,Source UPN,Target\n",
        ":1: columns A (Source Email) and B (Source UPN) both name the source: keep one",
    ),
    (
        b"Source,Target\nbroken@,c@fabrikam.example\n",
        ":2: 'broken@' is not a user principal name (expected name@domain.tld), in column A (Source)",
    ),
    (
        b"Source,Target\nmailto:a@contoso.example,a@fabrikam.example\n",
        ":2: 'mailto:a@contoso.example' is a mail link, not a user principal name: remove "
        "'mailto:' (expected name@domain.tld), in column A (Source)",
    ),
    (b"Source,Target\r\na@contoso.example,\r\n", ":2: no target: column B (Target) is empty"),
    (
        b"Source,Target,Archive\na@contoso.example,a@fabrikam.example,maybe\n",
        ":2: 'maybe' in column C (archive) is not true or false: write yes or no",
    ),
    (
        b"Source,Target,target_root\n",
        ":1: column C (target_root) is a rule a pairs file does not carry: give that pair as a "
        "[[pairs]] table",
    ),
    (
        b'Source,Target\n"a@contoso.example,a@fabrikam.example\nb@contoso.example,b@fabrikam.example\n',
        ":2: not valid CSV from this line on (unexpected end of data): check the quotes",
    ),
    (b"Source,Target\na@contoso.example,a@contoso.example\n", ":2: source and target are the same"),
    (
        b"\xef\xbb\xbfSource;Target\r\n;\r\n",
        ": holds no pair (a header, comments or empty rows only)",
    ),
]


@pytest.mark.parametrize(("data", "message"), REFUSALS)
def test_each_refusal_names_the_line_and_what_to_do(job: Path, data: bytes, message: str) -> None:
    assert f"{job / 'pairs.csv'}{message}" in _refused(job, data)


def test_refusals_that_involve_the_job_file(job: Path) -> None:
    both = b"Source,Target\na@contoso.example,a@fabrikam.example\n"
    twice = '\n[[pairs]]\nsource = "a@contoso.example"\ntarget = "a@fabrikam.example"\n'
    assert "pairs.csv:2: duplicate of pairs[0]" in _refused(job, both, tail=twice)
    bad = CSV_JOB + 'pairs_encoding = "klingon"\n'
    assert "pairs_encoding: unknown encoding 'klingon'" in _refused(job, both, bad)
    # a pairs file holding no pair is refused beside [[pairs]] too (it was silently ignored)
    assert "pairs.csv: holds no pair" in _refused(job, b"Source,Target\r\n", tail=twice)
    assert "pairs.csv: is empty" in _refused(job, b"", tail=twice)
    alone = 'pairs_encoding = "cp1252"\n'
    assert "pairs_encoding: is the encoding of pairs_csv" in _refused(job, both, alone, twice)
    archive = b"Source,Target,Archive\na@contoso.example,a@fabrikam.example,x\n"
    v1 = GOOD.replace("/beta", "/v1.0")
    (job / "pairs.csv").write_bytes(archive)
    (job / "job.toml").write_text(CSV_JOB + v1, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pairs.csv:2: archive mailboxes are reachable only"):
        load_job(job / "job.toml")
    # undecodable in the declared encoding: cp1252 leaves 0x81 undefined
    message = _refused(
        job,
        b"Source,Target\r\n\x81a@contoso.example,a@fabrikam.example\r\n",
        CSV_JOB + 'pairs_encoding = "cp1252"\n',
    )
    assert "pairs.csv:2: is not CP1252 text (byte 0x81 at line 2, column 1)" in message


# -- --wave end to end -------------------------------------------------------------------------
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"
BIANCA, T_BIANCA = "bianca@contoso.example", "bianca@fabrikam.example"


@pytest.mark.anyio
async def test_run_plan_status_and_verify_take_only_the_wave(emu: Any, tmp_path: Path) -> None:
    job = write_job(tmp_path, emu.ep, [])
    job.write_text(CSV_JOB + job.read_text())
    rows = (
        f"Source Email;Destination Email;Wave\r\n{ADELE};{T_ADELE};1\r\n{BIANCA};{T_BIANCA};2\r\n"
    )
    (tmp_path / "pairs.csv").write_bytes(codecs.BOM_UTF8 + rows.encode())
    cli = [sys.executable, "-m", "copyengine"]

    async def ce(*args: str) -> Any:
        return await anyio.run_process([*cli, *args], check=False)

    with anyio.fail_after(90):
        plan = await ce("plan", str(job), "--wave", "1", "--json")
        assert plan.returncode == 0, plan.stderr[-2000:]
        assert [p["source"] for p in json.loads(plan.stdout)["pairs"]] == [ADELE]
        empty = await ce("run", str(job), "--no-progress", "--wave", "3")
        assert empty.returncode == ExitCode.CONFIG
        assert b"--wave 3: no pair is in this wave (the job's waves: 1, 2)" in empty.stderr
        ran = await ce("run", str(job), "--no-progress", "--wave", "Wave 2")
        assert ran.returncode == 0, ran.stderr[-2000:]
        status = await ce("status", str(job), "--json", "--wave", "2")
        verify = await ce("verify", str(job), "--wave", "2")
        assert verify.returncode == 0, verify.stdout[-2000:]
        assert [p["pair"] for p in json.loads(status.stdout)["pairs"]] == [f"{BIANCA}->{T_BIANCA}"]
        report = json.loads((tmp_path / "report.json").read_text())
        assert [p["source"] for p in report["pairs"]] == [BIANCA]
        assert len(emu.state.require_mailbox(T_ADELE).items) == 0
        assert_exact(emu.state, [(BIANCA, T_BIANCA)])
        assert ADELE not in verify.stdout.decode() and BIANCA in verify.stdout.decode()
        # the next wave: its first run copies its pairs in full; the first wave is untouched
        next_wave = await ce("run", str(job), "--no-progress", "--wave", "1")
        assert next_wave.returncode == 0, next_wave.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [p["source"] for p in report["pairs"]] == [ADELE]
    assert report["totals"]["copied"] == len(emu.state.require_mailbox(T_ADELE).items) > 0
    assert_exact(emu.state, [(ADELE, T_ADELE), (BIANCA, T_BIANCA)])


@pytest.mark.anyio
async def test_a_mailbox_the_tenant_lacks_is_named_at_its_line_by_doctor_and_run(
    emu: Any, tmp_path: Path
) -> None:
    """A pairs file naming a mailbox the tenant lacks (a typo in the target's domain): doctor
    names it, its side and its line before anything is copied; a run fails that pair alone,
    saying the same; the other pair is copied."""
    job = write_job(tmp_path, emu.ep, [])
    job.write_text(CSV_JOB + job.read_text())
    typo = "bianca@fabrikam.exmaple"
    rows = f"source,target\n{ADELE},{T_ADELE}\n{BIANCA},{typo}\n"
    (tmp_path / "pairs.csv").write_text(rows, encoding="utf-8")
    cfg = load_job(job)
    checked = await doctor(cfg)
    said = json.dumps(checked)
    assert checked["exit_code"] != 0
    at = f"{tmp_path / 'pairs.csv'}:3"
    assert f"the target mailbox {typo} ({at}) was not found in its tenant" in said, said
    assert "copyengine doctor" in said and "request-id=" in said
    stats = await run_job(cfg)
    failed = stats.pairs[f"{BIANCA}->{typo}"]
    assert failed.error_code == "MailboxNotFound" and failed.error is not None
    assert f"the target mailbox {typo} ({at}) was not found" in failed.error
    assert stats.pairs[f"{ADELE}->{T_ADELE}"].status == "done"
    assert_exact(emu.state, [(ADELE, T_ADELE)])
