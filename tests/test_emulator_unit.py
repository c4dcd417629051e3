"""Pure parts of the emulator: the item stream, synthesis, configuration."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from copyengine.emulator import EmulatorConfigError, load_config, parse_config, stream
from copyengine.emulator.store import MailboxSpec, SizeSpec, new_mailbox, seed_mailbox


def _mailbox(items: int = 200, seed: int = 1, sizes: str = "realistic") -> object:
    m = new_mailbox("tid", "x@y.example")
    seed_mailbox(m, MailboxSpec(seed=seed, items=items, sizes=SizeSpec.parse(sizes)))
    return m


def test_synthesis_is_deterministic() -> None:
    a, b = _mailbox(), _mailbox()
    assert a.snapshot()["items"] == b.snapshot()["items"]  # type: ignore[attr-defined]
    c = _mailbox(seed=2)
    assert a.snapshot()["items"] != c.snapshot()["items"]  # type: ignore[attr-defined]


def test_realistic_mix_has_types_long_tail_and_years() -> None:
    m = new_mailbox("tid", "big@y.example")
    seed_mailbox(m, MailboxSpec(seed=5, items=5000))
    items = list(m.items.values())
    types = {i.content.type for i in items}
    assert {"IPM.Note", "IPM.Appointment", "IPM.Contact", "IPM.Task"} <= types
    sizes = sorted(i.content.size for i in items)
    assert sizes[len(sizes) // 2] < 64_000 < sizes[-1]
    assert sizes[-1] > 1_000_000  # long tail
    years = {i.content.created[:4] for i in items}
    assert len(years) >= 5
    assert any(i.content.categories for i in items)


def test_stream_round_trip_and_corruption_is_detected() -> None:
    m = _mailbox(items=20)
    for item in m.items.values():  # type: ignore[attr-defined]
        data = stream.encode(item.content)
        assert stream.decode(data) == item.content
        raw = bytearray(base64.b64decode(data))
        for pos in (3, 20, len(raw) - 1):
            bad = bytearray(raw)
            bad[pos] ^= 0x01
            with pytest.raises(stream.CorruptStream):
                stream.decode(base64.b64encode(bytes(bad)))
    with pytest.raises(stream.CorruptStream):
        stream.decode("not base64!!")
    with pytest.raises(stream.CorruptStream):
        stream.decode(base64.b64encode(raw[:-5]))


def test_large_payloads_are_generated_not_stored() -> None:
    m = new_mailbox("tid", "huge@y.example")
    seed_mailbox(
        m,
        MailboxSpec(
            seed=1,
            items=3,
            layout="flat",
            sizes=SizeSpec(distribution="fixed", value=30 * 1024 * 1024),
        ),
    )
    item = next(iter(m.items.values()))
    data = stream.encode(item.content)
    assert len(data) > 40_000_000
    assert stream.decode(data).size == 30 * 1024 * 1024


def test_sample_config_loads() -> None:
    cfg = load_config(Path(__file__).parent.parent / "copyengine/emulator/sample.toml")
    assert len(cfg.tenants) == 2 and all(len(t.users) >= 3 for t in cfg.tenants)


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"emulator": {"bogus": 1}}, "emulator"),
        ({"emulator": {"profile": "fast"}}, "profile"),
        ({"tenants": [{"domain": "x"}]}, "tenants[0].name"),
        ({"tenants": [{"name": "a", "users": [{"upn": "nope"}]}]}, "tenants[0].users[0].upn"),
        (
            {"tenants": [{"name": "a", "apps": [{"client_id": "c", "roles": ["Mail.Send"]}]}]},
            "tenants[0].apps[0].roles",
        ),
        ({"faults": [{"kind": "meteor"}]}, "faults[0]"),
    ],
)
def test_bad_emulator_config_names_the_key(raw: dict[str, object], where: str) -> None:
    with pytest.raises((EmulatorConfigError, ValueError)) as exc:
        parse_config(raw)
    assert where in str(exc.value)


def test_user_sets_expand() -> None:
    cfg = parse_config(
        {
            "tenants": [
                {"name": "t", "domain": "t.example", "user_sets": [{"prefix": "u", "count": 3}]}
            ]
        }
    )
    assert [u.upn for u in cfg.tenants[0].users] == [
        "u0001@t.example",
        "u0002@t.example",
        "u0003@t.example",
    ]


def test_contents_pickled_before_stream_overhead_still_load() -> None:
    import pickle

    from copyengine.emulator.stream import ItemContent, decode, encode

    c = ItemContent("IPM.Note", "2024-01-01T00:00:00.0000000Z", (), b"k" * 16, None, "s", 7, 500)
    old = ItemContent.__new__(ItemContent)
    old.__setstate__(
        [
            getattr(c, f)
            for f in (
                "type",
                "created",
                "categories",
                "search_key",
                "message_id",
                "subject",
                "payload_key",
                "size",
            )
        ]
    )  # as the previous version saved it
    assert old == c and old.overhead == 0
    assert decode(encode(pickle.loads(pickle.dumps(old)))) == c


def test_data_length_is_the_encoded_length() -> None:
    """What the snapshot reports as an item's dataLength (the ceiling benchmark's bound is
    computed from it) is the length of the data string an export returns."""
    m = _mailbox(items=40)
    for item in m.items.values():  # type: ignore[attr-defined]
        assert stream.data_length(item.content) == len(stream.encode(item.content))
    rows = m.snapshot()["items"]  # type: ignore[attr-defined]
    assert all(r["dataLength"] > r["size"] * 4 // 3 for r in rows)
