"""Emulator configuration: profile, lifetimes, tenants, apps and users (TOML)."""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .expand import ExpandSpec, check_folders
from .faults import FaultRule
from .identity import ALL_ROLES
from .store import MailboxSpec
from .throttle import Background, Limits


class EmulatorConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AppConfig:
    client_id: str
    name: str = "copyengine"
    secret: str | None = None
    certificate: str | None = None  # "generate" or a path to a PEM certificate
    roles: tuple[str, ...] = ALL_ROLES
    # Exchange RBAC for Applications: the grant is scoped to these mailboxes (UPNs); None is
    # an unscoped grant. Outside the scope every mailbox call answers 403 ErrorAccessDenied.
    mailboxes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UserConfig:
    upn: str
    mailbox: MailboxSpec = field(default_factory=MailboxSpec)
    archive: MailboxSpec | None = None  # an in-place archive (reachable on /beta only)
    # the archive auto-expanded: an auxiliary archive holds some folders' items (expand.py)
    expanded: ExpandSpec | None = None


@dataclass(frozen=True)
class TenantConfig:
    name: str
    domain: str
    id: str | None = None
    apps: tuple[AppConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()


@dataclass(frozen=True)
class EmulatorConfig:
    profile: str = "exchange"
    time_scale: float = 60.0
    limits: dict[str, Any] = field(default_factory=dict)
    token_lifetime: float = 3600.0
    session_lifetime: float = 900.0
    delta_token_ttl: float = 7 * 86400.0
    max_body_bytes: int = 150 * 1024 * 1024
    default_page_size: int = 10
    shuffle_exports: bool = True
    # EMULATOR CHOICE: ``listItems`` without ``$orderby`` lists a folder's items oldest
    # first; ``true`` lists them newest first (as mail clients show them). The contract says
    # no order: a client must list every item there throughout the listing, once, in either
    newest_first: bool = False
    tls: bool = True
    state_dir: Path | None = None
    # Where mailboxes are saved when the emulator stops and loaded from when it starts, so
    # that successive runs of a job see the same tenants (None: nothing persists).
    persist: Path | None = None
    # read what ``persist`` holds (mailboxes, journal, signing key, CA) but write nothing
    # there: an embedded emulator under ``plan``, ``doctor`` or ``verify``
    persist_read_only: bool = False
    seed: int = 0
    tenants: tuple[TenantConfig, ...] = ()
    faults: tuple[dict[str, Any], ...] = ()
    # a seeded churn started with the service: {"rate", "mailboxes", "mix", "seed"}
    churn: dict[str, Any] | None = None
    # another writer in the mailboxes: 0.5, or {share = 0.5, mailboxes = [upn, ...]}
    background_upload: Any = None

    def make_limits(self) -> Limits:
        check_limits(self.limits)
        try:
            return Limits.profile(self.profile, self.time_scale, **self.limits)
        except TypeError as exc:
            raise EmulatorConfigError(f"emulator.limits: {exc}") from exc
        except ValueError as exc:
            raise EmulatorConfigError(f"emulator.profile: {exc}") from exc


# the rules a profile may do without (``None``: not enforced); every other rule is a number
OPTIONAL_RULES = {"concurrency", "requests", "upload_bytes", "app_requests"}
# the rules that may be 0 (latencies and the concurrency 429's Retry-After)
ZERO_RULES = {"concurrency_retry_after", "latency_base", "latency_per_mb", "latency_jitter"}


def check_limits(raw: dict[str, Any]) -> None:
    """``limits`` overrides: known rules, each a finite number (a count or budget, a window
    greater than 0; a latency at least 0), or ``None`` for a rule that can be off."""
    known = sorted(f for f in Limits.__dataclass_fields__ if f != "name")
    for key, value in raw.items():
        where = f"emulator.limits.{key}"
        if key not in known:
            raise EmulatorConfigError(f"{where}: unknown rule; known: {', '.join(known)}")
        if value is None and key in OPTIONAL_RULES:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            off = " or null (not enforced)" if key in OPTIONAL_RULES else ""
            raise EmulatorConfigError(f"{where}: must be a number{off}, not {value!r}")
        low = 0 if key in ZERO_RULES else None
        if not math.isfinite(value) or (value < 0 if low == 0 else value <= 0):
            bound = "at least 0" if low == 0 else "greater than 0"
            raise EmulatorConfigError(f"{where}: must be a finite number {bound}, not {value!r}")


def _take(raw: dict[str, Any], where: str, allowed: set[str]) -> None:
    extra = set(raw) - allowed
    if extra:
        raise EmulatorConfigError(f"{where}: unknown keys {sorted(extra)}")


def parse_user(raw: dict[str, Any], where: str) -> UserConfig:
    _take(raw, where, {"upn", "mailbox", "archive"})
    if "upn" not in raw or "@" not in str(raw["upn"]):
        raise EmulatorConfigError(f"{where}.upn: a user principal name is required")
    try:
        spec = MailboxSpec.parse(raw.get("mailbox"))
    except (TypeError, ValueError) as exc:
        raise EmulatorConfigError(f"{where}.mailbox: {exc}") from exc
    archive = raw.get("archive")
    expanded = None
    if isinstance(archive, dict) and "expanded" in archive:
        archive = dict(archive)
        try:
            expanded = ExpandSpec.parse(archive.pop("expanded"))
        except (TypeError, ValueError) as exc:
            raise EmulatorConfigError(f"{where}.archive.{exc}") from exc
    try:
        arch = (
            None
            if archive in (None, False)
            else MailboxSpec.parse({"layout": "flat"} if archive is True else archive)
        )
    except (TypeError, ValueError) as exc:
        raise EmulatorConfigError(f"{where}.archive: {exc}") from exc
    if expanded is not None and arch is not None:
        try:
            check_folders(arch, expanded, str(raw["upn"]))
        except ValueError as exc:
            raise EmulatorConfigError(f"{where}.archive.{exc}") from exc
    return UserConfig(upn=str(raw["upn"]), mailbox=spec, archive=arch, expanded=expanded)


def parse_tenant(raw: dict[str, Any], where: str) -> TenantConfig:
    _take(raw, where, {"name", "domain", "id", "apps", "users", "user_sets"})
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise EmulatorConfigError(f"{where}.name: required")
    domain = str(raw.get("domain", f"{name}.example"))
    apps = []
    for i, a in enumerate(raw.get("apps", [])):
        w = f"{where}.apps[{i}]"
        _take(a, w, {"client_id", "name", "secret", "certificate", "roles", "mailboxes"})
        if "client_id" not in a:
            raise EmulatorConfigError(f"{w}.client_id: required")
        roles = tuple(a.get("roles", ALL_ROLES))
        unknown = set(roles) - set(ALL_ROLES)
        if unknown:
            raise EmulatorConfigError(f"{w}.roles: unknown permissions {sorted(unknown)}")
        apps.append(
            AppConfig(
                client_id=str(a["client_id"]),
                name=str(a.get("name", "copyengine")),
                secret=a.get("secret"),
                certificate=a.get("certificate"),
                roles=roles,
                mailboxes=tuple(str(m).lower() for m in a["mailboxes"])
                if a.get("mailboxes") is not None
                else None,
            )
        )
    users = [parse_user(u, f"{where}.users[{i}]") for i, u in enumerate(raw.get("users", []))]
    for i, s in enumerate(raw.get("user_sets", [])):
        w = f"{where}.user_sets[{i}]"
        _take(s, w, {"prefix", "count", "mailbox", "start"})
        start = int(s.get("start", 1))
        for n in range(start, start + int(s.get("count", 1))):
            users.append(
                parse_user(
                    {
                        "upn": f"{s.get('prefix', 'user')}{n:04d}@{domain}",
                        "mailbox": s.get("mailbox"),
                    },
                    w,
                )
            )
    return TenantConfig(
        name=name, domain=domain, id=raw.get("id"), apps=tuple(apps), users=tuple(users)
    )


def parse_config(raw: dict[str, Any], base_dir: Path | None = None) -> EmulatorConfig:
    _take(raw, "<root>", {"emulator", "tenants", "faults"})
    emu = dict(raw.get("emulator", {}))
    allowed = set(EmulatorConfig.__dataclass_fields__) - {"tenants", "faults"}
    _take(emu, "emulator", allowed)
    for key in ("state_dir", "persist"):
        if emu.get(key):
            p = Path(emu[key])
            emu[key] = p if p.is_absolute() or base_dir is None else base_dir / p
    tenants = tuple(parse_tenant(t, f"tenants[{i}]") for i, t in enumerate(raw.get("tenants", [])))
    faults = tuple(raw.get("faults", []))
    for i, f in enumerate(faults):
        try:
            FaultRule.parse(f)
        except (TypeError, ValueError) as exc:
            raise EmulatorConfigError(f"faults[{i}]: {exc}") from exc
    try:
        cfg = EmulatorConfig(tenants=tenants, faults=faults, **emu)
    except TypeError as exc:
        raise EmulatorConfigError(f"emulator: {exc}") from exc
    cfg.make_limits()
    if cfg.background_upload is not None:
        try:
            Background.parse(cfg.background_upload)
        except ValueError as exc:
            raise EmulatorConfigError(f"emulator.background_upload: {exc}") from exc
    return cfg


def load_config(path: Path) -> EmulatorConfig:
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except FileNotFoundError as exc:
        raise EmulatorConfigError(f"{path}: file not found") from exc
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise EmulatorConfigError(f"{path}: {exc}") from exc
    return parse_config(raw, path.parent)
