"""deploy/ as a site uses it: the systemd units pass ``systemd-analyze verify`` (and its
offline security review), the compose, Prometheus and Grafana files agree with each other and
with the job file they run, and every metric the dashboard queries exists in a scrape of a
real ``copyengine run --metrics``."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from copyengine.cli import main
from copyengine.config import Workers, load_job
from copyengine.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
WORKER_UNIT = UNITS / "copyengine-worker@.service"
SUBMIT_UNIT = UNITS / "copyengine-submit.service"
TIMER = UNITS / "copyengine-submit.timer"
INSTALLED_BINARY = "/opt/copyengine/bin/copyengine"
DASHBOARD = DEPLOY / "grafana" / "copyengine.json"


# -- reading the files ---------------------------------------------------------------------------
def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: sections of keys, each with every value it was given
    (a key may repeat; an empty assignment resets the list)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {raw!r}"
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def env_example() -> dict[str, str]:
    """The variables copyengine.env.example assigns, commented-out ones included (empty)."""
    names: dict[str, str] = {}
    for line in (DEPLOY / "copyengine.env.example").read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if m:
            names[m[1]] = m[2] if not line.lstrip().startswith("#") else ""
    return names


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def prometheus() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def seconds(text: str) -> float:
    """systemd's and compose's durations: 180, 180s, 3min, 2h, 1m30s."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), text
    return sum(float(n) * units[u] for n, u in parts)


def command_is_copyengine_s_own(args: list[str]) -> None:
    """The arguments parse as a copyengine command line: the command and every option exist
    (click raises on an unknown one)."""
    ctx = click.Context(main, info_name="copyengine")
    command = main.get_command(ctx, args[0])
    assert command is not None, args[0]
    with command.make_context(args[0], list(args[1:]), parent=ctx) as sub:
        assert sub.params


# -- systemd -------------------------------------------------------------------------------------
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("COPYENGINE_REQUIRE_SYSTEMD"):
            raise AssertionError("systemd-analyze is missing (.ci/run installs Debian's systemd)")
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    return found


@pytest.fixture
def units_here(tmp_path: Path) -> Path:
    """The units as shipped, in a folder of their own, with a worker instance (9101), and
    the installed binary's path pointed at this checkout's copyengine (verify checks that
    ExecStart's program exists and is executable; nothing else is changed)."""
    binary = Path(sys.executable).with_name("copyengine")
    assert binary.exists(), binary
    for path in UNITS.iterdir():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".service":
            assert INSTALLED_BINARY in text, path.name
            text = text.replace(INSTALLED_BINARY, str(binary))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    (tmp_path / "copyengine-worker@9101.service").symlink_to("copyengine-worker@.service")
    return tmp_path


