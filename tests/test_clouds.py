"""National clouds: the token scope follows the tenant's Graph, an authority of another cloud
is refused at load naming both keys, and doctor says what the contract says of the cloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from copyengine.clouds import NOT_IN_CONTRACT, describe, token_scope
from copyengine.config import load_job
from copyengine.console.text import doctor_lines
from copyengine.errors import ConfigError
from copyengine.wiring import token_provider

GLOBAL_GRAPH = "https://graph.microsoft.com/beta"
L4_GRAPH = "https://graph.microsoft.us/v1.0"
L5_GRAPH = "https://dod-graph.microsoft.us/beta"
CN_GRAPH = "https://microsoftgraph.chinacloudapi.cn/v1.0"


@pytest.mark.parametrize(
    ("graph_url", "scope"),
    [
        (GLOBAL_GRAPH, "https://graph.microsoft.com/.default"),
        (L4_GRAPH, "https://graph.microsoft.us/.default"),
        (L5_GRAPH, "https://dod-graph.microsoft.us/.default"),
        (CN_GRAPH, "https://microsoftgraph.chinacloudapi.cn/.default"),
        ("https://GRAPH.microsoft.us./beta", "https://graph.microsoft.us/.default"),
        # the emulator (and any host that is not a Microsoft Graph) stands in for the global
        ("https://127.0.0.1:8443/beta", "https://graph.microsoft.com/.default"),
        ("emulator", "https://graph.microsoft.com/.default"),
    ],
)
def test_the_token_scope_follows_the_graph_url(graph_url: str, scope: str) -> None:
    assert token_scope(graph_url) == scope


# (graph_url, authority or None for the default, scope or None) -> the authority used
ACCEPTED = [
    (GLOBAL_GRAPH, None, None, "https://login.microsoftonline.com"),
    (GLOBAL_GRAPH, "https://login.microsoft.com", None, "https://login.microsoft.com"),
    (L4_GRAPH, None, None, "https://login.microsoftonline.us"),
    (L4_GRAPH, "https://login.microsoftonline.us", None, "https://login.microsoftonline.us"),
    (L5_GRAPH, "https://login.microsoftonline.us", None, "https://login.microsoftonline.us"),
    (CN_GRAPH, None, None, "https://login.chinacloudapi.cn"),
    (
        CN_GRAPH,
        "https://login.partner.microsoftonline.cn",
        None,
        "https://login.partner.microsoftonline.cn",
    ),
    (L4_GRAPH, None, "https://graph.microsoft.us/.default", "https://login.microsoftonline.us"),
    # a gateway in front of Graph: nothing to check, the scope given is used
    (
        "https://graph-gw.contoso.example/beta",
        "https://login.microsoftonline.us",
        "https://graph.microsoft.us/.default",
        "https://login.microsoftonline.us",
    ),
]


@pytest.mark.parametrize(("graph_url", "authority", "scope", "used"), ACCEPTED)
def test_a_tenant_of_one_cloud_is_accepted(
    tmp_path: Path, graph_url: str, authority: str | None, scope: str | None, used: str
) -> None:
    cfg = load_job(_job(tmp_path, graph_url, authority, scope))
    assert cfg.source.authority == used
    provider = token_provider(cfg.source)
    assert provider.scope == (scope or token_scope(graph_url))


REFUSED = [
    (
        L4_GRAPH,
        "https://login.microsoftonline.com",
        None,
        "tenants.source.authority",
        "global service",
    ),
    (
        GLOBAL_GRAPH,
        "https://login.microsoftonline.us",
        None,
        "tenants.source.authority",
        "US Government cloud",
    ),
    (
        CN_GRAPH,
        "https://login.microsoftonline.us",
        None,
        "tenants.source.authority",
        "China (operated by 21Vianet)",
    ),
    (
        L5_GRAPH,
        "https://login.chinacloudapi.cn",
        None,
        "tenants.source.authority",
        "US Government L5",
    ),
    (
        L4_GRAPH,
        None,
        "https://graph.microsoft.com/.default",
        "tenants.source.scope",
        "global service",
    ),
    (GLOBAL_GRAPH, None, "https://graph.microsoft.com", "tenants.source.scope", "/.default"),
    (GLOBAL_GRAPH, None, "User.Read.All", "tenants.source.scope", "/.default"),
]


@pytest.mark.parametrize(("graph_url", "authority", "scope", "key", "says"), REFUSED)
def test_an_authority_or_scope_of_another_cloud_is_refused_naming_the_keys(
    tmp_path: Path, graph_url: str, authority: str | None, scope: str | None, key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_job(_job(tmp_path, graph_url, authority, scope))
    assert err.value.where == key and says in err.value.message
    if key.endswith("authority"):
        assert "tenants.source.graph_url" in err.value.message


def test_doctor_says_what_the_contract_says_of_the_cloud() -> None:
    national = describe(L4_GRAPH, None)
    assert national["cloud"] == "US Government L4 (GCC High)"
    assert national["contract"] == NOT_IN_CONTRACT
    assert describe(GLOBAL_GRAPH, None)["contract"] == ""
    result = {
        "network": "direct",
        "tenants": {
            "source": {"app": "a", "token": True, "missing": [], "excess": [], **national},
            "target": {
                "app": "b",
                "token": True,
                "missing": [],
                "excess": [],
                **describe(GLOBAL_GRAPH, None),
            },
        },
        "pairs": [],
        "rbac": [],
    }
    lines = doctor_lines(result)
    assert "note network: direct" in lines
    assert (
        "note source tenant: US Government L4 (GCC High), tokens for "
        "https://graph.microsoft.us/.default" in lines
    )
    assert f"note source tenant: {NOT_IN_CONTRACT}" in lines
    assert not any(line.startswith("note target tenant: the service contract") for line in lines)


def _job(tmp: Path, graph_url: str, authority: str | None, scope: str | None) -> Path:
    (tmp / "s.secret").write_text("x")
    extra = (f'authority = "{authority}"\n' if authority else "") + (
        f'scope = "{scope}"\n' if scope else ""
    )
    job = tmp / "job.toml"
    job.write_text(
        f'[tenants.source]\ngraph_url = "{graph_url}"\n{extra}'
        'tenant_id = "contoso.example"\nclient_id = "a"\nclient_secret = "file:s.secret"\n'
        "[tenants.target]\n"
        'tenant_id = "fabrikam.example"\nclient_id = "b"\nclient_secret = "file:s.secret"\n'
        '[[pairs]]\nsource = "a@contoso.example"\ntarget = "a@fabrikam.example"\n'
    )
    return job


def test_doctor_names_the_tokens_of_a_host_of_no_cloud_once_and_roles_in_words() -> None:
    """The emulator or a gateway: said so, then whose tokens, once (the line said 'tokens
    for the global service, tokens for https://graph.microsoft.com/.default')."""
    emulated = describe("https://127.0.0.1:8443/beta", None)
    result = {
        "network": "direct",
        "tenants": {
            "source": {"app": "a", "token": True, "missing": [], "excess": [], **emulated},
            "target": {
                "app": "b",
                "token": True,
                "missing": ["User.Read.All"],
                "excess": ["MailboxFolder.ReadWrite.All", "MailboxItem.ImportExport.All"],
                **emulated,
            },
        },
        "pairs": [],
        "rbac": [],
    }
    lines = doctor_lines(result)
    # the roles as a sentence lists them, not as Python's list
    assert "ok   source app a: token; missing nothing; beyond least privilege nothing" in lines
    assert (
        # roles missing from the token: a warning (RBAC for Applications may grant them)
        "warn target app b: token; missing User.Read.All; beyond least privilege "
        "MailboxFolder.ReadWrite.All, MailboxItem.ImportExport.All" in lines
    )
    line = next(x for x in lines if x.startswith("note source tenant"))
    assert line == (
        "note source tenant: not a Microsoft Graph host (the emulator, or a gateway), tokens "
        "for https://graph.microsoft.com/.default"
    )
