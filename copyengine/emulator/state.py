"""The whole mutable state of one emulator: directory, mailboxes, sessions, throttle, stats."""

from __future__ import annotations

import asyncio
import pickle
import random
import secrets
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .changes import Churn
from .config import EmulatorConfig, TenantConfig, UserConfig
from .expand import expand
from .faults import FaultRule, Faults
from .identity import (
    App,
    AppCertificate,
    Tenant,
    TokenService,
    generate_app_certificate,
    tenant_guid,
)
from .journal import Journal
from .removals import Removals
from .store import Mailbox, MailboxSpec, new_mailbox, seed_mailbox
from .throttle import Background, Limits, Throttle
from .triggers import Triggers


@dataclass
class ImportSession:
    token: str
    app: str
    mailbox: Mailbox
    expires: float  # wall clock
    version: str
    uploads: int = 0  # items imported through it (an expanded archive's sessions run out)


@dataclass(slots=True)
class Uploads:
    """Import bodies one mailbox's upload budget admitted, and the first and last arrival."""

    nbytes: int
    first: float
    last: float


MAX_ANSWERS = 200_000  # imports answered, kept with their time (the oldest dropped, counted)


class Stats:
    """What the emulator saw; served at ``/_emulator/stats``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.time()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.by_mailbox: Counter[str] = Counter()
        self.status_by_mailbox: Counter[tuple[str, int]] = Counter()
        self.throttled: Counter[str] = Counter()
        self.throttled_by_mailbox: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0
        self.inflight: Counter[str] = Counter()
        self.max_inflight: dict[str, int] = {}
        self.early: Counter[str] = Counter()
        self.retry_until: dict[tuple[str, str], tuple[float, float]] = {}
        self.token_requests: Counter[int] = Counter()
        self.latency: dict[str, list[float]] = {}
        self.first_seen: dict[str, float] = {}  # call -> monotonic time of its first arrival
        self.last_seen: dict[str, float] = {}
        # mailbox (UPN) -> the imports its upload budget admitted: what the budget counted of
        # the items, and over how long (benchmarks compare the span with the shortest any
        # client could need for those bytes; setup calls with a body, such as
        # createImportSession, would start the span before any item is ready)
        self.uploads: dict[str, Uploads] = {}
        # every import answered 200: (seconds since the reset, mailbox UPN, body bytes), in
        # the order answered, for benchmarks that measure spans without an import exactly
        # (a sampled counter only tells them to its sampling period); ``/stats/imports``
        self.t0 = time.monotonic()
        self.answers: deque[tuple[float, str, int]] = deque(maxlen=MAX_ANSWERS)
        self.answers_dropped = 0

    def answered(self, mailbox: str, nbytes: int) -> None:
        """An import into ``mailbox`` answered 200 now."""
        if len(self.answers) == self.answers.maxlen:
            self.answers_dropped += 1
        self.answers.append((time.monotonic() - self.t0, mailbox, nbytes))

    def answers_dict(self) -> dict[str, Any]:
        """The imports answered since the reset, per mailbox (UPN): ``[[t, bytes], ...]``
        in the order answered, ``t`` in seconds since the reset (the emulator's clock)."""
        out: dict[str, list[list[float]]] = {}
        for t, mbx, n in self.answers:
            out.setdefault(mbx, []).append([round(t, 6), n])
        return {"imports": out, "dropped": self.answers_dropped}

    def uploaded(self, mailbox: str, nbytes: int, now: float) -> None:
        u = self.uploads.get(mailbox)
        if u is None:
            self.uploads[mailbox] = Uploads(nbytes, now, now)
        else:
            u.nbytes += nbytes
            u.last = now

    def observe(self, call: str, seconds: float) -> None:
        now = time.monotonic()
        self.first_seen.setdefault(call, now - seconds)
        self.last_seen[call] = now - seconds
        samples = self.latency.setdefault(call, [])
        if len(samples) < 200_000:
            samples.append(seconds)

    def latency_ms(self) -> dict[str, dict[str, float]]:
        out = {}
        for call, xs in self.latency.items():
            s = sorted(xs)
            out[call] = {
                "n": len(s),
                "p50": round(1000 * s[len(s) // 2], 3),
                "p99": round(1000 * s[min(len(s) - 1, int(len(s) * 0.99))], 3),
            }
        return out

    def enter(self, mailbox: str) -> None:
        n = self.inflight[mailbox] + 1
        self.inflight[mailbox] = n
        if n > self.max_inflight.get(mailbox, 0):
            self.max_inflight[mailbox] = n

    def leave(self, mailbox: str) -> None:
        self.inflight[mailbox] -= 1

    def as_dict(self) -> dict[str, Any]:
        by_call: dict[str, dict[str, int]] = {}
        for (call, status), n in self.requests.items():
            by_call.setdefault(call, {})[str(status)] = n
        by_mbx: dict[str, dict[str, int]] = {}
        for (mbx, status), n in self.status_by_mailbox.items():
            by_mbx.setdefault(mbx, {})[str(status)] = n
        total = sum(self.requests.values())
        return {
            "since": self.started,
            "total_requests": total,
            "requests": by_call,
            "requests_by_mailbox": dict(self.by_mailbox),
            "status_by_mailbox": by_mbx,
            "throttled": dict(self.throttled),
            "throttled_total": sum(self.throttled.values()),
            "throttled_by_mailbox": dict(self.throttled_by_mailbox),
            "early_requests": dict(self.early),
            "faults": dict(self.faults),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "max_inflight": dict(self.max_inflight),
            "token_requests": {str(k): v for k, v in self.token_requests.items()},
            "latency_ms": self.latency_ms(),
            "uploads_by_mailbox": {
                m: {"bytes": u.nbytes, "span_s": round(u.last - u.first, 4)}
                for m, u in self.uploads.items()
            },
        }


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.limits: Limits = config.make_limits()
        self.throttle = Throttle(self.limits)
        self.tokens = TokenService(config.token_lifetime)
        self.stats = Stats()
        self.removals = Removals()  # what Graph calls deleted (removals.py)
        self.triggers = Triggers()  # owner changes timed to a call (triggers.py)
        self.faults = Faults([FaultRule.parse(f) for f in config.faults], seed=config.seed)
        self.rng = random.Random(config.seed)
        self.mailboxes: dict[str, Mailbox] = {}  # by id
        self.sessions: dict[str, ImportSession] = {}
        if config.state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="copyengine-emulator-")
            self.state_dir = Path(self._tmp.name)
        else:
            self.state_dir = config.state_dir
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self._saved: dict[str, Mailbox] = self._load_saved()
        # Durability across a crash: every change journaled beside the snapshot (journal.py)
        self.journal: Journal | None = None
        self._pending: dict[str, list[tuple[tuple[Any, ...], int, int]]] = {}
        if config.persist is not None:
            jpath = config.persist.with_name(config.persist.name + ".journal")
            self._pending = Journal.read(jpath)
            keys = config.persist.with_name(config.persist.name + ".signing")
            self.journal = None if config.persist_read_only else Journal(jpath)
            self.tokens.use_key_file(keys, write=not config.persist_read_only)
        for t in config.tenants:
            self.add_tenant(t)
        if config.background_upload is not None:
            self.set_background(Background.parse(config.background_upload))

    def set_background(self, bg: Background) -> None:
        """Another writer in the mailboxes it names (UPNs or ids; every mailbox when it
        names none) spends ``share`` of each one's upload budget."""
        if bg.mailboxes is not None:
            shares = {}
            for ref in bg.mailboxes:
                m = self.mailbox(ref)
                if m is None:
                    raise ValueError(f"background_upload.mailboxes: no mailbox {ref!r}")
                shares[m.id] = bg.share
            bg = replace(bg, shares=shares)
        self.throttle.background = bg

    # -- churn -------------------------------------------------------------------------------
    churn: Churn | None = None
    _churn_task: asyncio.Task[None] | None = None

    def start_churn(self, spec: dict[str, Any]) -> None:
        """Change the given mailboxes at ``rate`` changes per second while the emulator runs
        (``[emulator] churn`` or ``PUT /_emulator/churn``). Rate 0 is off: a churn running
        is stopped (as ``DELETE /_emulator/churn`` does), and nothing else is asked of the
        spec; whether a churn runs after this is ``self.churn is not None``."""
        rate = float(spec.get("rate", 1.0))
        if not 0 <= rate <= 10_000:  # (NaN fails both)
            raise ValueError("churn.rate: changes per second, 0 (off) to 10000")
        if rate == 0:
            self.stop_churn()
            return
        boxes = [self.mailbox(str(m)) for m in spec.get("mailboxes", [])]
        if not boxes or any(b is None for b in boxes):
            raise ValueError("churn.mailboxes: give existing mailboxes (UPNs or ids)")
        mix = {str(k): float(v) for k, v in spec.get("mix", {}).items()}
        unknown = set(mix) - {"add", "modify", "delete", "move"}
        if unknown:
            raise ValueError(f"churn.mix: unknown change {sorted(unknown)[0]!r}")
        self.stop_churn()
        churn = Churn([b for b in boxes if b is not None], rate, seed=int(spec.get("seed", 0)))
        if mix:
            churn.mix = mix
        self.churn = churn
        self._churn_task = asyncio.get_running_loop().create_task(churn.run())

    def stop_churn(self) -> None:
        if self._churn_task is not None:
            self._churn_task.cancel()
        self._churn_task = None
        self.churn = None

    # -- persistence ---------------------------------------------------------------------------
    def _load_saved(self) -> dict[str, Mailbox]:
        path = self.config.persist
        if path is None or not path.exists():
            return {}
        with path.open("rb") as fh:
            saved = pickle.load(fh)
        return saved if isinstance(saved, dict) else {}

    def save(self) -> None:
        """Write every mailbox to ``config.persist`` (atomically)."""
        path = self.config.persist
        if path is None or self.config.persist_read_only:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))  # deep folder trees; restored below
        try:
            with tmp.open("wb") as fh:
                pickle.dump(
                    {
                        _saved_key(m.tenant_id, m.upn, m.is_archive): m
                        for m in self.mailboxes.values()
                        if m.aux_of is None  # an auxiliary is saved with its archive
                    },
                    fh,
                    protocol=pickle.HIGHEST_PROTOCOL,
                )
        finally:
            sys.setrecursionlimit(limit)
        tmp.replace(path)
        if self.journal is not None:
            self.journal.truncate()  # the snapshot holds it all now

    # -- directory ---------------------------------------------------------------------------
    def add_tenant(self, tc: TenantConfig) -> Tenant:
        tid = tc.id or tenant_guid(tc.name)
        tenant = self.tokens.tenant(tid)
        if tenant is None:
            tenant = Tenant(id=tid, name=tc.name, domain=tc.domain)
            self.tokens.add_tenant(tenant)
        for ac in tc.apps:
            app = App(
                client_id=ac.client_id,
                display_name=ac.name,
                roles=ac.roles,
                secret=ac.secret,
                scope=frozenset(ac.mailboxes) if ac.mailboxes is not None else None,
            )
            if ac.certificate == "generate":
                app.key_path, app.cert_path, pem = generate_app_certificate(
                    ac.client_id, self.state_dir / "apps"
                )
                app.certificates.append(AppCertificate.load(pem))
            elif ac.certificate:
                pem = Path(ac.certificate).read_bytes()
                app.cert_path = Path(ac.certificate)
                app.certificates.append(AppCertificate.load(pem))
            tenant.apps[app.client_id] = app
        for uc in tc.users:
            self.add_user(tenant, uc)
        return tenant

    def add_user(self, tenant: Tenant, uc: UserConfig) -> Mailbox:
        key = uc.upn.lower()
        if key in tenant.users:
            raise ValueError(f"user {uc.upn} already exists in tenant {tenant.name}")
        mbx = self._restore_or_seed(tenant, uc.upn, uc.mailbox, archive=False)
        if uc.archive is not None:
            arch = self._restore_or_seed(tenant, uc.upn, uc.archive, archive=True)
            mbx.archive_id = arch.id
            self.mailboxes[arch.id] = arch
            if uc.expanded is not None:
                try:
                    aux = expand(arch, uc.expanded)
                except ValueError as exc:
                    raise ValueError(f"{uc.upn}: archive.{exc}") from exc
                self.mailboxes[aux.id] = aux
        tenant.users[key] = mbx
        self.mailboxes[mbx.id] = mbx
        return mbx

    def _restore_or_seed(
        self, tenant: Tenant, upn: str, spec: MailboxSpec, *, archive: bool
    ) -> Mailbox:
        saved = self._saved.pop(_saved_key(tenant.id, upn, archive), None)
        mbx = saved or new_mailbox(tenant.id, upn, archive=archive)
        if saved is None:
            seed_mailbox(mbx, spec)
        if self.journal is not None:
            for record, seq, counter in self._pending.pop(mbx.id, []):
                mbx.replay(record, seq, counter)
            mbx.attach_journal(self.journal.write)
        return mbx

    def mailbox(self, ref: str) -> Mailbox | None:
        """By mailbox id or by UPN."""
        m = self.mailboxes.get(ref)
        if m is not None:
            return m
        low = ref.lower()
        for t in self.tokens.tenants.values():
            if low in t.users:
                return t.users[low]
        return None

    def require_mailbox(self, ref: str) -> Mailbox:
        """Like ``mailbox``, for callers that know it exists (tests, benchmarks)."""
        m = self.mailbox(ref)
        if m is None:
            raise KeyError(f"no mailbox {ref!r}")
        return m

    def directory(self) -> dict[str, Any]:
        return {
            "tenants": [
                {
                    "id": t.id,
                    "name": t.name,
                    "domain": t.domain,
                    "apps": [
                        {
                            "client_id": a.client_id,
                            "name": a.display_name,
                            "roles": list(a.roles),
                            "has_secret": a.secret is not None,
                            "certificate_path": str(a.cert_path) if a.cert_path else None,
                            "private_key_path": str(a.key_path) if a.key_path else None,
                        }
                        for a in t.apps.values()
                    ],
                    "users": [
                        {"upn": m.upn, "mailboxId": m.id, "items": len(m.items)}
                        for m in t.users.values()
                    ],
                }
                for t in self.tokens.tenants.values()
            ]
        }

    # -- import sessions ---------------------------------------------------------------------
    def new_session(self, app: str, mbx: Mailbox, version: str) -> ImportSession:
        s = ImportSession(
            token=secrets.token_urlsafe(32),
            app=app,
            mailbox=mbx,
            expires=time.time() + self.config.session_lifetime,
            version=version,
        )
        self.sessions[s.token] = s
        if len(self.sessions) > 5000:
            now = time.time()
            for tok, old in list(self.sessions.items()):
                if old.expires < now:
                    del self.sessions[tok]
        return s

    def session(self, token: str) -> ImportSession | None:
        s = self.sessions.get(token)
        if s is None or s.expires <= time.time():
            return None
        return s

    def expire_sessions(self, mailbox_id: str | None = None) -> int:
        n = 0
        for tok, s in list(self.sessions.items()):
            if mailbox_id is None or s.mailbox.id == mailbox_id:
                del self.sessions[tok]
                n += 1
        return n

    def set_limits(self, limits: Limits) -> None:
        self.limits = limits
        self.throttle.limits = limits


def _saved_key(tenant_id: str, upn: str, archive: bool) -> str:
    return f"{tenant_id}/{upn.lower()}" + ("#archive" if archive else "")
