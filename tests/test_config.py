"""Bad configuration: a clear message naming the key path, exit code 3, nothing sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from copyengine.cli import main
from copyengine.config import load_job
from copyengine.errors import ConfigError
from copyengine.exitcodes import ExitCode

GOOD = """
[tenants.source]
graph_url = "https://graph.microsoft.com/beta"
tenant_id = "contoso.example"
client_id = "c1"
client_secret = "env:CE_TEST_SECRET"

[tenants.target]
tenant_id = "fabrikam.example"
client_id = "c2"
client_secret = "file:secret.txt"

[[pairs]]
source = "a@contoso.example"
target = "a@fabrikam.example"
"""


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CE_TEST_SECRET", "s3cret-value")
    (tmp_path / "secret.txt").write_text("other-secret\n")
    (tmp_path / "empty.txt").write_text("\n")
    return tmp_path


def _write(d: Path, text: str) -> Path:
    p = d / "job.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config_loads_with_secrets_masked(job: Path) -> None:
    cfg = load_job(_write(job, GOOD))
    assert cfg.source.client_secret is not None
    assert cfg.source.client_secret.reveal() == "s3cret-value"
    assert "s3cret" not in repr(cfg) and "other-secret" not in repr(cfg)
    assert cfg.target.client_secret is not None
    assert cfg.target.client_secret.reveal() == "other-secret"
    assert (
        cfg.limits.batch_items == 20 and cfg.pairs[0].key == "a@contoso.example->a@fabrikam.example"
    )


CASES = [
    ("not toml [", "job.toml", "not valid TOML"),
    (
        GOOD + "\n[limits]\nbatch_items = = 5\n",
        "job.toml:" + str(GOOD.count("\n") + 3),
        "not valid TOML",
    ),
    (GOOD + "\n[bogus]\nx = 1\n", "bogus", "unknown key"),
    # a typo is named with the key it is most like
    (
        GOOD + "\n[limits]\npairs_in_paralel = 4\n",
        "limits.pairs_in_paralel",
        "did you mean pairs_in_parallel?",
    ),
    (
        GOOD + "\n[job]\nkeep_report = 3\n",
        "job.keep_report",
        "unknown key; did you mean keep_reports?",
    ),
    (
        GOOD.replace('client_id = "c1"', "client_id = 5"),
        "tenants.source.client_id",
        "must be a string",
    ),
    (GOOD.replace('client_id = "c1"\n', ""), "tenants.source.client_id", "is required"),
    # a pair written as [pairs] (or a leftover [pairs.folders]) with single brackets
    (
        GOOD.replace("[[pairs]]", "[pairs]"),
        "pairs",
        "must be a list, not a table (each entry is its own [[pairs]] table, with double brackets)",
    ),
    (
        GOOD + '\n[folders]\nexclude = ["(unclosed"]\n',
        "folders.exclude[0]",
        "invalid regular expression",
    ),
    (
        GOOD + '\n[folders]\nclasses = ["mail", "faxes"]\n',
        "folders.classes[1]",
        "unknown folder class",
    ),
    (
        GOOD.replace("env:CE_TEST_SECRET", "env:CE_NOT_SET_ANYWHERE"),
        "tenants.source.client_secret",
        "environment variable CE_NOT_SET_ANYWHERE is not set",
    ),
    (
        GOOD.replace("file:secret.txt", "file:missing.txt"),
        "tenants.target.client_secret",
        "does not exist",
    ),
    (
        GOOD.replace("env:CE_TEST_SECRET", "hunter2"),
        "tenants.source.client_secret",
        "never the secret itself",
    ),
    (
        GOOD.replace('graph_url = "https://graph.microsoft.com/beta"', 'graph_url = "graph"'),
        "tenants.source.graph_url",
        "https URL",
    ),
    # issue 8, case 7: a bearer token never travels over plain HTTP
    (
        GOOD.replace("https://graph.microsoft.com/beta", "http://graph.microsoft.com/beta"),
        "tenants.source.graph_url",
        "plain HTTP",
    ),
    (
        GOOD.replace(
            'tenant_id = "fabrikam.example"',
            'tenant_id = "fabrikam.example"\nauthority = "http://login.example.com"',
        ),
        "tenants.target.authority",
        "plain HTTP",
    ),
    # a missing or misspelt tenant table is named as such (it said "tenants.target.tenant_id:
    # is required", the first key of a table the operator never wrote or spelt otherwise)
    (
        GOOD.split("[tenants.target]")[0] + "[[pairs]]" + GOOD.split("[[pairs]]")[1],
        "tenants.target",
        "missing: the [tenants.target] table",
    ),
    (
        GOOD.replace("[tenants.target]", "[tenants.traget]"),
        "tenants.traget",
        "did you mean target?",
    ),
    (GOOD.replace("[tenants.", "[tenant."), "tenant", "did you mean tenants?"),
    # msal asks for tokens over https only: an http authority, loopback too, failed every
    # pair with exit 4 ("authority discovery failed") in review 4's round
    (
        GOOD.replace(
            'tenant_id = "fabrikam.example"',
            'tenant_id = "fabrikam.example"\nauthority = "http://127.0.0.1:18733"',
        ),
        "tenants.target.authority",
        "https only",
    ),
    # issue 8, case 6: what validation used to let through
    (GOOD + "\n[limits]\nrequest_window_s = nan\n", "limits.request_window_s", "finite"),
    (GOOD + "\n[limits]\nupload_mb_per_window = inf\n", "limits.upload_mb_per_window", "finite"),
    (GOOD + '\n[job]\nstate = ""\n', "job.state", "not empty"),
    (GOOD + '\n[job]\nreport = "  "\n', "job.report", "not empty"),
    (
        GOOD + '\n[[pairs]]\nsource = "adele@"\ntarget = "b@fabrikam.example"\n',
        "pairs[1].source",
        "not a user principal name",
    ),
    (
        GOOD + '\n[[pairs]]\nsource = "x@y@z.example"\ntarget = "b@fabrikam.example"\n',
        "pairs[1].source",
        "not a user principal name",
    ),
    (
        GOOD + '\n[folders]\ntarget_root = "/Migrated/{sourec}"\n',
        "folders.target_root",
        "unknown placeholder {sourec}",
    ),
    (
        GOOD.replace("file:secret.txt", "file:empty.txt"),
        "tenants.target.client_secret",
        "is empty",
    ),
    # issue 8, case 1: pairs that cannot be right
    (
        GOOD + '\n[[pairs]]\nsource = "b@contoso.example"\ntarget = "A@fabrikam.example"\n',
        "pairs[1]",
        "also the target of pairs[0]",
    ),
    (
        GOOD + '\n[[pairs]]\nsource = "a@contoso.example"\ntarget = "A@Contoso.example"\n',
        "pairs[1]",
        "same mailbox",
    ),
    (
        GOOD + '\n[emulator]\nmailboxes = [{ upn = "a@contoso.example", itemz = 5 }]\n',
        "emulator.mailboxes[0]",
        "unknown key itemz",
    ),
    (
        GOOD + '\n[emulator]\nprofile = "warp"\n',
        "emulator",
        "warp",
    ),
    (GOOD + "\n[limits]\nbatch_items = 50\n", "limits.batch_items", "at most 20"),
    (GOOD + "\n[limits]\npairs_in_parallel = 0\n", "limits.pairs_in_parallel", "greater than 0"),
    ('pairs_csv = "nope.csv"\n' + GOOD, "pairs_csv", "does not exist"),
    (
        GOOD + 'pairs_csv = "x.csv"\n',
        "pairs[0].pairs_csv",
        "unknown key; pairs_csv goes at the top of the job file, before the first [table]",
    ),
    (
        GOOD + '\n[[pairs]]\nsource = "a@contoso.example"\ntarget = "a@fabrikam.example"\n',
        "pairs[1]",
        "duplicate",
    ),
    (
        GOOD + '\n[[pairs]]\nsource = "nobody"\ntarget = "x@y"\n',
        "pairs[1].source",
        "not a user principal name",
    ),
    (
        GOOD + "\n[items]\ncreated_after = 2024-01-01\ncreated_before = 2023-01-01\n",
        "items.created_before",
        "later than",
    ),
    (
        GOOD.replace(
            'client_secret = "file:secret.txt"',
            'client_secret = "file:secret.txt"\npfx = "secret.txt"',
        ),
        "tenants.target",
        "exactly one credential",
    ),
    (
        GOOD.replace('graph_url = "https://graph.microsoft.com/beta"', 'graph_url = "emulator"'),
        "emulator",
        "no [emulator] section",
    ),
    (GOOD + '\n[job]\nlog_level = "loud"\n', "job.log_level", "must be"),
    (GOOD + '\n[sync]\ndeletions = "purge"\n', "sync.deletions", "keep"),
    (
        GOOD + '\n[job]\nstate = "postgresql://ce:s3cret-value@db.example:5432/wave1"\n',
        "job.state",
        "holds a password",
    ),
    (GOOD + '\n[job]\nstate = "postgresql://db.example"\n', "job.state", "a database"),
    (GOOD + '\n[job]\nstate_password = "env:X"\n', "job.state_password", "postgresql"),
    (
        GOOD + "\n[workers]\nheartbeat_s = 30\nstalled_after_s = 10\n",
        "workers.stalled_after_s",
        "longer than heartbeat_s",
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "message"), CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES]
)
def test_bad_config_names_the_key_and_exits_3(
    job: Path, text: str, where: str, message: str
) -> None:
    path = _write(job, text)
    with pytest.raises(ConfigError) as exc:
        load_job(path)
    assert where in str(exc.value) and message in str(exc.value)
    result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert result.exit_code == ExitCode.CONFIG
    assert "error: configuration:" in result.output and where in result.output
    assert "s3cret-value" not in result.output


def test_pairs_from_csv_and_bad_csv_row(job: Path) -> None:
    (job / "pairs.csv").write_text(
        "source,target\nb@contoso.example,b@fabrikam.example\n"
        "# a comment\nc@contoso.example,c@fabrikam.example\n"
    )
    cfg = load_job(_write(job, 'pairs_csv = "pairs.csv"\n' + GOOD))
    assert [p.source for p in cfg.pairs] == [
        "a@contoso.example",
        "b@contoso.example",
        "c@contoso.example",
    ]
    (job / "pairs.csv").write_text("x@contoso.example\n")
    with pytest.raises(ConfigError, match=r"pairs.csv:1: expected: source,target"):
        load_job(_write(job, 'pairs_csv = "pairs.csv"\n' + GOOD))


def test_missing_config_file_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == ExitCode.CONFIG and "not found" in result.output


def test_per_pair_overrides(job: Path) -> None:
    text = (
        GOOD
        + """
