"""Input validation (hpgc/packages/inputs.py): occurrences, types, files by href or inline, every error naming
the input. Expected values are written out here, never taken from the code under test."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hpgc.errors import InvalidParameterValue
from hpgc.models.ogc import InputDescription, ProcessDescription
from hpgc.packages.inputs import FileData, FileRef, Literal, is_binary, validate_inputs

STRING = {"type": "string"}
BINARY = {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/tiff"}


def desc(**inputs: dict[str, Any]) -> ProcessDescription:
    return ProcessDescription(id="p", inputs={k: InputDescription.model_validate(v) for k, v in inputs.items()})


def refused(description: ProcessDescription, inputs: dict[str, Any], max_values: int = 10000) -> str:
    with pytest.raises(InvalidParameterValue) as err:
        validate_inputs(description, inputs, max_values)
    return err.value.detail


# occurrences ----------------------------------------------------------------------------------------------------
def test_max_occurs_absent_means_one_value() -> None:
    d = desc(a={"schema": STRING})
    assert validate_inputs(d, {"a": "x"}) == {"a": [Literal("x")]}
    assert validate_inputs(d, {"a": ["x"]}) == {"a": [Literal("x")]}
    assert refused(d, {"a": ["x", "y"]}) == "input 'a' takes at most 1 value(s), got 2"


@pytest.mark.parametrize(("max_occurs", "values", "error"), [
    (3, ["x", "y", "z"], None),
    (3, ["w", "x", "y", "z"], "input 'a' takes at most 3 value(s), got 4"),
    (2, ["x", "y"], None),
    (2, ["x", "y", "z"], "input 'a' takes at most 2 value(s), got 3"),
    ("unbounded", [str(i) for i in range(50)], None),
])
def test_max_occurs(max_occurs: Any, values: list[str], error: str | None) -> None:
    d = desc(a={"schema": STRING, "maxOccurs": max_occurs, "minOccurs": 0})
    if error is None:
        assert validate_inputs(d, {"a": values}) == {"a": [Literal(v) for v in values]}
    else:
        assert refused(d, {"a": values}) == error


@pytest.mark.parametrize(("values", "error"), [
    (["x"], "input 'a' needs at least 2 value(s)"),
    (["x", "y"], None),
    (["x", "y", "z"], None),
    ("x", "input 'a' needs at least 2 value(s)"),
])
def test_min_occurs(values: Any, error: str | None) -> None:
    d = desc(a={"schema": STRING, "minOccurs": 2, "maxOccurs": 5})
    if error is None:
        assert validate_inputs(d, {"a": values}) == {"a": [Literal(v) for v in values]}
    else:
        assert refused(d, {"a": values}) == error


def test_required_and_optional_inputs() -> None:
    d = desc(req={"schema": STRING}, opt={"schema": STRING, "minOccurs": 0},
             dflt={"schema": {"type": "integer", "default": 3}})
    assert refused(d, {}) == "input 'req' is required"
    assert refused(d, {"req": None}) == "input 'req' is required"
    assert validate_inputs(d, {"req": "x"}) == {"req": [Literal("x")]}  # missing optional ones are left out
    assert validate_inputs(d, {"req": "x", "opt": None, "dflt": None}) == {"req": [Literal("x")]}
    assert validate_inputs(d, {"req": "x", "dflt": 0}) == {"req": [Literal("x")], "dflt": [Literal(0)]}


def test_an_array_schema_takes_the_list_as_one_value() -> None:
    d = desc(a={"schema": {"type": "array", "items": {"type": "integer"}}})
    assert validate_inputs(d, {"a": [1, 2, 3]}) == {"a": [Literal([1, 2, 3])]}
    assert refused(d, {"a": [1, "x"]}) == "input 'a': 'x' is not of type 'integer'"


def test_unknown_inputs_are_named_with_what_the_process_takes() -> None:
    d = desc(b={"schema": STRING}, a={"schema": STRING})
    assert refused(d, {"a": "x", "b": "y", "zz": 1, "c": 2}) == "unknown input 'c'; process 'p' takes: a, b"


def test_too_many_values_in_all() -> None:
    d = desc(a={"schema": STRING, "maxOccurs": "unbounded"}, b={"schema": STRING, "maxOccurs": "unbounded"})
    assert len(validate_inputs(d, {"a": ["x"] * 3, "b": ["y"] * 2}, max_values=5)["b"]) == 2
    assert refused(d, {"a": ["x"] * 3, "b": ["y"] * 3}, max_values=5) == "too many input values (more than 5)"
    assert refused(d, {"a": ["x"] * 6}, max_values=5) == "too many input values (more than 5)"


# literals -------------------------------------------------------------------------------------------------------
def test_literal_types_and_enums() -> None:
    d = desc(n={"schema": {"type": "number"}}, e={"schema": {"type": "string", "enum": ["a", "b"]}})
    assert validate_inputs(d, {"n": 1.5, "e": "b"}) == {"n": [Literal(1.5)], "e": [Literal("b")]}
    assert refused(d, {"n": "x", "e": "a"}) == "input 'n': 'x' is not of type 'number'"
    assert refused(d, {"n": 1, "e": "c"}) == "input 'e': 'c' is not one of ['a', 'b']"


def test_a_qualified_value_is_unwrapped_and_checked() -> None:
    d = desc(n={"schema": {"type": "integer"}})
    assert validate_inputs(d, {"n": {"value": 4}}) == {"n": [Literal(4)]}
    assert validate_inputs(d, {"n": {"value": 4, "mediaType": "application/json"}}) == {"n": [Literal(4)]}
    assert refused(d, {"n": {"value": "x"}}) == "input 'n': 'x' is not of type 'integer'"


def test_an_object_value_with_other_members_is_checked_whole() -> None:
    d = desc(o={"schema": {"type": "object"}})
    assert validate_inputs(d, {"o": {"value": 1, "extra": 2}}) == {"o": [Literal({"value": 1, "extra": 2})]}


def test_nullable_accepts_null_inside_a_list() -> None:
    d = desc(n={"schema": {"type": "integer", "nullable": True}, "maxOccurs": 2})
    assert validate_inputs(d, {"n": [1, None]}) == {"n": [Literal(1), Literal(None)]}
    strict = desc(n={"schema": {"type": "integer"}, "maxOccurs": 2})
    assert refused(strict, {"n": [1, None]}) == "input 'n': None is not of type 'integer'"


def test_a_schema_that_cannot_check_accepts_the_value() -> None:
    d = desc(x={"schema": {"type": "no-such-type"}})
    assert validate_inputs(d, {"x": 42}) == {"x": [Literal(42)]}


# files ----------------------------------------------------------------------------------------------------------
def test_files_by_href() -> None:
    d = desc(f={"schema": BINARY, "maxOccurs": 4})
    got = validate_inputs(d, {"f": [{"href": "https://x/a.tif"}, {"href": "http://x/b", "type": "image/png"},
                                    {"href": "https://x/c", "mediaType": "text/plain"}]})
    assert got == {"f": [FileRef("https://x/a.tif", None), FileRef("http://x/b", "image/png"),
                         FileRef("https://x/c", "text/plain")]}
    # s3:// and file:/// are files too: whether this server serves them is decided with the job's backend and
    # user (hpgc/jobs/delivery.py, hpgc/jobs/paths.py)
    assert validate_inputs(d, {"f": [{"href": "s3://b/k"}, {"href": "file:///etc/passwd"}]}) == {
        "f": [FileRef("s3://b/k", None), FileRef("file:///etc/passwd", None)]}
    for bad in ("ftp://x/a", "httpx://a", "S3://b/k", 7, None):
        assert refused(d, {"f": {"href": bad}}) == "input 'f': href must be an http(s), s3:// or file:/// URL"


def test_an_href_is_accepted_for_a_literal_too() -> None:
    d = desc(s={"schema": STRING})
    assert validate_inputs(d, {"s": {"href": "https://x/s.txt"}}) == {"s": [FileRef("https://x/s.txt", None)]}


def test_files_inline_base64_and_text() -> None:
    d = desc(f={"schema": BINARY})
    data = base64.b64encode(b"II*\x00").decode()
    assert validate_inputs(d, {"f": {"value": data, "mediaType": "image/tiff"}}) == {
        "f": [FileData(b"II*\x00", "image/tiff")]}
    assert validate_inputs(d, {"f": {"value": data, "format": {"mediaType": "image/x"}}}) == {
        "f": [FileData(b"II*\x00", "image/x")]}
    assert validate_inputs(d, {"f": data}) == {"f": [FileData(b"II*\x00", None)]}
    assert refused(d, {"f": {"value": "%%%"}}) == "input 'f': value is not valid base64"
    assert refused(d, {"f": 12}) == "input 'f': expected a file (href or base64 value)"
    assert refused(d, {"f": {"value": 12}}) == "input 'f': expected a file (href or base64 value)"
    # the request may say how its value is encoded: here, not at all
    assert validate_inputs(d, {"f": {"value": "plain", "encoding": "utf-8"}}) == {"f": [FileData(b"plain", None)]}
    # a binary format without an encoding: the value's own bytes
    raw = desc(f={"schema": {"type": "string", "format": "binary"}})
    assert validate_inputs(raw, {"f": "abc"}) == {"f": [FileData(b"abc", None)]}
    assert validate_inputs(raw, {"f": {"value": "YWJj", "encoding": "base64"}}) == {"f": [FileData(b"abc", None)]}


def test_base64_from_an_alternative_of_the_schema() -> None:
    d = desc(f={"schema": {"oneOf": [{"type": "string", "contentEncoding": "base64"},
                                     {"type": "string", "format": "binary"}]}})
    assert validate_inputs(d, {"f": "YWJj"}) == {"f": [FileData(b"abc", None)]}
    any_of = desc(f={"schema": {"anyOf": [{"type": "string", "format": "byte"},
                                          {"type": "string", "contentEncoding": "base64"}]}})
    assert validate_inputs(any_of, {"f": "YWJj"}) == {"f": [FileData(b"abc", None)]}


@pytest.mark.parametrize(("schema", "binary"), [
    ({"type": "string"}, False),
    ({"type": "string", "contentEncoding": "base64"}, True),
    ({"type": "string", "format": "binary"}, True),
    ({"type": "string", "format": "byte"}, True),
    ({"type": "string", "format": "date"}, False),
    ({"oneOf": [{"format": "binary"}, {"contentEncoding": "base64"}]}, True),
    ({"oneOf": [{"format": "binary"}, {"type": "string"}]}, False),
    ({"anyOf": [{"format": "byte"}]}, True),
    ({"anyOf": [{"format": "byte"}, {"type": "integer"}]}, False),
    ({"oneOf": []}, False),
])
def test_is_binary(schema: dict[str, Any], binary: bool) -> None:
    assert is_binary(schema) is binary


def test_the_default_cap_on_values_is_10000() -> None:
    d = desc(a={"schema": {"type": "integer"}, "maxOccurs": "unbounded"})
    assert len(validate_inputs(d, {"a": list(range(10000))})["a"]) == 10000
    assert refused(d, {"a": list(range(10001))}, 10000) == "too many input values (more than 10000)"
    with pytest.raises(InvalidParameterValue, match=r"more than 10000\)$"):
        validate_inputs(d, {"a": list(range(10001))})


def test_nullable_still_checks_the_type() -> None:
    d = desc(n={"schema": {"type": "integer", "nullable": True}, "maxOccurs": 2})
    assert refused(d, {"n": ["x"]}) == "input 'n': 'x' is not of type 'integer', 'null'"


def test_a_qualified_value_may_carry_every_member_of_the_standard() -> None:
    d = desc(n={"schema": {"type": "integer"}})
    assert validate_inputs(d, {"n": {"value": 4, "schema": {"type": "integer"}}}) == {"n": [Literal(4)]}
    f = desc(f={"schema": BINARY})
    full = {"value": "YWJj", "mediaType": "image/tiff", "encoding": "base64", "schema": {"type": "string"},
            "format": {"mediaType": "image/x"}}
    assert validate_inputs(f, {"f": full}) == {"f": [FileData(b"abc", "image/tiff")]}


def test_an_unencoded_file_value_keeps_its_media_type() -> None:
    raw = desc(f={"schema": {"type": "string", "format": "binary"}})
    assert validate_inputs(raw, {"f": {"value": "abc", "mediaType": "text/csv"}}) == {
        "f": [FileData(b"abc", "text/csv")]}