def test_units_pass_systemd_analyze_verify(units_here: Path) -> None:
    tool = systemd_analyze()
    names = ["copyengine-worker@9101.service", "copyengine-submit.service", TIMER.name]
    done = subprocess.run(
        [tool, "verify", *(str(units_here / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=units_here,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    # warnings (an unknown key, a bad value ignored) do not change the exit code: none at all
    assert "copyengine" not in said, said
    calendar = one(unit(TIMER)["Timer"], "OnCalendar")
    done = subprocess.run([tool, "calendar", calendar], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "Next elapse" in done.stdout, done.stdout + done.stderr


def test_units_are_hardened_by_systemd_s_own_measure(units_here: Path) -> None:
    """`systemd-analyze security` rates each service's exposure from 0 (locked down) to 10;
    both stay under 2 (the threshold is given in tenths)."""
    tool = systemd_analyze()
    for name in ("copyengine-worker@9101.service", "copyengine-submit.service"):
        done = subprocess.run(
            [tool, "security", "--offline=yes", "--threshold=20", str(units_here / name)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=units_here,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_sysusers_creates_the_user_the_units_run_as(tmp_path: Path) -> None:
    tool = shutil.which("systemd-sysusers")
    if tool is None:
        systemd_analyze()  # fails under .ci/run, skips elsewhere
        pytest.skip("systemd-sysusers is not installed")
    (tmp_path / "etc").mkdir()
    done = subprocess.run(
        [tool, f"--root={tmp_path}", str(UNITS / "copyengine.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    users = {
        fields[0]: fields
        for fields in (
            line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()
        )
    }
    groups = {line.split(":")[0] for line in (tmp_path / "etc/group").read_text().splitlines()}
    for path in (WORKER_UNIT, SUBMIT_UNIT):
        service = unit(path)["Service"]
        user = users[one(service, "User")]
        assert one(service, "Group") in groups
        assert user[5] == one(service, "WorkingDirectory") == "/var/lib/copyengine"
        assert user[6].endswith("nologin")


def test_worker_unit_restarts_drains_and_keeps_its_secrets_apart() -> None:
    service = unit(WORKER_UNIT)["Service"]
    assert one(service, "Restart") == "on-failure"
    no_restart = {int(c) for c in one(service, "RestartPreventExitStatus").split()}
    # a bad command line, a configuration error and refused credentials fail the same way
    # every time; a database gone past its limit (5) is worth another start
    assert no_restart == {ExitCode.USAGE, ExitCode.CONFIG, ExitCode.AUTH}
    assert ExitCode.FATAL not in no_restart
    # SIGTERM to the worker only, which drains; the stop timeout leaves the drain its time,
    # for the default and for the deployed job file alike
    assert one(service, "KillMode") == "mixed"
    assert one(service, "KillSignal") == "SIGTERM"
    stop = seconds(one(service, "TimeoutStopSec"))
    deployed = deployed_job()
    assert stop >= Workers().drain_timeout_s + 30
    assert stop >= deployed.workers.drain_timeout_s + 30
    assert one(service, "EnvironmentFile") == "/etc/copyengine/copyengine.env"
    assert seconds(one(service, "RestartSec")) == 30
    limits = unit(WORKER_UNIT)["Unit"]
    assert one(limits, "StartLimitBurst") == "5"
    assert seconds(one(limits, "StartLimitIntervalSec")) == 600


@pytest.mark.parametrize("path", [WORKER_UNIT, SUBMIT_UNIT], ids=lambda p: p.name)
def test_services_run_as_their_own_user_with_a_read_only_system(path: Path) -> None:
    service = unit(path)["Service"]
    expected = {
        "User": "copyengine",
        "Group": "copyengine",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "copyengine",
        "LogsDirectory": "copyengine",
        "UMask": "0077",
        "WorkingDirectory": "/var/lib/copyengine",
        "EnvironmentFile": "/etc/copyengine/copyengine.env",
    }
    for key, value in expected.items():
        assert one(service, key) == value, key
    assert service["CapabilityBoundingSet"] == []  # reset: no capability at all
    # what the job writes (its report) is in the state directory, writable under strict
    assert deployed_job().report_path.is_relative_to("/var/lib/copyengine")


def unit_command(path: Path) -> list[str]:
    line = one(unit(path)["Service"], "ExecStart")
    line = line.replace("${COPYENGINE_METRICS_HOST}", "127.0.0.1").replace("%i", "9101")
    args = shlex.split(line)
    assert args[0] == INSTALLED_BINARY
    return args[1:]


def test_submit_unit_runs_copyengine_s_own_command_line() -> None:
    args = unit_command(SUBMIT_UNIT)
    assert args[:2] == ["submit", "/etc/copyengine/job.toml"]
    command_is_copyengine_s_own(args)
    assert one(unit(SUBMIT_UNIT)["Service"], "Type") == "oneshot"
    assert one(unit(TIMER)["Timer"], "Unit") == SUBMIT_UNIT.name


def test_worker_command_lines_are_copyengine_s_own() -> None:
    """The systemd instance's and compose's worker lines parse as they stand: the instance
    name is the worker's metrics port."""
    args = unit_command(WORKER_UNIT)
    assert args[:2] == ["worker", "/etc/copyengine/job.toml"]
    assert args[args.index("--metrics") + 1] == "127.0.0.1:9101"
    command_is_copyengine_s_own(args)
    for name in ("worker", "submit"):
        command_is_copyengine_s_own(compose()["services"][name]["command"])


# -- the secrets and the job file ----------------------------------------------------------------
def test_env_example_names_every_secret_the_deployed_job_references_and_holds_none() -> None:
    names = env_example()
    text = (DEPLOY / "job" / "job.toml").read_text(encoding="utf-8")
    referenced = set(re.findall(r'"env:([A-Za-z0-9_]+)"', text))
    assert referenced >= {
        "COPYENGINE_DB_PASSWORD",
        "COPYENGINE_SOURCE_CLIENT_SECRET",
        "COPYENGINE_TARGET_CLIENT_SECRET",
    }
    assert referenced <= set(names), referenced - set(names)
    # what compose interpolates is there too
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", (DEPLOY / "compose.yaml").read_text()))
    assert interpolated and interpolated <= set(names), interpolated - set(names)
    # and what the worker unit takes from it
    assert "COPYENGINE_METRICS_HOST" in names
    # an example holds no secret: every value empty
    assert all(value == "" for value in names.values()), names
    # the filled copy is never committed
    assert "copyengine.env" in (DEPLOY / ".gitignore").read_text().split()


def deployed_job() -> Any:
    env = {name: "placeholder" for name in env_example()}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return load_job(DEPLOY / "job" / "job.toml")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_deployed_job_loads_and_its_state_is_compose_s_postgres() -> None:
    cfg = deployed_job()
    assert len(cfg.pairs) == 2 and cfg.name == "migration"
    url = urlsplit(cfg.state_url)
    pg = compose()["services"]["postgres"]
    assert url.hostname == "postgres" and (url.port or 5432) == 5432
    assert url.username == pg["environment"]["POSTGRES_USER"]
    assert url.path.lstrip("/") == pg["environment"]["POSTGRES_DB"]
    assert url.password is None
    assert "COPYENGINE_DB_PASSWORD" in pg["environment"]["POSTGRES_PASSWORD"]


# -- compose, Dockerfile, Prometheus, Grafana --------------------------------------------------------
def test_compose_references_files_that_exist() -> None:
    data = compose()
    services = data["services"]
    assert {"postgres", "submit", "worker", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source, target = str(mount).split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in data["volumes"], f"{name}: volume {source}"
            assert target.startswith("/")
        for env_file in service.get("env_file", []):
            # the operator's copy, made from the example
            assert (DEPLOY / f"{env_file}.example").exists(), env_file
        build = service.get("build")
        if build:
            context = DEPLOY / build["context"]
            dockerfile = context / build["dockerfile"]
            assert dockerfile.exists() and dockerfile.resolve() == DEPLOY / "Dockerfile"
    # the job mounted where the commands read it
    for name in ("worker", "submit"):
        assert "./job:/etc/copyengine:ro" in services[name]["volumes"]
        assert "/etc/copyengine/job.toml" in services[name]["command"]
    assert (DEPLOY / "job" / "pairs.csv").exists()


def test_dockerfile_installs_the_project_from_what_the_build_context_lets_through() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    allowed = {
        line[1:].removesuffix("/**")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = [
        word
        for m in re.finditer(r"^COPY (.+)$", text, re.M)
        for word in m[1].split()[:-1]
        if not word.startswith("--")
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source in allowed, f"{source} is excluded from the build context"
    assert re.search(r"^RUN pip install \.", text, re.M)
    assert re.search(r'^ENTRYPOINT \["copyengine"\]$', text, re.M)
    assert re.search(r"^USER copyengine$", text, re.M)


def test_workers_ports_and_prometheus_agree() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2
    address = worker["command"][worker["command"].index("--metrics") + 1]
    host, port = address.rsplit(":", 1)
    assert host == "0.0.0.0"
    assert str(port) in [str(p) for p in worker["expose"]]
    # SIGTERM drains: compose waits longer than the deployed job's drain
    grace = seconds(worker["stop_grace_period"])
    assert grace >= deployed_job().workers.drain_timeout_s + 30
    assert grace == seconds(one(unit(WORKER_UNIT)["Service"], "TimeoutStopSec"))
    # Prometheus finds every replica by the service's name, on the workers' port
    jobs = {j["job_name"]: j for j in prometheus()["scrape_configs"]}
    sd = jobs["copyengine"]["dns_sd_configs"]
    assert sd == [{"names": ["worker"], "type": "A", "port": int(port), "refresh_interval": "15s"}]
    # Grafana's data source is that Prometheus
    sources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    url = urlsplit(sources[0]["url"])
    assert url.hostname == "prometheus" and "prometheus" in services
    assert url.port == 9090 and "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    assert sources[0]["type"] == "prometheus"
    assert services["grafana"]["ports"] == ["127.0.0.1:3000:3000"]


def test_copyengine_containers_are_unprivileged_and_restart_a_bounded_number_of_times() -> None:
    services = compose()["services"]
    for name in ("worker", "submit"):
        service = services[name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["restart"] == "on-failure:5"
    assert services["submit"]["restart"] == "no"


def test_grafana_provisions_the_dashboard_compose_mounts() -> None:
    providers = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/copyengine.yaml").read_text()
    )["providers"]
    folder = providers[0]["options"]["path"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/copyengine.json:{folder}/copyengine.json:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# -- the dashboard -------------------------------------------------------------------------------
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
PROMQL_WORDS |= {"offset", "and", "or", "unless", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana's $variables) reads: strings,
    label matchers, ranges and label lists removed, then every identifier that is neither a
    function (followed by "(") nor a keyword."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    e = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+|ms|[smhdwy])?\b", " ", e)  # numbers, durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end() :].lstrip().startswith("(") or m[0].lower() in PROMQL_WORDS:
            continue
        names.add(m[0])
    return names


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        '60 * sum by (reason) (rate(a_total{outcome="x y", pair=~"$pair"}[$__rate_interval]))'
        " / on(pair) group_left b + max(c offset 5m) > bool 1e3"
    )
    assert metric_names(expr) == {"a_total", "b", "c"}
    assert metric_names('count(d{status="failed"} == 1)') == {"d"}


def dashboard_queries(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"])
            assert m, var["query"]
            exprs.append(m[1])
    return exprs


def test_dashboard_is_grafana_dashboard_json() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["uid"] == "copyengine" and dash["title"] and dash["schemaVersion"] >= 36
    assert "id" not in dash or dash["id"] is None  # provisioned: Grafana gives the id
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        assert p["type"] in {"stat", "timeseries", "table", "bargauge"}, p["type"]
        assert p["title"] and p["targets"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not area & cells, f"panel {p['title']!r} overlaps another"
        cells |= area
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in [p, *p["targets"]]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for t in p["targets"]:
            assert metric_names(t["expr"]), t["expr"]
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var in variables or var.startswith("__"), var
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for wanted in ("ceiling per mailbox", "items copied / s", "429s", "failed", "stalled groups"):
        assert wanted in titles, wanted


RUN_JOB = """
[job]
state = "state.sqlite"
report = "report.json"
log_format = "json"
log_level = "info"

[tenants.source]
graph_url = "emulator"
authority = "emulator"
tenant_id = "contoso.example"
client_id = "11111111-1111-4111-8111-111111111111"
client_secret = "file:source.secret"

[tenants.target]
graph_url = "emulator"
authority = "emulator"
tenant_id = "fabrikam.example"
client_id = "22222222-2222-4222-8222-222222222222"
client_secret = "file:target.secret"

[[pairs]]
source = "adele@contoso.example"
target = "adele@fabrikam.example"

[[pairs]]
source = "bianca@contoso.example"
target = "bianca@fabrikam.example"

[emulator]
profile = "exchange"
seed = 7
tls = false
limits = { latency_base = 0.02 }
faults = [{ kind = "import_reject", calls = ["importItem"], count = 2 }]
mailboxes = [
    { upn = "adele@contoso.example", seed = 1, items = 150 },
    { upn = "bianca@contoso.example", seed = 2, items = 150 },
    { upn = "adele@fabrikam.example", layout = "empty" },
    { upn = "bianca@fabrikam.example", layout = "empty" },
]
"""


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode("utf-8"))
    except OSError:
        return None  # the run ended meanwhile


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """The sample names of every scrape of a real `copyengine run --metrics 127.0.0.1:0` (an
    embedded emulator that refuses two items), taken while it runs."""
    job = tmp_path_factory.mktemp("run")
    for name in ("source", "target"):
        shutil.copy(ROOT / "examples" / "demo-secrets" / f"{name}.secret", job)
    (job / "job.toml").write_text(RUN_JOB, encoding="utf-8")
    log = job / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "copyengine", "run", "job.toml", "--metrics", "127.0.0.1:0"],
            cwd=job,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    names: set[str] = set()
    bodies = 0
    port: int | None = None
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            if port is None:
                m = re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", log.read_text())
                port = int(m[1]) if m else None
            body = scrape(port) if port is not None else None
            if body:
                bodies += 1
                for family in text_string_to_metric_families(body):
                    names.update(s.name for s in family.samples)
            time.sleep(0.1)
        assert proc.poll() is not None, "the run did not end within 90 s"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == ExitCode.ITEMS_FAILED, log.read_text()[-3000:]
    assert bodies >= 3, f"{bodies} scrapes while the run lasted"
    yield names


def test_every_metric_the_dashboard_queries_exists_in_a_scrape_of_a_real_run(
    scraped: set[str],
) -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    wanted = set().union(*(metric_names(e) for e in dashboard_queries(dash)))
    assert {
        "copyengine_items_total",
        "copyengine_throttled_total",
        "copyengine_mailbox_ceiling_percent",
        "copyengine_stalled_groups",
    } <= wanted
    assert wanted <= scraped, sorted(wanted - scraped)
