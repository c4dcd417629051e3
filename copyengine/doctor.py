"""``copyengine doctor``: a preflight for every tenant and pair, days before the migration
(Exchange applies permission changes 30 minutes to 2 hours late). Nothing is written: each
permission is probed by a call that needs it and changes nothing (listing folders and items,
exporting one item, creating an import session, which writes no item).

Least privilege (contract §7, §8): sources need folder read, item read and export; targets
need folder write, import/export, and item read (settlement and verify). The token's
``roles`` are compared with that set: what is missing, and what is granted beyond it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from .clouds import describe
from .config import JobConfig, Pair
from .exitcodes import ExitCode
from .failures import classify
from .graph import Clients, GraphClient
from .survey.mailboxes import resolved

NEED = {
    "source": {
        "User.Read.All",
        "MailboxFolder.Read.All",
        "MailboxItem.Read.All",
        "MailboxItem.Export.All",
    },
    "target": {
        "User.Read.All",
        "MailboxFolder.ReadWrite.All",
        "MailboxItem.Read.All",
        "MailboxItem.ImportExport.All",
    },
}
# a broader permission grants the narrower one
IMPLIES = {
    "MailboxFolder.ReadWrite.All": {"MailboxFolder.Read.All"},
    "MailboxItem.ImportExport.All": {"MailboxItem.Export.All"},
}


def granted_roles(token: str) -> set[str]:
    """The ``roles`` claim of an access token (read, not verified: it is our own token)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return set()
    return {str(r) for r in claims.get("roles", [])}


def least_privilege(side: str, granted: set[str]) -> tuple[list[str], list[str]]:
    """(missing, excess) for one side's app against what the job needs."""
    effective = set(granted)
    for g in granted:
        effective |= IMPLIES.get(g, set())
    need = NEED[side]
    missing = sorted(need - effective)
    covered = set(need)
    for n in need:
        covered |= IMPLIES.get(n, set())
    excess = sorted(g for g in granted if g not in covered)
    return missing, excess


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""
    exit_code: int | None = None  # the failure's verdict, when it failed


@dataclass
class PairDoctor:
    source: str
    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "checks": [c.__dict__ for c in self.checks],
        }


async def _probe(out: PairDoctor, what: str, call: Any) -> Any:
    try:
        result = await call
    except Exception as exc:
        verdict = classify(exc)
        if verdict.job_wide:
            raise
        out.checks.append(Check(what, False, verdict.message, int(verdict.code)))
        return None
    out.checks.append(Check(what, True))
    return result


async def doctor_pair(src: GraphClient, dst: GraphClient, pair: Pair) -> PairDoctor:
    out = PairDoctor(pair.source, pair.target)
    s = await _probe(out, f"resolve source {pair.source}", resolved(src, pair, "source"))
    d = await _probe(out, f"resolve target {pair.target}", resolved(dst, pair, "target"))
    if s is not None:
        await _probe(out, "source: list folders", src.get_folder(s.primary_id, "inbox"))
        first = await _probe(out, "source: list items", _first_item(src, s.primary_id))
        if first is not None:
            await _probe(out, "source: export one item", _export(src, s.primary_id, first))
        if pair.archive:
            out.checks.append(
                Check(
                    "source: in-place archive",
                    s.archive_id is not None,
                    ""
                    if s.archive_id
                    else "the source has no archive, and the pair asks for archive = true",
                )
            )
    if d is not None:
        await _probe(out, "target: list folders", dst.get_folder(d.primary_id, "inbox"))
        await _probe(out, "target: list items", _first_item(dst, d.primary_id))
        await _probe(
            out, "target: create an import session", dst.create_import_session(d.primary_id)
        )
        if pair.archive:
            out.checks.append(
                Check(
                    "target: in-place archive",
                    d.archive_id is not None,
                    ""
                    if d.archive_id
                    else "the target has no archive, and the pair asks for archive = true",
                )
            )
    return out


async def _first_item(api: GraphClient, mailbox_id: str) -> str | None:
    async for page in api.list_items(mailbox_id, "inbox", page_size=1):
        return page[0].id if page else None
    return None


async def _export(api: GraphClient, mailbox_id: str, item_id: str) -> None:
    (row,) = await api.export_items(mailbox_id, [item_id])
    if not row.ok:
        raise RuntimeError(f"exportItems: {row.error_code}: {row.error_message}")


async def doctor_job(cfg: JobConfig, clients: Clients) -> dict[str, Any]:
    tenants: dict[str, Any] = {}
    for side, client, t in (
        ("source", clients.src, cfg.source),
        ("target", clients.dst, cfg.target),
    ):
        assert isinstance(client, GraphClient)
        # the tenant's cloud, and what the contract says of the mailbox API there
        entry: dict[str, Any] = {"app": client.tokens.client_id, **describe(t.graph_url, t.scope)}
        try:
            token = await client.tokens.token()
        except Exception as exc:
            verdict = classify(exc)
            entry.update(token=False, error=verdict.message, exit_code=int(verdict.code))
        else:
            granted = granted_roles(token)
            missing, excess = least_privilege(side, granted)
            entry.update(token=True, granted=sorted(granted), missing=missing, excess=excess)
        tenants[side] = entry
    pairs = [await doctor_pair(clients.src, clients.dst, p) for p in cfg.pairs]  # type: ignore[arg-type]
    failing = [c["exit_code"] for p in pairs for c in p.as_dict()["checks"] if not c["ok"]]
    failing += [t["exit_code"] for t in tenants.values() if not t.get("token")]
    return {
        "exit_code": (
            0
            if not failing
            else int(ExitCode.AUTH)
            if ExitCode.AUTH in failing
            else int(ExitCode.FATAL)
        ),
        "tenants": tenants,
        "pairs": [p.as_dict() for p in pairs],
        "ok": not failing,
        "rbac": rbac_commands(cfg),
    }


def rbac_commands(cfg: JobConfig) -> list[str]:
    """Exchange Online PowerShell that scopes each app to exactly the job's mailboxes
    (RBAC for Applications). Remove the unscoped Entra consent afterwards: with it in place the
    scope does not restrict anything."""
    out: list[str] = [
        "# Exchange Online PowerShell (RBAC for Applications). Role names: check them with",
        "# Get-ManagementRole | Where-Object IsServicePrincipalRole  before running these.",
    ]
    for side, tenant, upns in (
        ("source", cfg.source, sorted({p.source for p in cfg.pairs})),
        ("target", cfg.target, sorted({p.target for p in cfg.pairs})),
    ):
        flt = " -or ".join(f"PrimarySmtpAddress -eq '{u}'" for u in upns)
        scope = f"copyengine-{side}"
        out += [
            f"# {side} tenant {tenant.tenant_id}, app {tenant.client_id}",
            f"New-ServicePrincipal -AppId {tenant.client_id} -ObjectId <object id of the "
            f"app's service principal> -DisplayName copyengine-{side}",
            f'New-ManagementScope -Name "{scope}" -RecipientRestrictionFilter "{flt}"',
        ]
        for perm in sorted(NEED[side] - {"User.Read.All"}):
            out.append(
                f'New-ManagementRoleAssignment -App {tenant.client_id} -Role "Application '
                f'{perm.removesuffix(".All")}" -CustomResourceScope "{scope}"'
            )
    return out
