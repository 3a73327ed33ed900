"""Input files → files to stage in the job directory, under generated names."""

from __future__ import annotations

import mimetypes
import re
from urllib.parse import urlsplit

from hpgc.models.run import StagedFile
from hpgc.packages.inputs import FileData, FileInPlace, FileRef, FileSource, InputValue, Literal

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
        if isinstance(v, FileInPlace):  # used where it is: the command gets its path, nothing is staged
            seen.append(StagedFile(path=v.path))
            continue
        media_type = v.media_type
        if media_type is None and isinstance(v, FileRef):
            # the extension tells tools like OTB/GDAL the format; the URL's own suffix is only mapped
            # through the known media types, never copied into the name
            media_type = mimetypes.guess_type(urlsplit(v.href).path)[0]
        path = staged_name(input_id, i, media_type)
        if isinstance(v, FileRef):
            files.append(StagedFile(path=path, href=v.href))
        elif isinstance(v, FileData):
            files.append(StagedFile(path=path, content=v.content))
        elif isinstance(v, FileSource):
            files.append(StagedFile(path=path, source=v.source))
        seen.append(StagedFile(path=path))
    return files, seen
