"""Deploy requests → a process ready to store: the package read, validated and normalised.

Nothing here is fetched or run at execution time: a CWL document given by `href` is fetched once, here,
and stored packed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hpgc.errors import InvalidPackage, UnsupportedMediaType, WorkflowNotFound, validated
from hpgc.models.names import process_id_problem, shown
from hpgc.models.ogc import ProcessDescription
from hpgc.models.package import CWL_MEDIA_TYPE, OGCAPPPKG, AppPackage, param, to_object_form
from hpgc.models.parsing import load_json, load_yaml
from hpgc.packages import cwl
from hpgc.packages.command import check_patterns, command_unit, split_entry_point
from hpgc.packages.cwl_refs import refuse_external_references
from hpgc.packages.cwl_resources import check as check_resources
from hpgc.packages.cwl_runner import asked_runner

CWL_TYPES = ("application/cwl", "application/cwl+json", "application/cwl+yaml")
MAX_CWL_FETCH = 4 * 1024 * 1024


@dataclass
class Deployable:
    description: ProcessDescription
    package: dict[str, Any]  # what runs: packed CWL, or the application package
    media_type: str  # CWL_MEDIA_TYPE or OGCAPPPKG
    source: str  # the document as deployed
    source_type: str


@dataclass
class FetchNeeded:
    """An application package whose CWL is given by href: the server fetches it, then a worker goes on."""

    url: str
    fragment: str
    given: dict[str, Any]  # the package's processDescription, merged over the one derived from the CWL
    source: str


Runner = Callable[..., Awaitable[Any]]  # run(func, *args): where the work runs (a bounded worker process)


async def _in_thread(func: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(func, *args)


def _graph_ids(doc: dict[str, Any]) -> list[str]:
    return [str(o.get("id", "")).lstrip("#") for o in doc.get("$graph", []) if isinstance(o, dict)]


def from_cwl_text(text: str, w: str | None, media_type: str) -> Deployable:
    """Parse (with limits), refuse references outside the document, validate and pack with cwltool. Slow and
    hostile-input-facing: the server runs it in a bounded worker process (hpgc/packages/workers.py)."""
    doc = load_yaml(text, "the CWL document", InvalidPackage)
    if not isinstance(doc, dict):
        raise InvalidPackage("the CWL document must be a mapping")
    refuse_external_references(doc)
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
    check_resources(packed)  # a value no job could turn into an #SBATCH line is refused now, not at execute
    description = cwl.describe(packed, process_id)
    return Deployable(description, packed, CWL_MEDIA_TYPE, text, media_type)


def check_process_id(process_id: object) -> None:
    problem = process_id_problem(process_id)
    if problem is not None:
        raise InvalidPackage(problem)


async def from_request(body: bytes, content_type: str, w: str | None, fetch: Any,
                       run: Runner = _in_thread) -> Deployable:
    """`fetch(url) -> str` downloads a CWL document given by href (once, at deploy time); `run(func, *args)`
    runs the parsing and validation (the server passes its bounded worker pool)."""
    if w is not None:
        check_process_id(w)
    deployable = await _from_request(body, content_type, w, fetch, run)
    check_process_id(deployable.description.id)  # whichever of ?w=, the package or the CWL id named it
    try:
        asked_runner(deployable.description)  # a runner that does not exist: a 400 now, not a failure at each run
    except ValueError as exc:
        raise InvalidPackage(str(exc)) from None
    return deployable


async def _from_request(body: bytes, content_type: str, w: str | None, fetch: Any, run: Runner) -> Deployable:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidPackage("the body is not UTF-8 text") from None
    if content_type in CWL_TYPES:
        return await run(from_cwl_text, text, w, content_type)
    if content_type not in (OGCAPPPKG, "application/json"):
        raise UnsupportedMediaType(
            f"cannot deploy {content_type or 'a body without Content-Type'}; use {OGCAPPPKG} or one of "
            + ", ".join(CWL_TYPES))
    step = await run(from_package_text, text, w)
    if isinstance(step, Deployable):
        return step
    fetched = await fetch(step.url)
    return await run(from_cwl_unit_text, fetched, step.fragment or w or step.given.get("id"), step.given,
                     step.source)


def from_package_text(text: str, w: str | None) -> Deployable | FetchNeeded:
    """An application package (JSON) → what to store, or the URL of its CWL document to fetch first."""
    raw = load_json(text, "the body", InvalidPackage)
    pkg = validated(AppPackage, raw, InvalidPackage, "application package")
    cwl_unit = next((u for u in pkg.units() if _is_cwl_unit(u.model_dump(exclude_none=True))), None)
    if cwl_unit is None:
        return command_package(pkg, raw, w, text)
    unit = cwl_unit.model_dump(exclude_none=True)
    given = pkg.processDescription or {}
    inline = unit.get("unit") or unit.get("value")
    if isinstance(inline, dict):
        return from_cwl_unit_text(json.dumps(inline), w or given.get("id"), given, text)
    if isinstance(inline, str):
        return from_cwl_unit_text(inline, w or given.get("id"), given, text)
    if unit.get("href"):
        url, _, fragment = str(unit["href"]).partition("#")
        if not url.startswith(("http://", "https://")):
            raise InvalidPackage("executionUnit.href must be an http(s) URL")
        return FetchNeeded(url, fragment, given, text)
    raise InvalidPackage("executionUnit: a CWL unit needs 'unit', 'value' or 'href'")


def _is_cwl_unit(unit: dict[str, Any]) -> bool:
    kind = str(unit.get("type") or unit.get("mediaType") or "")
    if kind.startswith("application/cwl"):
        return True
    inline = unit.get("unit") or unit.get("value")
    return (isinstance(inline, (dict, str)) and "cwlVersion" in str(inline)[:4000]) or (
        bool(unit.get("href")) and str(unit.get("href")).split("#")[0].endswith((".cwl", ".yaml", ".yml")))


def from_cwl_unit_text(text: str, w: str | None, given: dict[str, Any], source: str) -> Deployable:
    """The CWL of an application package's unit, with the package's own processDescription merged over."""
    deployable = from_cwl_text(text, w, "application/cwl")
    if given:
        merged = {**deployable.description.model_dump(by_alias=True, exclude_none=True),
                  **{k: v for k, v in given.items() if k not in ("inputs", "outputs")}}
        if merged.get("additionalParameters") is not None:
            merged["additionalParameters"] = to_object_form(merged["additionalParameters"])
        deployable.description = validated(ProcessDescription, merged, InvalidPackage, "application package",
                                           "processDescription.")
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
    description = validated(ProcessDescription, desc, InvalidPackage, "application package", "processDescription.")
    check_patterns(description, pkg)
    entry = param(description.additionalParameters, "entry-point")
    if entry:
        split_entry_point(str(entry), unit)  # the image it names: a 400 now, not a failure at each run
    if not unit.image and (unit.type or "").lower() in ("docker", "oci"):
        raise InvalidPackage(f"executionUnit of type {unit.type} needs an image")
    stored = {**raw, "processDescription": description.model_dump(mode="json", by_alias=True, exclude_none=True)}
    return Deployable(description, stored, OGCAPPPKG, source, OGCAPPPKG)
