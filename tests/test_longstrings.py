"""An export's long strings found by memchr and cut out before decoding
(``graph/longstrings.py``): the rows decode exactly as the whole answer does, and whatever
the cut cannot stand for exactly is decoded whole."""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson
import pytest

from copyengine.graph import longstrings
from copyengine.graph.client import _EXPORT_DECODER, decode_export


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def _rows(payload: bytes | bytearray) -> list[tuple[Any, ...]]:
    return [
        (r.itemId, r.changeKey, bytes(r.data), r.error, r.Error) for r in decode_export(payload)
    ]


def _whole(payload: bytes | bytearray) -> list[tuple[Any, ...]]:
    return [
        (r.itemId, r.changeKey, bytes(r.data), r.error, r.Error)
        for r in _EXPORT_DECODER.decode(payload).value
    ]


def test_long_data_strings_are_cut_and_restored_exactly() -> None:
    rows: list[dict[str, Any]] = [
        {"itemId": f"AAMk{i}/+=", "changeKey": "CQA", "data": _b64(3000)} for i in range(20)
    ]
    rows.append({"itemId": "small", "changeKey": "k", "data": "c2hvcnQ="})  # stays in place
    rows.append({"itemId": "gone", "error": {"code": "ErrorItemNotFound", "message": "x"}})
    payload = bytearray(orjson.dumps({"value": rows}))
    cut = longstrings.cut(payload)
    assert cut is not None and len(cut.strings) == 20
    assert len(cut.rest) < 3000  # the decoder reads the small rest only
    assert _rows(payload) == _whole(payload)
    # zero copy: the restored tokens are views of the answer's own buffer
    first = decode_export(payload)[0]
    at = payload.index(bytes(first.data)) + 1
    payload[at] = ord("#")
    assert bytes(first.data)[1:2] == b"#"


def test_escapes_and_quotes_inside_strings_are_found_exactly() -> None:
    # an escaped quote, a pair of backslashes before a closing quote, a long string made
    # mostly of escapes: each string still ends where JSON says
    tricky = 'a\\"b' * 400 + "\\\\"
    doc = (
        b'{"value": [ {"itemId": "i\\"1", "data": "'
        + tricky.encode()
        + b'"}, {"changeKey": "\\\\", "itemId": "i2", "data" : "'
        + _b64(2000).encode()
        + b'"} ]}'
    )
    assert _rows(doc) == _whole(doc)
    cut = longstrings.cut(doc)
    assert cut is not None and len(cut.strings) == 2


@pytest.mark.parametrize(
    "doc",
    [
        # a long error message: a placeholder left outside the rows' data
        {"value": [{"itemId": "a", "error": {"code": "X", "message": "m" * 5000}}]},
        # the answer already holds a placeholder's text: it could not be told apart
        {"value": [{"itemId": "\u0000" + "0", "data": _b64(2000)}]},
        # nothing long: nothing to cut
        {"value": [{"itemId": "a", "data": "c2hvcnQ="}]},
    ],
)
def test_what_the_cut_cannot_stand_for_is_decoded_whole(doc: dict[str, Any]) -> None:
    payload = orjson.dumps(doc)
    assert _rows(payload) == _whole(payload)


def test_a_placeholder_text_in_the_answer_is_not_cut() -> None:
    payload = orjson.dumps({"value": [{"itemId": "\u0000" + "0", "data": _b64(2000)}]})
    assert b"\\u0000" in payload
    assert longstrings.cut(payload) is None


def test_an_unterminated_string_is_left_to_the_decoder_to_name() -> None:
    payload = b'{"value": [{"itemId": "a", "data": "' + _b64(2000).encode()
    assert longstrings.cut(payload) is None
    with pytest.raises(Exception, match=r"malformed|truncated"):
        decode_export(payload)
