"""The job file's ``[emulator]`` table: the emulator a job starts itself when a tenant says
``graph_url = "emulator"`` (profile, time scale, mailboxes, faults, limits). Checked at load by
the emulator's own parser, whose errors are re-issued with the job's key path so that a typo
reads like every other configuration error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..textfiles import Table, upn


@dataclass(frozen=True)
class EmulatorMailbox:
    upn: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class EmbeddedEmulator:
    profile: str = "exchange"
    time_scale: float = 60.0
    seed: int = 0
    tls: bool = True
    mailboxes: tuple[EmulatorMailbox, ...] = ()
    faults: tuple[dict[str, Any], ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    session_lifetime: float = 900.0
    token_lifetime: float = 3600.0
    background_upload: Any = None  # another writer in the mailboxes (docs/emulator.md)


def parse_emulator(t: Table) -> EmbeddedEmulator:
    """The job's ``[emulator]`` table, checked by the emulator's own parser (imported only
    for a job that has the table: the engine does not load the emulator otherwise)."""
    from ..emulator.config import EmulatorConfigError, parse_config, parse_user

    boxes = []
    for i, m in enumerate(t.get("mailboxes", list, [])):
        where = f"{t.path('mailboxes')}[{i}]"
        mt = Table(m, where)
        name = upn(mt.get("upn", str, required=True), mt.path("upn"))
        spec = {k: v for k, v in m.items() if k != "upn"}
        mt.used.update(spec)
        try:
            parse_user(emulator_user(name, spec), where)
        except EmulatorConfigError as exc:
            # the UPN too: a position is hard to find in a list of hundreds
            raise ConfigError(where, f"{_message(exc, where)} (mailbox {name})") from None
        boxes.append(EmulatorMailbox(name, spec))
    faults = tuple(t.get("faults", list, []))
    d = EmbeddedEmulator()
    e = EmbeddedEmulator(
        profile=t.get("profile", str, d.profile),
        time_scale=t.positive("time_scale", float, d.time_scale),
        seed=t.get("seed", int, d.seed),
        tls=t.get("tls", bool, d.tls),
        mailboxes=tuple(boxes),
        faults=faults,
        limits=t.get("limits", dict, {}),
        session_lifetime=t.positive("session_lifetime", float, d.session_lifetime),
        token_lifetime=t.positive("token_lifetime", float, d.token_lifetime),
        background_upload=t.get("background_upload", (float, int, dict), None),
    )
    t.done()
    try:
        parse_config(
            {
                "emulator": {
                    "profile": e.profile,
                    "time_scale": e.time_scale,
                    "limits": e.limits,
                    "background_upload": e.background_upload,
                },
                "faults": list(e.faults),
            }
        )
    except EmulatorConfigError as exc:
        where, sep, message = str(exc).partition(": ")
        if not sep or not where.startswith(("emulator", "faults")):
            where, message = t.where, str(exc)
        if where.startswith("faults"):
            where = f"{t.where}.{where}"
        raise ConfigError(where, _message(Exception(message), "")) from None
    _check_background_mailboxes(t, e)
    return e


def _check_background_mailboxes(t: Table, e: EmbeddedEmulator) -> None:
    """The other writer's ``mailboxes`` given by UPN must be the job's emulated mailboxes
    (a mailbox id, ``MBX:…``, is the emulator's to resolve)."""
    bg = e.background_upload
    names = bg.get("mailboxes") if isinstance(bg, dict) else None
    known = {m.upn.lower() for m in e.mailboxes}
    for i, ref in enumerate(names or ()):
        if not str(ref).startswith("MBX:") and str(ref).lower() not in known:
            raise ConfigError(
                f"{t.path('background_upload')}.mailboxes[{i}]",
                f"no mailbox {ref!r} among [emulator] mailboxes",
            )


def emulator_user(upn: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An ``[emulator] mailboxes`` entry as the emulator's directory takes it: ``archive``
    (true, or a mailbox spec) gives the user an in-place archive."""
    mailbox = {k: v for k, v in spec.items() if k != "archive"}
    user: dict[str, Any] = {"upn": upn, "mailbox": mailbox}
    if "archive" in spec:
        user["archive"] = spec["archive"]
    return user


def _message(exc: Exception, where: str) -> str:
    text = str(exc)
    if where and text.startswith(where):
        text = text[len(where) :].lstrip(".: ")
    return text
