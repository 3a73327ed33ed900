from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hpgc.api.processes import parse_prefer
from hpgc.errors import InvalidParameterValue, InvalidRequest
from hpgc.models.ogc import InputDescription, ProcessDescription
from hpgc.packages import cwl
from hpgc.packages.inputs import FileData, FileRef, Literal, validate_inputs
from hpgc.packages.staging import staged_name

REPO = Path(__file__).resolve().parents[2]


def test_cwl_description_is_derived() -> None:
    desc = cwl.describe(cwl.pack(REPO / "appkgs/echo/echo.cwl"), "echo")
    assert desc.title == "Echo"
    assert desc.inputs["stringInput"].minOccurs == 1
    assert desc.inputs["enumInput"].schema_ == {"type": "string", "enum": ["value1", "value2", "value3"]}
    assert desc.outputs["arrayOutput"].schema_ == {"type": "array", "items": {"type": "integer"}}


def test_invalid_cwl_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="invalid CWL"):
        cwl.pack_text("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: {x: {type: strang}}\noutputs: {}\n")


def _desc(**inputs: InputDescription) -> ProcessDescription:
    return ProcessDescription(id="p", inputs=inputs)


def test_file_inputs_by_href_and_base64() -> None:
    desc = _desc(img=InputDescription(schema={"type": "string", "contentEncoding": "base64",
                                              "contentMediaType": "image/tiff"}, maxOccurs=3))
    got = validate_inputs(desc, {"img": [{"href": "https://x/a.tif"},
                                         {"value": base64.b64encode(b"II*").decode(), "mediaType": "image/tiff"}]})
    assert got["img"] == [FileRef("https://x/a.tif"), FileData(b"II*", "image/tiff")]
    with pytest.raises(InvalidParameterValue, match="img"):
        validate_inputs(desc, {"img": {"href": "gopher://x/etc/passwd"}})  # file:/// is a cluster path: docs/data.md
    with pytest.raises(InvalidParameterValue, match="base64"):
        validate_inputs(desc, {"img": {"value": "%%%notbase64"}})


def test_nullable_and_defaults() -> None:
    desc = _desc(ram=InputDescription(schema={"type": "integer", "default": 128, "nullable": True}))
    assert validate_inputs(desc, {}) == {}
    assert validate_inputs(desc, {"ram": None}) == {}
    assert validate_inputs(desc, {"ram": 256}) == {"ram": [Literal(256)]}


def test_prefer_parsing() -> None:
    assert parse_prefer(["respond-async;return=representation"]) == (True, None)
    assert parse_prefer(["return=minimal", "respond-async, wait=10"]) == (True, 10)
    assert parse_prefer([]) == (False, None)


def test_staged_names_are_generated() -> None:
    assert staged_name("../../etc/passwd", 0, "image/tiff") == "inputs/______etc_passwd_0.tif"
    assert staged_name("il", 2, None) == "inputs/il_2"
    assert staged_name("x", 0, "application/x-evil; rm -rf") == "inputs/x_0"
