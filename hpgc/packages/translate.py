"""Application package + validated inputs → RunSpec, the only thing a backend sees."""

from __future__ import annotations

import json
from typing import Any

from hpgc.models.ogc import OutputRequest
from hpgc.models.resources import ResourceLimits, ResourceRequest
from hpgc.models.run import RunSpec, StagedFile
from hpgc.packages import cwl
from hpgc.packages.command import command_limits, command_run_spec
from hpgc.packages.cwl_resources import cwl_resources
from hpgc.packages.cwl_runner import asked_runner, is_parallel_workflow
from hpgc.packages.inputs import FileInPlace, InputValue
from hpgc.packages.registry import Process
from hpgc.packages.resources import job_resources
from hpgc.packages.staging import stage


def _declared_formats(process: Process) -> dict[str, str]:
    """input id → the format IRI its File must carry (cwltool refuses a File without the declared format)."""
    formats: dict[str, str] = {}
    for inp in cwl.main_process(process.package).get("inputs", []):
        fmt = inp.get("format")
        if isinstance(fmt, list):
            fmt = fmt[0] if fmt else None
        if isinstance(fmt, str) and not fmt.startswith("$"):
            formats[cwl.short_id(inp["id"])] = fmt
    return formats


_tool_texts: dict[tuple[str, float], bytes] = {}


def _tool_text(process: Process) -> bytes:
    """The packed CWL document as the job gets it, serialised once per version of the process."""
    key = (process.id, process.updated)
    if key not in _tool_texts:
        if len(_tool_texts) > 256:
            _tool_texts.clear()
        _tool_texts[key] = json.dumps(process.package, separators=(",", ":")).encode()
    return _tool_texts[key]


def _cwl_file(path: str, fmt: str | None) -> dict[str, str]:
    return {"class": "File", "path": path, **({"format": fmt} if fmt else {})}


def _with_defaults(process: Process, job: dict[str, Any]) -> dict[str, Any]:
    """The input object as the tool sees it: defaults of the inputs the request leaves out filled in."""
    out = dict(job)
    for inp in cwl.main_process(process.package).get("inputs", []):
        name = cwl.short_id(inp["id"])
        if name not in out and "default" in inp:
            out[name] = inp["default"]
    return out


def cwl_run_spec(process: Process, job_id: str, inputs: dict[str, list[InputValue]]) -> tuple[RunSpec, ResourceLimits]:
    files: list[StagedFile] = []
    job: dict[str, Any] = {}
    formats = _declared_formats(process)
    for input_id, values in inputs.items():
        staged, seen = stage(input_id, values)
        files.extend(staged)
        as_cwl = [_cwl_file(s.path, formats.get(input_id)) if isinstance(s, StagedFile) else s for s in seen]
        max_occurs = process.description.inputs[input_id].maxOccurs
        job[input_id] = as_cwl[0] if max_occurs in (None, 1) else as_cwl
    files.append(StagedFile(path="tool.cwl", content=_tool_text(process)))
    files.append(StagedFile(path="job.json", content=json.dumps(job, indent=1).encode()))
    resources, limits = cwl_resources(process.package, _with_defaults(process, job))
    try:
        runner = asked_runner(process.description)
    except ValueError:
        runner = None  # checked at deploy; a package stored before that check runs as the backend chooses
    return RunSpec(job_id=job_id, process_id=process.id, kind="cwl", files=files, resources=resources,
                   cwl_runner=runner, cwl_workflow=is_parallel_workflow(process.package)), limits


def build_run_spec(
    process: Process, job_id: str, inputs: dict[str, list[InputValue]],
    requested: dict[str, OutputRequest] | None = None, resources: ResourceRequest | None = None,
    site: ResourceLimits | None = None,
) -> RunSpec:
    """The RunSpec of one job; its resources are the package's, with the request's `resources` within the
    process's and the `site`'s limits (a 400 otherwise)."""
    if process.kind == "cwl":
        spec, limits = cwl_run_spec(process, job_id, inputs)
    else:
        spec = command_run_spec(process.description, process.package, job_id, inputs, requested)
        limits = command_limits(process.package)
    spec.resources = job_resources(spec.resources, limits, site or ResourceLimits(), resources)
    spec.binds = sorted({v.path for values in inputs.values() for v in values if isinstance(v, FileInPlace)})
    return spec
