"""Microsoft's clouds: which Graph host, which identity platform and which token scope belong
together, and what the service contract says about the mailbox import/export API in each.

A tenant of the US Government or China clouds needs a token for its own Graph
(``https://graph.microsoft.us/.default``…), from its own identity platform
(``login.microsoftonline.us``…): a token for ``graph.microsoft.com`` is refused there. The
scope is derived from ``graph_url`` (or given as ``[tenants.*] scope``); an authority and a
Graph of two different clouds are refused at load. Hosts that are neither (the emulator on
loopback, a gateway in front of Graph) are not checked: the emulator stands in for the global
service and takes its scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError

# §1 of the contract (docs: /work/shared/graph-mailbox-api.md) names the global service's hosts
# only (graph.microsoft.com, import uploads on outlook.office365.com, login.microsoftonline.com)
# and §8 its general availability; it says nothing of the national clouds.
NOT_IN_CONTRACT = (
    "the service contract documents the mailbox import/export API (exportItems, "
    "createImportSession, import uploads) on the global service only; it does not list it "
    "for this cloud: the probes below show whether this tenant serves it"
)


@dataclass(frozen=True)
class Cloud:
    key: str
    name: str
    graph_host: str
    authority: str  # the identity platform's URL
    authority_hosts: frozenset[str]
    family: str  # the identity platform's cloud (the US Government's serves two Graphs)
    contract: str = ""  # what the contract says of the mailbox API here ("" = available)

    @property
    def scope(self) -> str:
        return f"https://{self.graph_host}/.default"


_US_LOGIN = frozenset({"login.microsoftonline.us"})
CLOUDS = (
    Cloud(
        "global",
        "global service",
        "graph.microsoft.com",
        "https://login.microsoftonline.com",
        frozenset({"login.microsoftonline.com", "login.microsoft.com", "login.windows.net"}),
        "global service",
    ),
    Cloud(
        "usgov",
        "US Government L4 (GCC High)",
        "graph.microsoft.us",
        "https://login.microsoftonline.us",
        _US_LOGIN,
        "US Government cloud",
        NOT_IN_CONTRACT,
    ),
    Cloud(
        "usgov-dod",
        "US Government L5 (DoD)",
        "dod-graph.microsoft.us",
        "https://login.microsoftonline.us",
        _US_LOGIN,
        "US Government cloud",
        NOT_IN_CONTRACT,
    ),
    Cloud(
        "china",
        "China (operated by 21Vianet)",
        "microsoftgraph.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
        frozenset({"login.chinacloudapi.cn", "login.partner.microsoftonline.cn"}),
        "China cloud (21Vianet)",
        NOT_IN_CONTRACT,
    ),
)
GLOBAL = CLOUDS[0]
AUTHORITY_HOSTS = frozenset(h for c in CLOUDS for h in c.authority_hosts)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def graph_cloud(graph_url: str) -> Cloud | None:
    """The cloud whose Graph ``graph_url`` is, or None (the emulator, a gateway)."""
    host = _host(graph_url)
    return next((c for c in CLOUDS if c.graph_host == host), None)


def authority_clouds(authority: str) -> tuple[Cloud, ...]:
    """The clouds whose identity platform ``authority`` is (the US Government's serves two
    Graphs); empty for another host."""
    host = _host(authority)
    return tuple(c for c in CLOUDS if host in c.authority_hosts)


def token_scope(graph_url: str, scope: str | None = None) -> str:
    """The scope a tenant's tokens are asked for: ``scope`` when given, else its Graph's."""
    if scope:
        return scope
    cloud = graph_cloud(graph_url)
    return (cloud or GLOBAL).scope


def check_tenant(
    where: str, graph_url: str, authority: str, scope: str | None, authority_given: bool
) -> str:
    """The tenant's authority, checked against its Graph (``where`` is the tenant's key path,
    ``tenants.source``): an authority left out follows the Graph's cloud; an authority and a
    Graph (or a scope) of two clouds are a ConfigError naming both keys."""
    cloud = graph_cloud(graph_url)
    if cloud is not None and not authority_given:
        authority = cloud.authority
    if scope is not None:
        _check_scope(where, scope, cloud, graph_url)
    ids = authority_clouds(authority)
    if cloud is not None and ids and cloud not in ids:
        raise ConfigError(
            f"{where}.authority",
            f"{authority} is the identity platform of the {ids[0].family}, but "
            f"{where}.graph_url ({graph_url}) is Graph of the {cloud.name}: a token from one "
            f'is refused by the other; use authority = "{cloud.authority}" (or the graph_url '
            "of the tenant's own cloud)",
        )
    return authority


def _check_scope(where: str, scope: str, cloud: Cloud | None, graph_url: str) -> None:
    if not scope.startswith("https://") or not scope.endswith("/.default"):
        raise ConfigError(
            f"{where}.scope",
            f"must be the Graph resource's .default scope (https://host/.default), not {scope!r}",
        )
    named = graph_cloud(scope.removesuffix(".default"))
    if cloud is not None and named is not None and named is not cloud:
        raise ConfigError(
            f"{where}.scope",
            f"{scope} is the scope of the {named.name}, but {where}.graph_url ({graph_url}) "
            f'is Graph of the {cloud.name}; use scope = "{cloud.scope}" or leave it out',
        )


def describe(graph_url: str, scope: str | None) -> dict[str, str]:
    """What ``doctor`` says of a tenant's cloud: its name, the scope of its tokens, and what
    the contract says of the mailbox API there (``contract``, empty when available)."""
    cloud = graph_cloud(graph_url)
    if cloud is None:
        # the scope says whose tokens (the global service's unless ``scope`` says otherwise)
        name = "not a Microsoft Graph host (the emulator, or a gateway)"
        return {"cloud": name, "scope": token_scope(graph_url, scope), "contract": ""}
    return {"cloud": cloud.name, "scope": token_scope(graph_url, scope), "contract": cloud.contract}
