"""The emulator a job starts itself when a tenant says ``graph_url = "emulator"``: the process.

It runs in its own process (the copy engine keeps its core), with a directory built from the
job: each emulated tenant gets the job's app registration with the job's own credential, and
the mailboxes listed under ``[emulator]``. The process is stopped by PID when the job ends and
dies with its parent.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import JobConfig, TenantConfig
from ..emulator.process import EmulatorStartError, emulator_process
from ..errors import ConfigError, CopyEngineError, StateError
from .schema import emulator_user

READY_TIMEOUT = 120.0


def emulator_config(cfg: JobConfig, state_dir: Path, read_only: bool = False) -> dict[str, Any]:
    emu = cfg.emulator
    assert emu is not None
    tenants: dict[str, dict[str, Any]] = {}
    for t in (cfg.source, cfg.target):
        if not t.uses_emulator:
            continue
        entry = tenants.setdefault(
            t.tenant_id.lower(),
            {"name": t.tenant_id, "domain": t.tenant_id, "apps": [], "users": []},
        )
        app: dict[str, Any] = {"client_id": t.client_id, "name": f"copyengine-{t.name}"}
        if t.client_secret is not None:
            app["secret"] = t.client_secret.reveal()
        elif t.certificate is not None:
            app["certificate"] = str(t.certificate)
        else:
            raise ConfigError(
                f"tenants.{t.name}",
                "the embedded emulator supports client secrets and PEM certificates",
            )
        if all(a["client_id"] != t.client_id for a in entry["apps"]):
            entry["apps"].append(app)
    for i, m in enumerate(emu.mailboxes):
        domain = m.upn.split("@")[-1].lower()
        if domain not in tenants:
            raise ConfigError(
                f"emulator.mailboxes[{i}].upn",
                f"no emulated tenant has the domain {domain!r} (tenant_id) of {m.upn}",
            )
        tenants[domain]["users"].append(emulator_user(m.upn, m.spec))
    return {
        "emulator": {
            "profile": emu.profile,
            "time_scale": emu.time_scale,
            "seed": emu.seed,
            "tls": emu.tls,
            "limits": emu.limits,
            "state_dir": str(state_dir),
            "persist": str(saved_data(cfg)),
            "persist_read_only": read_only,
            "session_lifetime": emu.session_lifetime,
            "token_lifetime": emu.token_lifetime,
            "background_upload": emu.background_upload,
        },
        "tenants": list(tenants.values()),
        "faults": list(emu.faults),
    }


def saved_data(cfg: JobConfig) -> Path:
    """Where the embedded emulator keeps its mailboxes between commands: beside the state."""
    return cfg.state_path.with_suffix(".emulator.pickle")


def point_at(t: TenantConfig, ready: dict[str, Any]) -> TenantConfig:
    if not t.uses_emulator:
        return t
    ca = Path(ready["ca_cert"]) if ready.get("ca_cert") else None
    return replace(t, graph_url=ready["graph_url"], authority=ready["authority_url"], ca_bundle=ca)


@contextmanager
def embedded_emulator(
    cfg: JobConfig, read_only: bool = False
) -> Iterator[tuple[JobConfig, dict[str, Any], int]]:
    """Start the job's emulator; yield the job config pointed at it, the ready info and PID.
    ``read_only``: it starts from what earlier runs left beside the state and writes nothing
    there (``plan``, ``doctor``, ``verify``)."""
    if not read_only:  # its data lives beside the state: a folder that cannot be made is
        _state_folder(cfg)  # the state's problem, said so, not the emulator's exception
    with tempfile.TemporaryDirectory(prefix="copyengine-emulator-") as tmp:
        tmpdir = Path(tmp)
        conf = tmpdir / "emulator.json"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(emulator_config(cfg, tmpdir / "state", read_only), fh)
        log_path = tmpdir / "emulator.log"
        with log_path.open("wb") as log:
            try:
                with emulator_process(
                    conf, tmpdir / "ready.json", log, READY_TIMEOUT, log_path
                ) as (info, pid):
                    pointed = replace(
                        cfg, source=point_at(cfg.source, info), target=point_at(cfg.target, info)
                    )
                    yield pointed, info, pid
            except EmulatorStartError as exc:
                raise CopyEngineError(f"the embedded emulator: {exc}") from None


def _state_folder(cfg: JobConfig) -> None:
    """The folder of the job's state (and of the emulator's data beside it), made now; one
    that cannot be is a StateError (exit 5) naming the state, as a run without the emulator
    says it."""
    folder = cfg.state_path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = (
            "a file is in the way"
            if isinstance(exc, FileExistsError | NotADirectoryError)
            else (exc.strerror or str(exc))
        )
        raise StateError(
            f"cannot make the folder {folder} of the state store {cfg.state_path} "
            f"([job] state, or --state): {why}"
        ) from None
