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
    (GOOD + "\n[bogus]\nx = 1\n", "bogus", "unknown key"),
    (
        GOOD.replace('client_id = "c1"', "client_id = 5"),
        "tenants.source.client_id",
        "must be a string",
    ),
    (GOOD.replace('client_id = "c1"\n', ""), "tenants.source.client_id", "is required"),
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
        "http(s) URL",
    ),
    (GOOD + "\n[limits]\nbatch_items = 50\n", "limits.batch_items", "at most 20"),
    (GOOD + "\n[limits]\npairs_in_parallel = 0\n", "limits.pairs_in_parallel", "greater than 0"),
    ('pairs_csv = "nope.csv"\n' + GOOD, "pairs_csv", "does not exist"),
    (GOOD + 'pairs_csv = "x.csv"\n', "pairs[0].pairs_csv", "unknown key"),
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
