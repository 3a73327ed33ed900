"""User JSON and YAML under limits, and what a deployed CWL document may refer to."""

from __future__ import annotations

import json

import pytest

from hpgc.errors import InvalidPackage, InvalidRequest
from hpgc.models.parsing import MAX_DEPTH, json_depth_exceeds, load_json, load_yaml
from hpgc.packages.cwl_refs import refuse_external_references
from tests.hostile_documents import alias_bomb


def test_json_within_limits_parses() -> None:
    doc = {"inputs": {"s": "[[[{{ \\\" ]]", "geo": [[[[1.0, 2.0]]]], "list": list(range(100))}}
    assert load_json(json.dumps(doc).encode()) == doc
    assert load_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


@pytest.mark.parametrize("raw", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b"[" * 10_000,  # unclosed: the parser recurses before it finds out
    b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
])
def test_deep_json_is_a_400(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="nest"):
        load_json(raw)


def test_brackets_inside_strings_do_not_count() -> None:
    assert not json_depth_exceeds(json.dumps(["[" * 10_000, "{" * 500]).encode())
    assert not json_depth_exceeds(b'["\\"' + b"[" * 500 + b'"]')


def test_invalid_json_is_a_400_of_the_chosen_kind() -> None:
    with pytest.raises(InvalidPackage, match="not valid JSON"):
        load_json(b"{nope", error=InvalidPackage)
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        load_json(b"\xff\xfe")


def test_unclosed_quotes_scan_in_linear_time() -> None:
    # many escaped quotes after an unclosed one: a backtracking scan would be quadratic (minutes at 4 MB)
    with pytest.raises(InvalidRequest):
        load_json(b'["' + b'\\"a' * 1_000_000)


def test_yaml_alias_bomb_is_refused_without_expanding() -> None:
    bomb = alias_bomb()
    assert len(bomb) < 600
    with pytest.raises(InvalidRequest, match="aliases"):
        load_yaml(bomb)


def test_yaml_with_a_few_aliases_is_fine() -> None:
    assert load_yaml("base: &b {x: 1}\none: *b\ntwo: *b\n") == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}


@pytest.mark.parametrize("text", [
    "a: " + "[" * 10_000 + "]" * 10_000,
    "a: " + "{b: " * 10_000 + "1" + "}" * 10_000,
    "".join("  " * i + "a:\n" for i in range(2_000)),
    "- " * 10_000 + "x",
])
def test_deep_yaml_is_a_400(text: str) -> None:
    with pytest.raises(InvalidPackage, match="nest"):
        load_yaml(text, error=InvalidPackage)


def test_yaml_unsafe_tags_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="neither JSON nor YAML"):
        load_yaml("!!python/object/apply:os.system ['id']")


TOOL = {"cwlVersion": "v1.2", "class": "CommandLineTool", "baseCommand": "echo", "outputs": {},
        "inputs": {"run": "string", "location": {"type": "string", "default": "/etc/passwd"},
                   "f": {"type": "File", "default": {"class": "File", "basename": "a.txt", "contents": "hi"}}}}


def test_a_self_contained_document_passes() -> None:
    refuse_external_references(TOOL)  # inputs named run/location are names, not references
    refuse_external_references({"$graph": [{"class": "Workflow", "steps": [{"id": "s", "run": "#tool"}]}]})


@pytest.mark.parametrize(("doc", "where"), [
    ({"doc": {"$include": "/etc/passwd"}}, "/doc/$include"),
    ({"requirements": [{"$import": "http://127.0.0.1:1/x.yml"}]}, "/requirements/0/$import"),
    ({"requirements": [{"class": "SchemaDefRequirement", "types": [{"$import": "types.yml"}]}]},
     "/requirements/0/types/0/$import"),
    ({"hints": [{"$mixin": "file:///etc/passwd"}]}, "/hints/0/$mixin"),
    ({"$schemas": ["http://127.0.0.1:1/s.rdf"]}, "/$schemas"),
    ({"steps": [{"id": "s", "run": "http://127.0.0.1:1/tool.cwl"}]}, "/steps/0/run"),
    ({"steps": {"s": {"run": "other.cwl#main"}}}, "/steps/s/run"),
    ({"inputs": [{"id": "f", "default": {"class": "File", "location": "file:///etc/passwd"}}]},
     "/inputs/0/default/location"),
    ({"inputs": {"f": {"default": {"class": "File", "path": "/etc/passwd"}}}}, "/inputs/f/default/path"),
    ({"inputs": {"d": {"default": {"class": "Directory", "location": "../../"}}}}, "/inputs/d/default/location"),
    ({"inputs": {"f": {"default": {"class": "File", "contents": "x",
                                   "secondaryFiles": [{"class": "File", "location": "https://example.org/a"}]}}}},
     "/inputs/f/default/secondaryFiles/0/location"),
])
def test_references_outside_the_document_are_refused_by_path(doc: dict, where: str) -> None:
    with pytest.raises(InvalidPackage) as err:
        refuse_external_references({**TOOL, **doc})
    assert err.value.detail.startswith(f"{where}:")
