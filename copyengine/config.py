"""Job configuration: TOML -> frozen, validated values. Errors name the key path.

Validation happens entirely at load, before any request is sent: unknown keys, wrong types,
bad regular expressions, missing files and unresolvable secret references are all
``ConfigError``s (exit code 3).
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clouds import check_tenant
from .embedded.schema import EmbeddedEmulator, parse_emulator
from .errors import ConfigError
from .network import NetworkConfig, is_loopback, parse_network
from .notify.schema import NotifyConfig, parse_notify
from .pairsfile import check_encoding, read_pairs_file, wave_label
from .paths import job_path, not_found
from .secrets import Secret, resolve_secret
from .textfiles import Table, decode_text, upn

if TYPE_CHECKING:
    from .controls.schedule import Schedule

EMULATOR = "emulator"
FOLDER_CLASSES = {
    "mail": ("IPF.Note", "IPF", ""),
    "calendar": ("IPF.Appointment",),
    "contacts": ("IPF.Contact",),
    "tasks": ("IPF.Task",),
    "notes": ("IPF.StickyNote",),
    "journal": ("IPF.Journal",),
}
MB = 1024 * 1024
# Each job file's own state and report, relative to it: ``.copyengine/<job>.state.sqlite``
# and ``.copyengine/<job>.report.json``, <job> being ``[job] name`` or the file's name.
DEFAULT_DIR = ".copyengine"
# the one default state every job file of a directory shared before each had its own
SHARED_STATE = ".copyengine/state.sqlite"
# Placeholders target_root may use: {source} is the local part of the source UPN,
# {source_upn} the whole UPN, {target} the local part of the target UPN.
ROOT_PLACEHOLDERS = ("source", "source_upn", "target")


@dataclass(frozen=True)
class TenantConfig:
    name: str
    tenant_id: str
    client_id: str
    graph_url: str = "https://graph.microsoft.com/beta"
    authority: str = "https://login.microsoftonline.com"
    client_secret: Secret | None = None
    certificate_key: Secret | None = None
    certificate: Path | None = None
    pfx: Path | None = None
    pfx_password: Secret | None = None
    ca_bundle: Path | None = None
    scope: str | None = None  # the token scope; None: derived from graph_url (clouds)

    @property
    def uses_emulator(self) -> bool:
        return self.graph_url == EMULATOR or self.authority == EMULATOR


@dataclass(frozen=True)
class RenameRule:
    pattern: re.Pattern[str]
    to: str


@dataclass(frozen=True)
class FolderRules:
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    rename: tuple[RenameRule, ...] = ()
    target_root: str = ""  # "" = the target's root; "/Migrated/{source}" = a subfolder
    map_well_known: bool = True
    classes: tuple[str, ...] = ("mail", "calendar", "contacts", "tasks", "notes")
    skip_hidden: bool = True


@dataclass(frozen=True)
class ItemFilters:
    created_after: datetime | None = None
    created_before: datetime | None = None
    types: tuple[str, ...] = ()  # message-class prefixes; empty: all
    max_size: int | None = None


@dataclass(frozen=True)
class Limits:
    pairs_in_parallel: int = 8
    in_flight_per_mailbox: int = 4
    requests_per_window: int = 10_000
    request_window_s: float = 600.0
    upload_bytes_per_window: int = 150 * MB
    upload_window_s: float = 300.0
    bytes_in_flight: int = 256 * MB
    batch_items: int = 20
    batch_bytes: int = 32 * MB
    exporters_per_pair: int = 2
    # More importers than the in-flight cap: a task sleeping in a retry backoff holds no
    # pacer slot, so the others keep the mailbox busy.
    importers_per_pair: int = 6
    # Open connections, job-wide. Pacers bound requests per mailbox; this bounds sockets and
    # their buffers when thousands of pairs run at once.
    connections: int = 256
    # A drain (first Ctrl-C / SIGTERM) lets in-flight work finish for at most this long;
    # then whatever is still waiting (a service that does not answer) is left for the next run.
    drain_timeout_s: float = 60.0
    # Longest wait between two retries of a failing call (503/504, connection failures);
    # Retry-After from the service is obeyed as given up to max_retry_after_s.
    retry_backoff_cap_s: float = 30.0
    # A 429's Retry-After longer than this is cut to it (and logged once per mailbox).
    max_retry_after_s: float = 300.0
    # Like Microsoft's BadItemLimit: past this many failed items a pair stops and is reported
    # failed (None: no limit).
    max_failed_items_per_pair: int | None = None
    # The bandwidth cap: bytes uploaded into target mailboxes per second, in MB/s (1 MB =
    # MB = 1 MiB), shared by everything one process copies (None: no cap).
    bwlimit_mb_s: float | None = None


@dataclass(frozen=True)
class SyncOptions:
    """How later passes treat the source's changes (``[sync]``)."""

    # deleted at the source: "keep" the target's copy, or "mirror" (soft-delete it)
    deletions: str = "keep"
    # later passes read changes through delta links; false: every pass lists in full
    delta: bool = True


