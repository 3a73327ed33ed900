"""Deploy requests → a process ready to store: the package read, validated and normalised.

Nothing here is fetched or run at execution time: a CWL document given by `href` is fetched once, here,
and stored packed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from hpgc.errors import InvalidPackage, UnsupportedMediaType, WorkflowNotFound, first_error
from hpgc.models.names import process_id_problem, shown
from hpgc.models.ogc import ProcessDescription
from hpgc.models.package import AppPackage, param, to_object_form
from hpgc.packages import cwl
from hpgc.packages.command import check_patterns, command_unit, split_entry_point
from hpgc.packages.registry import CWL_MEDIA_TYPE

OGCAPPPKG = "application/ogcapppkg+json"
CWL_TYPES = ("application/cwl", "application/cwl+json", "application/cwl+yaml")
COMMAND_MEDIA_TYPE = OGCAPPPKG
MAX_CWL_FETCH = 4 * 1024 * 1024


@dataclass
class Deployable:
    description: ProcessDescription
    package: dict[str, Any]  # what runs: packed CWL, or the application package
    media_type: str  # CWL_MEDIA_TYPE or OGCAPPPKG
    source: str  # the document as deployed
    source_type: str


def _load(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidPackage(f"{what} is neither JSON nor YAML: {exc}") from None


def _graph_ids(doc: dict[str, Any]) -> list[str]:
    return [str(o.get("id", "")).lstrip("#") for o in doc.get("$graph", []) if isinstance(o, dict)]


def from_cwl_text(text: str, w: str | None, media_type: str) -> Deployable:
    doc = _load(text, "the CWL document")
    if not isinstance(doc, dict):
        raise InvalidPackage("the CWL document must be a mapping")
    fragment = None
    if "$graph" in doc:
        ids = _graph_ids(doc)
        if w is None:
            wf = [str(o.get("id", "")).lstrip("#") for o in doc["$graph"] if o.get("class") == "Workflow"]
            if len(wf) != 1:
                raise WorkflowNotFound(f"the $graph holds {', '.join(ids)}: choose one with ?w=")
            fragment = wf[0]
        elif w not in ids:
            raise WorkflowNotFound(f"no {shown(w)} in the $graph (it holds {', '.join(ids)})")
        else:
            fragment = w
    process_id = w or str(doc.get("id", "")).lstrip("#") or None
    if not process_id or (w is None and "/" in process_id):
        raise InvalidPackage("the CWL document has no id: name the process with ?w=")
    check_process_id(process_id)
    packed = cwl.pack_text(text, fragment)
    description = cwl.describe(packed, process_id)
    return Deployable(description, packed, CWL_MEDIA_TYPE, text, media_type)


def check_process_id(process_id: object) -> None:
    problem = process_id_problem(process_id)
    if problem is not None:
        raise InvalidPackage(problem)


async def from_request(body: bytes, content_type: str, w: str | None, fetch: Any) -> Deployable:
    """`fetch(url) -> str` downloads a CWL document given by href (once, at deploy time)."""
    if w is not None:
        check_process_id(w)
    deployable = await _from_request(body, content_type, w, fetch)
    check_process_id(deployable.description.id)  # whichever of ?w=, the package or the CWL id named it
    return deployable


async def _from_request(body: bytes, content_type: str, w: str | None, fetch: Any) -> Deployable:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidPackage("the body is not UTF-8 text") from None
    if content_type in CWL_TYPES:
        return from_cwl_text(text, w, content_type)
    if content_type not in (OGCAPPPKG, "application/json"):
        raise UnsupportedMediaType(
            f"cannot deploy {content_type or 'a body without Content-Type'}; use {OGCAPPPKG} or one of "
            + ", ".join(CWL_TYPES))
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidPackage(f"the body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidPackage("the application package must be a JSON object")
    try:
        pkg = AppPackage.model_validate(raw)
    except ValidationError as exc:
        where, msg = first_error(exc)
        raise InvalidPackage(f"{where}: {msg}") from None
    cwl_unit = next((u for u in pkg.units() if _is_cwl_unit(u.model_dump(exclude_none=True))), None)
    if cwl_unit is not None:
        return await _cwl_unit(pkg, cwl_unit.model_dump(exclude_none=True), w, fetch, text)
    return command_package(pkg, raw, w, text)


def _is_cwl_unit(unit: dict[str, Any]) -> bool:
    kind = str(unit.get("type") or unit.get("mediaType") or "")
    if kind.startswith("application/cwl"):
        return True
    inline = unit.get("unit") or unit.get("value")
    return (isinstance(inline, (dict, str)) and "cwlVersion" in str(inline)[:4000]) or (
        bool(unit.get("href")) and str(unit.get("href")).split("#")[0].endswith((".cwl", ".yaml", ".yml")))


async def _cwl_unit(pkg: AppPackage, unit: dict[str, Any], w: str | None, fetch: Any, source: str) -> Deployable:
    inline = unit.get("unit") or unit.get("value")
    if isinstance(inline, dict):
        text = json.dumps(inline)
        fragment = None
    elif isinstance(inline, str):
        text, fragment = inline, None
    elif unit.get("href"):
        url, _, fragment = str(unit["href"]).partition("#")
        if not url.startswith(("http://", "https://")):
            raise InvalidPackage("executionUnit.href must be an http(s) URL")
        text = await fetch(url)
    else:
        raise InvalidPackage("executionUnit: a CWL unit needs 'unit', 'value' or 'href'")
    given = pkg.processDescription or {}
    deployable = from_cwl_text(text, fragment or w or given.get("id"), "application/cwl")
    if given:
        merged = {**deployable.description.model_dump(by_alias=True, exclude_none=True),
                  **{k: v for k, v in given.items() if k not in ("inputs", "outputs")}}
        if merged.get("additionalParameters") is not None:
            merged["additionalParameters"] = to_object_form(merged["additionalParameters"])
        deployable.description = ProcessDescription.model_validate(merged)
    deployable.source, deployable.source_type = source, OGCAPPPKG
    return deployable


def command_package(pkg: AppPackage, raw: dict[str, Any], w: str | None, source: str) -> Deployable:
    if not pkg.processDescription:
        raise InvalidPackage("processDescription is missing")
    unit = command_unit(pkg)
    desc = dict(pkg.processDescription)
    process_id = desc.get("id") or w
    if not process_id:
        raise InvalidPackage("processDescription.id is missing (or name the process with ?w=)")
    check_process_id(process_id)
    if w and desc.get("id") and w != desc["id"]:
        raise InvalidPackage(f"?w={shown(w)} does not match processDescription.id {shown(desc['id'])}")
    desc["id"] = process_id
    desc["additionalParameters"] = to_object_form(desc.get("additionalParameters"))
    for section in ("inputs", "outputs"):
        items = desc.get(section) or {}
        if isinstance(items, list):  # some clients send a list with ids
            items = {i.get("id"): {k: v for k, v in i.items() if k != "id"} for i in items}
        for item in items.values():
            if isinstance(item, dict) and "additionalParameters" in item:
                item["additionalParameters"] = to_object_form(item["additionalParameters"])
        desc[section] = items
    try:
        description = ProcessDescription.model_validate(desc)
    except ValidationError as exc:
        where, msg = first_error(exc)
        raise InvalidPackage(f"processDescription.{where}: {msg}") from None
    check_patterns(description, pkg)
    entry = param(description.additionalParameters, "entry-point")
    if entry:
        split_entry_point(str(entry), unit)  # the image it names: a 400 now, not a failure at each run
    if not unit.image and (unit.type or "").lower() in ("docker", "oci"):
        raise InvalidPackage(f"executionUnit of type {unit.type} needs an image")
    stored = {**raw, "processDescription": description.model_dump(mode="json", by_alias=True, exclude_none=True)}
    return Deployable(description, stored, OGCAPPPKG, source, OGCAPPPKG)
