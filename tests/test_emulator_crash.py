"""A service that survives its own crash (issue 10 §4): ``copyengine emulator serve`` killed
with SIGKILL and started again is the same service — same CA, tokens still valid, every
acknowledged import present."""

from __future__ import annotations

import json
import os
import signal
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from copyengine.emulator.process import emulator_process
from tests.emu import DST_APP, DST_SECRET, SRC_APP, SRC_SECRET, Api, base_config

pytestmark = pytest.mark.anyio
ADELE, T_ADELE = "adele@contoso.example", "adele@fabrikam.example"


def _ep(info: dict[str, Any]) -> Any:
    graph = info["graph_url"]
    return SimpleNamespace(
        graph_url=graph,
        origin=graph.rsplit("/", 1)[0],
        control_url=info["control_url"],
        ca_cert=info["ca_cert"],
    )


async def test_killed_and_restarted_it_is_the_same_service(tmp_path: Path) -> None:
    cfg = base_config()
    cfg["emulator"]["persist"] = str(tmp_path / "keep" / "emulator.pickle")
    cfg["emulator"]["state_dir"] = str(tmp_path / "run")
    conf = tmp_path / "emulator.json"
    conf.write_text(json.dumps(cfg))
    log = (tmp_path / "log").open("wb")
    with emulator_process(conf, tmp_path / "ready1.json", log) as (info, pid):
        ep = _ep(info)
        first_ca = Path(ep.ca_cert).read_bytes()
        ctx = ssl.create_default_context(cafile=ep.ca_cert)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            src = Api(ep, http, "contoso", SRC_APP, SRC_SECRET)
            dst = Api(ep, http, "fabrikam.example", DST_APP, DST_SECRET)
            await src.login()
            token = await dst.login()
            s = src.m(await src.mailbox_id(ADELE))
            d = dst.m(await dst.mailbox_id(T_ADELE))
            ids = [r["id"] for r in await src.collect(s + "/folders/inbox/items?$top=5")][:5]
            exp = await src.post(s + "/exportItems", {"itemIds": ids})
            session = await dst.post(d + "/createImportSession")
            made = []
            for row in exp.body["value"]:
                r = await dst.post(
                    session.body["importUrl"],
                    {"FolderId": "inbox", "Mode": "create", "Data": row["data"]},
                    auth=False,
                )
                assert r.status == 200
                made.append(r.body["itemId"])
            folder = await dst.post(d + "/folders", {"displayName": "Kept"})
            assert folder.status == 201
        os.kill(pid, signal.SIGKILL)  # no graceful stop: nothing saved but the journal
    with emulator_process(conf, tmp_path / "ready2.json", log) as (info, _):
        ep2 = _ep(info)
        assert Path(ep2.ca_cert).read_bytes() == first_ca  # same CA: clients reconnect
        # the old client's TLS context (the first CA file) still verifies the new server
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            dst = Api(ep2, http, "fabrikam.example", DST_APP, DST_SECRET)
            dst.token = token  # issued before the crash, not yet expired: still accepted
            d = dst.m(await dst.mailbox_id(T_ADELE))
            got = await dst.collect(d + "/folders/inbox/items?$top=50")
            assert sorted(r["id"] for r in got) == sorted(made)  # every acknowledged import
            names = [f["displayName"] for f in await dst.collect(d + "/folders?$top=100")]
            assert "Kept" in names
    log.close()