@dataclass(frozen=True)
class Workers:
    """``[workers]``: one job shared by many hosts (``submit``, ``worker``)."""

    concurrency: int = 4  # mailbox groups a worker process runs at once
    segment_minutes: float = 15.0  # a group's time box before its continuation is queued
    heartbeat_s: float = 10.0  # how often a worker says it is alive
    stalled_after_s: float = 30.0  # silent this long: its groups are retried elsewhere
    drain_timeout_s: float = 120.0  # SIGTERM: how long running segments get to end cleanly


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    folders: FolderRules
    items: ItemFilters
    # also copy the source's in-place archive into the target's (Graph beta only)
    archive: bool = False
    wave: str = ""  # ``run --wave``; pairsfile.wave_label's form, "" for none
    origin: str = field(default="", compare=False)  # pairs[i], or file:line of the pairs file
    # the operator's controls, from the pair's entry or its wave's ``[waves.<wave>]``: higher
    # priorities take the job's slots (and the workers' queue) first
    priority: int = 0
    # no pass of the pair before this time; no cutover before ``complete_after`` (aware)
    start_after: datetime | None = None
    complete_after: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.source.lower()}->{self.target.lower()}"


@dataclass(frozen=True)
class JobConfig:
    path: Path
    source: TenantConfig
    target: TenantConfig
    pairs: tuple[Pair, ...]
    limits: Limits
    state_path: Path
    report_path: Path
    log_format: str = "auto"
    log_level: str = "info"
    emulator: EmbeddedEmulator | None = None
    name: str = ""  # optional; the job's identity in its state (else its file's name)
    keep_reports: int = 20  # reports of earlier runs kept beside the latest
    consolidate: bool = False  # several pairs may write one target mailbox
    sync: SyncOptions = field(default_factory=SyncOptions)
    # ``[job] state = "postgresql://…"``: the job's state in PostgreSQL (several hosts);
    # the password by reference in ``[job] state_password`` (or libpq's own ~/.pgpass)
    state_url: str | None = None
    state_password: Secret | None = None
    workers: Workers = field(default_factory=Workers)
    network: NetworkConfig = field(default_factory=NetworkConfig)  # [network]: proxy
    notify: NotifyConfig = field(default_factory=NotifyConfig)  # [notify]: webhooks
    # [schedule]: the hours when passes may run, in its time zone (``controls.schedule``)
    schedule: Schedule | None = None

    def identity(self) -> dict[str, str]:
        """What makes a state store this job's: the tenants and apps, and the job's name
        (``[job] name``, else the job file's: two job files keep apart). The pairs are not
        part of it: a job's waves add and remove pairs between passes."""
        return {
            "name": self.name or self.path.stem,
            "source": f"{self.source.tenant_id.lower()}/{self.source.client_id.lower()}",
            "target": f"{self.target.tenant_id.lower()}/{self.target.client_id.lower()}",
        }

    @property
    def needs_emulator(self) -> bool:
        return self.source.uses_emulator or self.target.uses_emulator