[folders]
exclude = ["^/Junk"]

[[pairs]]
source = "b@contoso.example"
target = "b@fabrikam.example"
[pairs.folders]
target_root = "/Migrated/{source}"
[pairs.items]
max_size_mb = 10
"""
    )
    cfg = load_job(_write(job, text))
    a, b = cfg.pairs
    assert a.folders.target_root == "" and b.folders.target_root == "/Migrated/{source}"
    assert b.folders.exclude == a.folders.exclude  # inherited
    assert a.items.max_size is None and b.items.max_size == 10 * 1024 * 1024


def test_example_config_is_valid() -> None:
    cfg = load_job(Path(__file__).parent.parent / "config.example.toml")
    assert cfg.needs_emulator and len(cfg.pairs) >= 3
    assert cfg.emulator is not None and len(cfg.emulator.mailboxes) >= 6


def test_consolidation_is_allowed_when_the_job_says_so(job: Path) -> None:
    text = GOOD + '\n[[pairs]]\nsource = "b@contoso.example"\ntarget = "a@fabrikam.example"\n'
    cfg = load_job(_write(job, "[job]\nconsolidate = true\n" + text))
    assert len(cfg.pairs) == 2 and cfg.consolidate


def test_loopback_emulator_may_use_plain_http(job: Path) -> None:
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9000"):
        text = GOOD.replace("https://graph.microsoft.com/beta", f"http://{host}/beta")
        assert load_job(_write(job, text)).source.graph_url == f"http://{host}/beta"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_pairs_csv_saved_by_excel_is_read(job: Path, encoding: str) -> None:
    # Excel's "CSV UTF-8" has a BOM; its "Unicode text" is UTF-16 with a BOM; CRLF lines
    rows = "source,target\r\nzoë@contoso.example,zoë@fabrikam.example\r\n"
    (job / "pairs.csv").write_bytes(rows.encode(encoding))
    cfg = load_job(_write(job, 'pairs_csv = "pairs.csv"\n' + GOOD))
    assert [p.source for p in cfg.pairs] == ["a@contoso.example", "zoë@contoso.example"]


def test_pairs_csv_in_cp1252_is_refused_with_file_line_and_advice(job: Path) -> None:
    rows = "source,target\nb@contoso.example,b@fabrikam.example\nzoë@contoso.example,z@fabrikam.example\n"
    (job / "pairs.csv").write_bytes(rows.encode("cp1252"))
    path = _write(job, 'pairs_csv = "pairs.csv"\n' + GOOD)
    result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert result.exit_code == ExitCode.CONFIG
    assert "pairs.csv" in result.output and "line 3" in result.output
    assert "save it as UTF-8" in result.output and "Traceback" not in result.output


def test_csv_errors_name_file_and_line(job: Path) -> None:
    (job / "pairs.csv").write_text(
        "source,target\nb@contoso.example,b@fabrikam.example\nbroken@,c@fabrikam.example\n"
    )
    with pytest.raises(ConfigError, match=r"pairs.csv:3: 'broken@' is not a user principal"):
        load_job(_write(job, 'pairs_csv = "pairs.csv"\n' + GOOD))
    # a semicolon-separated file (Excel's default in much of Europe) is read (issue 24)
    (job / "pairs.csv").write_text("b@contoso.example;b@fabrikam.example\n")
    cfg = load_job(_write(job, 'pairs_csv = "pairs.csv"\n' + GOOD))
    assert [p.source for p in cfg.pairs] == ["a@contoso.example", "b@contoso.example"]


def test_config_in_latin1_is_refused_clearly(job: Path) -> None:
    path = job / "job.toml"
    path.write_bytes((GOOD + '\n[job]\nname = "Müller"\n').encode("latin-1"))
    result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert result.exit_code == ExitCode.CONFIG
    assert "job.toml" in result.output and "UTF-8" in result.output
    assert "Traceback" not in result.output


def test_exit_codes_are_listed_in_help() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    for code in ExitCode:
        assert f"  {int(code)} " in result.output, code


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`--help` is the operator's first reference: no option without its line of help."""
    import click

    def commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
        out: list[tuple[str, click.Command]] = []
        for name, cmd in group.commands.items():
            out.append((f"{prefix} {name}", cmd))
            if isinstance(cmd, click.Group):
                out += commands(cmd, f"{prefix} {name}")
        return out

    silent = [
        f"{where} {opt.opts[0]}"
        for where, cmd in commands(main, "copyengine")
        for opt in cmd.params
        if isinstance(opt, click.Option) and not opt.hidden and not opt.help
    ]
    assert not silent, silent


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("nobody@contoso.example", ""),  # the shared domain alone is no likeness
        ("adel@contoso.example", "; did you mean adele@contoso.example?"),
        ("dora@fabrikam.exmaple", "; did you mean dora@fabrikam.example?"),
        ("chen@contoso.com", "; did you mean chen@contoso.example?"),
    ],
)
def test_a_pair_name_is_offered_only_the_names_like_it(given: str, said: str) -> None:
    from copyengine.config import near_names

    names = {f"{u}@{d}" for u in ("adele", "chen", "dora") for d in ("contoso.example",)}
    names.add("dora@fabrikam.example")
    assert near_names(given, names) == said
