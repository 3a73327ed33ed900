"""Application package + validated inputs → RunSpec, the only thing a backend sees."""

from __future__ import annotations

import json
import mimetypes
import re

from hpgc.models.run import RunSpec, StagedFile
from hpgc.packages import cwl
from hpgc.packages.inputs import FileData, FileRef, InputValue, Literal
from hpgc.packages.registry import Process

_SAFE = re.compile(r"[^A-Za-z0-9_-]")
EXTENSIONS = {"image/tiff": ".tif", "image/png": ".png", "image/jpeg": ".jpg", "application/json": ".json",
              "text/plain": ".txt", "application/geo+json": ".geojson"}


def staged_name(input_id: str, index: int, media_type: str | None) -> str:
    """A generated file name: never a name from the request (input ids come from the package)."""
    ext = EXTENSIONS.get(media_type or "") or (mimetypes.guess_extension(media_type or "") or "")
    return f"inputs/{_SAFE.sub('_', input_id)[:64]}_{index}{ext}"


def stage(input_id: str, values: list[InputValue]) -> tuple[list[StagedFile], list[object]]:
    """Files to stage for one input, and the values the command sees (file paths for files)."""
    files: list[StagedFile] = []
    seen: list[object] = []
    for i, v in enumerate(values):
        if isinstance(v, Literal):
            seen.append(v.value)
            continue
        path = staged_name(input_id, i, v.media_type)
        if isinstance(v, FileRef):
            files.append(StagedFile(path=path, href=v.href))
        elif isinstance(v, FileData):
            files.append(StagedFile(path=path, content=v.content))
        seen.append(StagedFile(path=path))
    return files, seen


def cwl_run_spec(process: Process, job_id: str, inputs: dict[str, list[InputValue]]) -> RunSpec:
    files: list[StagedFile] = []
    job: dict[str, object] = {}
    for input_id, values in inputs.items():
        staged, seen = stage(input_id, values)
        files.extend(staged)
        as_cwl = [{"class": "File", "path": s.path} if isinstance(s, StagedFile) else s for s in seen]
        max_occurs = process.description.inputs[input_id].maxOccurs
        job[input_id] = as_cwl[0] if max_occurs in (None, 1) else as_cwl
    files.append(StagedFile(path="tool.cwl", content=json.dumps(process.package, indent=1).encode()))
    files.append(StagedFile(path="job.json", content=json.dumps(job, indent=1).encode()))
    return RunSpec(job_id=job_id, process_id=process.id, kind="cwl", files=files)


def build_run_spec(process: Process, job_id: str, inputs: dict[str, list[InputValue]]) -> RunSpec:
    if process.kind == "cwl":
        return cwl_run_spec(process, job_id, inputs)
    raise NotImplementedError(f"package kind {process.kind}")