# -- helpers ---------------------------------------------------------------------------------
def _regex(value: Any, where: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ConfigError(where, "must be a regular expression string")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigError(where, f"invalid regular expression: {exc}") from None


def _date(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return _date(datetime.fromisoformat(value.replace("Z", "+00:00")), where)
        except ValueError:
            pass
    raise ConfigError(where, "must be a date (2021-08-21) or a date-time")


def _check_url(url: str, where: str) -> None:
    """https, or plain http to a loopback emulator only: bearer tokens and client secrets
    never travel in clear text."""
    m = re.match(r"^(https?)://([^/\s:]+|\[[0-9a-fA-F:.]+\])(:\d+)?(/\S*)?$", url)
    if m is None:
        raise ConfigError(where, f'must be an https URL or "{EMULATOR}", not {url!r}')
    if m.group(1) == "http" and not is_loopback(m.group(2)):
        raise ConfigError(
            where,
            f"{url!r} is plain HTTP: tokens and secrets would travel in clear text; use "
            "https (plain http is accepted only for an emulator on a loopback address)",
        )


def _target_root(value: str, where: str) -> str:
    if value and not value.startswith("/"):
        raise ConfigError(where, "must start with /")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise ConfigError(where, f"{exc}; write {{{{ and }}}} for literal braces") from None
    for f in fields:
        if f not in ROOT_PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in ROOT_PLACEHOLDERS)
            raise ConfigError(where, f"unknown placeholder {{{f}}}; known: {known}")
    return value


def _file(value: str, where: str, base: Path) -> Path:
    p = job_path(value, where, base)
    if not p.is_file():
        raise ConfigError(where, not_found(p, value))
    return p


# -- sections --------------------------------------------------------------------------------
def _tenant(t: Table, name: str, base: Path, resolve: bool) -> TenantConfig:
    def secret(key: str) -> Secret | None:
        ref = t.get(key, str)
        if ref is None:
            return None
        if not resolve:
            return Secret("", ref)
        return resolve_secret(ref, t.path(key), base)

    graph_url = t.get("graph_url", str, TenantConfig.graph_url)
    authority = t.get("authority", str, TenantConfig.authority)
    for key, url in (("graph_url", graph_url), ("authority", authority)):
        if url != EMULATOR:
            _check_url(url, t.path(key))
    if authority.startswith("http://"):  # msal's own rule: every pair would fail its token
        raise ConfigError(
            t.path("authority"),
            f"{authority!r}: tokens are asked over https only (msal refuses http://, "
            "loopback too; an emulator's authority is https: its ready file's authority_url)",
        )
    scope = t.get("scope", str)
    authority = check_tenant(t.where, graph_url, authority, scope, "authority" in t.raw)
    ca = t.get("ca_bundle", str)
    cert = t.get("certificate", str)
    pfx = t.get("pfx", str)
    cfg = TenantConfig(
        name=name,
        tenant_id=t.get("tenant_id", str, required=True),
        client_id=t.get("client_id", str, required=True),
        graph_url=graph_url.rstrip("/"),
        authority=authority.rstrip("/"),
        client_secret=secret("client_secret"),
        certificate_key=secret("certificate_key"),
        certificate=_file(cert, t.path("certificate"), base) if cert else None,
        pfx=_file(pfx, t.path("pfx"), base) if pfx else None,
        pfx_password=secret("pfx_password"),
        ca_bundle=_file(ca, t.path("ca_bundle"), base) if ca else None,
        scope=scope,
    )
    t.done()
    kinds = [k for k in ("client_secret", "certificate_key", "pfx") if getattr(cfg, k)]
    if len(kinds) != 1:
        raise ConfigError(
            t.where,
            "give exactly one credential: client_secret, certificate_key (+ certificate) or pfx",
        )
    if cfg.certificate_key and not cfg.certificate:
        raise ConfigError(t.path("certificate"), "is required with certificate_key")
    return cfg


def _folders(t: Table, base: FolderRules | None = None) -> FolderRules:
    b = base or FolderRules()
    include = t.get("include", list)
    exclude = t.get("exclude", list)
    rename_raw = t.get("rename", list)
    classes = t.get("classes", list)
    rules = FolderRules(
        include=tuple(_regex(v, f"{t.path('include')}[{i}]") for i, v in enumerate(include))
        if include is not None
        else b.include,
        exclude=tuple(_regex(v, f"{t.path('exclude')}[{i}]") for i, v in enumerate(exclude))
        if exclude is not None
        else b.exclude,
        rename=tuple(_rename(v, f"{t.path('rename')}[{i}]") for i, v in enumerate(rename_raw))
        if rename_raw is not None
        else b.rename,
        target_root=_target_root(
            t.get("target_root", str, b.target_root).rstrip("/"), t.path("target_root")
        ),
        map_well_known=t.get("map_well_known", bool, b.map_well_known),
        classes=tuple(classes) if classes is not None else b.classes,
        skip_hidden=t.get("skip_hidden", bool, b.skip_hidden),
    )
    for i, c in enumerate(rules.classes):
        if c not in FOLDER_CLASSES:
            raise ConfigError(
                f"{t.path('classes')}[{i}]",
                f"unknown folder class {c!r}; one of {sorted(FOLDER_CLASSES)}",
            )
    t.done()
    return rules


def _rename(v: Any, where: str) -> RenameRule:
    t = Table(v, where)
    rule = RenameRule(
        _regex(t.get("from", str, required=True), f"{where}.from"), t.get("to", str, required=True)
    )
    t.done()
    try:
        rule.pattern.sub(rule.to, "/probe")
    except (re.error, IndexError) as exc:
        raise ConfigError(f"{where}.to", f"invalid replacement: {exc}") from None
    return rule


def _items(t: Table, base: ItemFilters | None = None) -> ItemFilters:
    b = base or ItemFilters()
    after = t.get("created_after", (str, date, datetime))
    before = t.get("created_before", (str, date, datetime))
    types = t.get("types", list)
    max_mb = t.get("max_size_mb", (int, float))
    f = ItemFilters(
        created_after=_date(after, t.path("created_after"))
        if after is not None
        else b.created_after,
        created_before=_date(before, t.path("created_before"))
        if before is not None
        else b.created_before,
        types=tuple(str(x) for x in types) if types is not None else b.types,
        max_size=int(max_mb * MB) if max_mb is not None else b.max_size,
    )
    if max_mb is not None and max_mb <= 0:
        raise ConfigError(t.path("max_size_mb"), "must be greater than 0")
    if f.created_after and f.created_before and f.created_after >= f.created_before:
        raise ConfigError(t.path("created_before"), "must be later than created_after")
    t.done()
    return f


def _limits(t: Table) -> Limits:
    d = Limits()
    lim = Limits(
        pairs_in_parallel=t.positive("pairs_in_parallel", int, d.pairs_in_parallel),
        in_flight_per_mailbox=t.positive("in_flight_per_mailbox", int, d.in_flight_per_mailbox),
        requests_per_window=t.positive("requests_per_window", int, d.requests_per_window),
        request_window_s=t.positive("request_window_s", float, d.request_window_s),
        upload_bytes_per_window=int(
            t.positive("upload_mb_per_window", float, d.upload_bytes_per_window / MB) * MB
        ),
        upload_window_s=t.positive("upload_window_s", float, d.upload_window_s),
        bytes_in_flight=int(t.positive("bytes_in_flight_mb", float, d.bytes_in_flight / MB) * MB),
        batch_items=t.positive("batch_items", int, d.batch_items),
        batch_bytes=int(t.positive("batch_mb", float, d.batch_bytes / MB) * MB),
        exporters_per_pair=t.positive("exporters_per_pair", int, d.exporters_per_pair),
        importers_per_pair=t.positive("importers_per_pair", int, d.importers_per_pair),
        connections=t.positive("connections", int, d.connections),
        drain_timeout_s=t.positive("drain_timeout_s", float, d.drain_timeout_s),
        retry_backoff_cap_s=t.positive("retry_backoff_cap_s", float, d.retry_backoff_cap_s),
        max_retry_after_s=t.positive("max_retry_after_s", float, d.max_retry_after_s),
        max_failed_items_per_pair=t.get("max_failed_items_per_pair", int, None),
        bwlimit_mb_s=t.get("bwlimit_mb_s", float, None),
    )
    if lim.bwlimit_mb_s is not None and lim.bwlimit_mb_s <= 0:
        raise ConfigError(t.path("bwlimit_mb_s"), "must be greater than 0 (leave it out: no cap)")
    if lim.max_failed_items_per_pair is not None and lim.max_failed_items_per_pair < 0:
        raise ConfigError(t.path("max_failed_items_per_pair"), "must be 0 or more")
    if lim.batch_items > 20:
        raise ConfigError(t.path("batch_items"), "exportItems takes at most 20 items")
    t.done()
    return lim


def _pairs(
    root: Table,
    base: Path,
    rules: FolderRules,
    filters: ItemFilters,
    consolidate: bool,
    schedule: Schedule | None = None,
) -> tuple[Pair, ...]:
    tz = schedule.timezone if schedule is not None else None  # local date-times read in it
    pairs: list[Pair] = []
    raw = root.get("pairs", list, [])
    for i, p in enumerate(raw):
        t = Table(p, f"pairs[{i}]")
        src = upn(t.get("source", str, required=True).strip(), t.path("source"))
        dst = upn(t.get("target", str, required=True).strip(), t.path("target"))
        fr = _folders(t.table("folders"), rules) if "folders" in p else rules
        itf = _items(t.table("items"), filters) if "items" in p else filters
        archive = t.get("archive", bool, False)
        wave = wave_label(t.get("wave", (int, str), ""))
        own = pair_controls(t, tz)
        t.done()
        pair = Pair(src, dst, fr, itf, archive, wave, origin=f"pairs[{i}]")
        pairs.append(replace(pair, **own))
    csv_path = root.get("pairs_csv", str)
    encoding = root.get("pairs_encoding", str)
    if encoding is not None:
        if csv_path is None:
            raise ConfigError("pairs_encoding", "is the encoding of pairs_csv, which is not set")
        encoding = check_encoding(encoding, "pairs_encoding")
    if csv_path is not None:
        if not csv_path.strip():
            raise ConfigError("pairs_csv", "must not be empty")
        path = _file(csv_path, "pairs_csv", base)
        rows = read_pairs_file(path, encoding)
        for r in rows:
            archive = bool(r.archive)
            pairs.append(Pair(r.source, r.target, rules, filters, archive, r.wave, origin=r.at))
        if not rows:  # a list saved empty by mistake, beside [[pairs]] too: never silent
            raise ConfigError(
                str(path),
                "is empty: no byte in it"
                if not path.stat().st_size
                else "holds no pair (a header, comments or empty rows only)",
            )
    if not pairs:
        raise ConfigError("pairs", "no mailbox pairs: give [[pairs]] and/or pairs_csv")
    pairs = _with_waves(
        root.table("waves"),
        pairs,
        [dict(pair_controls(Table(p, f"pairs[{i}]"), tz)) for i, p in enumerate(raw)],
        tz,
    )
    seen: dict[str, Pair] = {}
    writers: dict[str, Pair] = {}
    for p in pairs:
        if p.source.lower() == p.target.lower():
            raise ConfigError(
                p.origin,
                f"source and target are the same mailbox ({p.source}): a mailbox copied into "
                "itself grows on every run",
            )
        if p.key in seen:
            raise ConfigError(p.origin, f"duplicate of {seen[p.key].origin} ({p.key})")
        seen[p.key] = p
        tgt = p.target.lower()
        if tgt in writers and not consolidate:
            raise ConfigError(
                p.origin,
                f"target {p.target} is also the target of {writers[tgt].origin}: two sources "
                "would be merged into one mailbox; set [job] consolidate = true if that is "
                "intended",
            )
        writers.setdefault(tgt, p)
    return tuple(pairs)


# the keys of the operator's controls a pair's entry or its wave's table may give
CONTROL_KEYS = ("priority", "start_after", "complete_after")


def pair_controls(t: Table, tz: str | None = None) -> dict[str, Any]:
    """The controls ``t`` gives (a ``[[pairs]]`` entry or a ``[waves.<wave>]`` table), by
    field name; keys it does not give are absent. ``start_after`` and ``complete_after``
    are TOML date-times: with an offset, or local ones read in ``tz`` ([schedule] timezone)."""
    from .controls.schedule import aware  # controls imports the pipeline, which imports us

    out: dict[str, Any] = {}
    if "priority" in t.raw:
        out["priority"] = t.get("priority", int)
    for key in ("start_after", "complete_after"):
        if key in t.raw:
            t.used.add(key)
            out[key] = aware(t.raw[key], t.path(key), tz)
    return out


def _with_waves(
    waves: Table, pairs: list[Pair], own: list[dict[str, Any]], tz: str | None = None
) -> list[Pair]:
    """Each pair with its wave's controls (``[waves.<wave>]``) where its entry gives none."""
    known = {p.wave for p in pairs if p.wave}
    by_wave: dict[str, dict[str, Any]] = {}
    wave_at: dict[str, str] = {}  # a wave's table, as its keys are named
    for key in list(waves.raw):
        label = wave_label(key)
        if label not in known:
            raise ConfigError(
                waves.path(key),
                f"no pair is in wave {key!r} (the pairs' waves: "
                f"{', '.join(sorted(known)) or 'none'})",
            )
        t = waves.table(key)
        by_wave[label], wave_at[label] = pair_controls(t, tz), waves.path(key)
        t.done()
    waves.done()
    out = []
    for i, p in enumerate(pairs):
        given = own[i] if i < len(own) else {}  # [[pairs]] entries come first
        wave = {k: v for k, v in by_wave.get(p.wave, {}).items() if k not in given}
        out.append(replace(p, **wave) if wave else p)
        _times_in_order(out[-1], {k: wave_at[p.wave] for k in wave})
    return out


def _times_in_order(p: Pair, inherited: dict[str, str]) -> None:
    """A pair's ``start_after`` no later than its ``complete_after`` (a cutover can never
    come before the pair's first pass): refused naming where each came from (``inherited``:
    the wave's table a key came from, by key; the pair's own entry otherwise)."""
    start, done = p.start_after, p.complete_after
    if start is None or done is None or start <= done:
        return
    at = {k: inherited.get(k, p.origin) for k in ("start_after", "complete_after")}
    where = at["start_after"] if at["start_after"] == at["complete_after"] else p.origin

    def named(key: str, when: datetime) -> str:
        return f"{key} ({at[key]}.{key}: {when.isoformat(sep=' ', timespec='minutes')})"

    raise ConfigError(
        where,
        f"{named('start_after', start)} is later than {named('complete_after', done)}: no "
        "pass, so no cutover, can start before start_after; give a complete_after at or "
        "after it",
    )


def _schedule(root: Table) -> Schedule | None:
    """``[schedule]``, when the job has one."""
    from .controls.schedule import parse_schedule  # see pair_controls

    if "schedule" not in root.raw:
        return None
    t = root.table("schedule")
    t.used.update(t.raw)  # parse_schedule names what it does not know
    return parse_schedule(t.raw, t.where)


def _postgres_url(url: str, where: str) -> str:
    """A libpq URL without a password in it (the password goes by reference)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(where, f"not a valid postgresql:// URL ({exc})") from None
    if parts.password:
        raise ConfigError(
            where,
            "the URL holds a password: remove it and give [job] state_password = "
            '"env:NAME" or "file:PATH" (or use ~/.pgpass); configuration files get copied',
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(where, "needs a host and a database: postgresql://user@host:5432/db")
    del port
    return url


def _workers(t: Table) -> Workers:
    w = Workers(
        concurrency=t.positive("concurrency", int, Workers.concurrency),
        segment_minutes=t.positive("segment_minutes", float, Workers.segment_minutes),
        heartbeat_s=t.positive("heartbeat_s", float, Workers.heartbeat_s),
        stalled_after_s=t.positive("stalled_after_s", float, Workers.stalled_after_s),
        drain_timeout_s=t.positive("drain_timeout_s", float, Workers.drain_timeout_s),
    )
    if w.stalled_after_s <= w.heartbeat_s:
        raise ConfigError(t.path("stalled_after_s"), "must be longer than heartbeat_s")
    t.done()
    return w


def _sync(t: Table) -> SyncOptions:
    deletions = t.get("deletions", str, SyncOptions.deletions)
    if deletions not in ("keep", "mirror"):
        raise ConfigError(
            t.path("deletions"),
            f'must be "keep" or "mirror", not {deletions!r} (what a later pass does with '
            "the target's copy of an item deleted at the source)",
        )
    delta = t.get("delta", bool, SyncOptions.delta)
    t.done()
    return SyncOptions(deletions, delta)


def _tenant_table(root: Table, tenants: Table, side: str) -> Table:
    """``[tenants.<side>]``; missing, the table misspelt where it should be (``[tenants.sorce]``,
    ``[tenant.source]``) is named, else the table (it said the first key it lacks)."""
    if side not in tenants.raw:
        for table, key in ((tenants, side), (root, "tenants")):
            others = [str(k) for k in table.raw if k != key]
            near = difflib.get_close_matches(key, others, n=1, cutoff=0.75)
            if near:
                raise ConfigError(table.path(near[0]), f"unknown key; did you mean {key}?")
        raise ConfigError(
            tenants.path(side),
            f"missing: the [tenants.{side}] table (its tenant_id, client_id and credential; "
            "docs/configuration.md)",
        )
    return tenants.table(side)


def load_job(path: Path, resolve_secrets: bool = True, **overrides: Any) -> JobConfig:
    """Read and validate a job file; ConfigError names the key path on any problem."""
    raw = _read_toml(path)
    base = path.resolve().parent
    root = Table(raw, "")
    job = root.table("job")
    tenants = root.table("tenants")
    src = _tenant(_tenant_table(root, tenants, "source"), "source", base, resolve_secrets)
    dst = _tenant(_tenant_table(root, tenants, "target"), "target", base, resolve_secrets)
    tenants.done()
    rules = _folders(root.table("folders"))
    filters = _items(root.table("items"))
    consolidate = job.get("consolidate", bool, False)
    pairs = _pairs(root, base, rules, filters, consolidate, schedule := _schedule(root))
    limits = _limits(root.table("limits"))
    sync = _sync(root.table("sync"))
    emu = parse_emulator(root.table("emulator")) if "emulator" in raw else None
    fmt = job.get("log_format", str, JobConfig.log_format)
    if fmt not in ("auto", "json", "console"):
        raise ConfigError(job.path("log_format"), "must be auto, json or console")
    level = job.get("log_level", str, JobConfig.log_level)
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(job.path("log_level"), "must be debug, info, warning or error")
    name = job.get("name", str, "")
    state_s, report_s, default_state = _state_and_report(job, name or path.stem)
    state_url = None
    if state_s.startswith(("postgresql://", "postgres://")):
        state_url = _postgres_url(state_s, job.path("state"))
        state_s = default_state  # beside the job file: the embedded emulator's data only
    pw_ref = job.get("state_password", str)
    if pw_ref is not None and state_url is None:
        raise ConfigError(job.path("state_password"), "only for a postgresql:// state")
    # resolved even when the tenants' secrets are not (``status`` reads the state with it)
    state_password = resolve_secret(pw_ref, job.path("state_password"), base) if pw_ref else None
    workers = _workers(root.table("workers"))
    network = parse_network(root.table("network"), base, resolve_secrets)
    notify = parse_notify(root.table("notify"), base, resolve_secrets)
    state = job_path(state_s, job.path("state"), base)
    report = job_path(report_s, job.path("report"), base)
    keep = job.get("keep_reports", int, JobConfig.keep_reports)
    if keep < 1:
        raise ConfigError(job.path("keep_reports"), "must be at least 1")
    job.done()
    root.done()
    cfg = JobConfig(
        path=path,
        source=src,
        target=dst,
        pairs=pairs,
        limits=limits,
        state_path=state,
        report_path=report,
        log_format=fmt,
        log_level=level,
        emulator=emu,
        name=name,
        keep_reports=keep,
        consolidate=consolidate,
        sync=sync,
        state_url=state_url,
        state_password=state_password,
        workers=workers,
        network=network,
        notify=notify,
        schedule=schedule,
    )
    _check_across(cfg)
    if state_s == default_state and "state_path" not in overrides:
        _check_shared_state(cfg, base)
    return replace(cfg, **overrides) if overrides else cfg


def _read_toml(path: Path) -> dict[str, Any]:
    """The job file's TOML; ConfigError says what and where (file, or file:line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "configuration file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    text = decode_text(data, str(path))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # file:line, as every other refusal of a file says where (tomllib ends its message
        # with "(at line N, column M)")
        at = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        where = f"{path}:{at.group(1)}" if at else str(path)
        raise ConfigError(where, f"not valid TOML: {exc}") from None


def _state_and_report(job: Table, own: str) -> tuple[str, str, str]:
    """``[job] state`` and ``report`` as given, else the job's own (``own``: its name or its
    file's); and its own state's path."""
    default_state = f"{DEFAULT_DIR}/{job_file_name(own)}.state.sqlite"
    state = job.get("state", str, default_state)
    report = job.get("report", str, f"{DEFAULT_DIR}/{job_file_name(own)}.report.json")
    for key, value in (("state", state), ("report", report)):
        if not value.strip():
            raise ConfigError(job.path(key), "must be a file path, not empty")
    return state, report, default_state


def job_file_name(job: str) -> str:
    """``job`` (a job's name or its file's) as a file name: what a file name may not hold
    (``/``, ``:``, spaces, …) becomes ``-``."""
    return re.sub(r"[^\w.-]+", "-", job).strip("-.") or "job"


def _check_shared_state(cfg: JobConfig, base: Path) -> None:
    """A job file that had no state of its own yet, beside the one all the directory's job
    files shared before: which job's that is, only the operator knows."""
    shared = base / SHARED_STATE
    if cfg.state_url is not None or cfg.state_path.exists() or not shared.exists():
        return
    raise ConfigError(
        "job.state",
        f"each job file now has its own state ({cfg.state_path.name}), and {shared} is the "
        "one the job files of this directory shared before. If it is this job's, rename it: "
        f"mv {shared} {cfg.state_path} (and its -wal file, if there is one); or give this "
        "job another state with [job] state (or --state)",
    )


def _check_across(cfg: JobConfig) -> None:
    """What one table alone cannot tell: archives need Graph beta on both tenants, and a
    tenant on the emulator needs an ``[emulator]`` table."""
    for p in cfg.pairs:
        if p.archive:
            for t in (cfg.source, cfg.target):
                if t.graph_url.endswith("/v1.0"):
                    raise ConfigError(
                        f"{p.origin}.archive" if p.origin.startswith("pairs[") else p.origin,
                        f"archive mailboxes are reachable only on Graph beta; tenants.{t.name}"
                        f".graph_url is {t.graph_url} (use …/beta)",
                    )
    if cfg.needs_emulator and cfg.emulator is None:
        raise ConfigError(
            "emulator", "a tenant points at the emulator but there is no [emulator] section"
        )


def select_pairs(
    cfg: JobConfig, only: tuple[str, ...], waves: tuple[str, ...] = ()
) -> tuple[Pair, ...] | None:
    """The pairs of the waves ``waves`` (``--wave``) that ``only`` names by source or target
    (``--pair``): None (every pair) when neither narrows; a ConfigError when a wave has no
    pair or a name matches no pair (of those waves)."""
    if not only and not waves:
        return None
    pool = _in_waves(cfg.pairs, waves) if waves else cfg.pairs
    if not only:
        return pool
    wanted = {u.strip().lower() for u in only}
    chosen = tuple(p for p in pool if {p.source.lower(), p.target.lower()} & wanted)
    for pairs, why in (
        (cfg.pairs, "no pair of the job has this source or target"),
        (pool, f"its pair is in none of the waves given (--wave {' '.join(waves)})"),
    ):
        names = {u.lower() for p in pairs for u in (p.source, p.target)}
        missing = sorted(wanted - names)
        if missing:
            raise ConfigError(f"--pair {missing[0]}", why + near_names(missing[0], names))
    return chosen


def near_names(name: str, names: set[str]) -> str:
    """``; did you mean a, b?`` for the names most like ``name`` (nothing when none is)."""
    user = name.partition("@")[0]
    near = [  # a shared domain alone makes no two addresses alike
        n
        for n in difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
        if difflib.SequenceMatcher(None, user, n.partition("@")[0]).ratio() >= 0.6
    ]
    if not near:
        near = sorted(n for n in names if user and n.partition("@")[0] == user)[:3]
    return f"; did you mean {', '.join(near)}?" if near else ""


def _in_waves(pairs: tuple[Pair, ...], waves: tuple[str, ...]) -> tuple[Pair, ...]:
    known = sorted({p.wave for p in pairs if p.wave}, key=lambda w: (not w.isdigit(), w.zfill(9)))
    for given in waves:
        if not wave_label(given):
            raise ConfigError("--wave", "give a wave: its number or name, as the pairs have it")
        if not any(p.wave == wave_label(given) for p in pairs):
            hint = (
                f"the job's waves: {', '.join(known)}"
                if known
                else "no pair has a wave: give pairs_csv a wave column, or [[pairs]] wave = N"
            )
            raise ConfigError(f"--wave {given}", f"no pair is in this wave ({hint})")
    labels = {wave_label(w) for w in waves}
    return tuple(p for p in pairs if p.wave in labels)
