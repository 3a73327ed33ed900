"""The API's one JSON writer (hpgc/api/render.py): orjson, and json.dumps for what orjson refuses."""

from __future__ import annotations

import json

from hpgc.api.render import dumps, json_response


def test_documents_are_written_as_json_reads_them() -> None:
    doc = {"jobs": [{"jobID": "ä-1", "progress": 50, "ok": True, "none": None, "x": 1.5}], "links": []}
    assert json.loads(dumps(doc)) == doc
    assert "ä" in dumps(doc)  # UTF-8, not \\u escapes


def test_what_orjson_refuses_is_still_written() -> None:
    huge = {"inputs": {"n": 2**70, "m": -(2**65)}}  # a user's input, echoed: beyond 64 bits
    assert json.loads(dumps(huge)) == huge
    assert json.loads(dumps({1: "a"})) == {"1": "a"}  # non-string keys, as json.dumps writes them


def test_json_response_uses_it() -> None:
    response = json_response({"n": 2**70}, status=201)
    assert response.status == 201 and response.content_type == "application/json"
    assert json.loads(response.text or "") == {"n": 2**70}
